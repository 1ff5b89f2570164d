"""A real nginx reverse proxy in front of Home Assistant, as an owner would run one.

It ends TLS with its own (self-signed) certificate and passes HTTP and
WebSocket upgrades on to Home Assistant, so the car's own mutual TLS can only
go through it inside the tunnel (``bridge.tunnel``). Everything stays on
127.0.0.1: an ephemeral port, a generated configuration and certificate in a
work directory, nginx as a foreground child process (``daemon off``) that
:meth:`ReverseProxy.stop` ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import shutil
import signal
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from demo.paths import free_port
from demo.procs import ManagedProcess

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/bin/nginx")

_CONFIG = """\
worker_processes 1;
error_log {work}/error.log warn;
pid {work}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp-body;
    proxy_temp_path {work}/tmp-proxy;
    fastcgi_temp_path {work}/tmp-fastcgi;
    uwsgi_temp_path {work}/tmp-uwsgi;
    scgi_temp_path {work}/tmp-scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {work}/proxy.crt;
        ssl_certificate_key {work}/proxy.key;
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 300s;
            proxy_buffering off;
        }}
    }}
}}
"""


def find_nginx() -> str | None:
    """The nginx binary (Debian's nginx-light or nginx), or None."""
    for candidate in NGINX_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return shutil.which("nginx")


def write_self_signed(cert_path: Path, key_path: Path, *, host: str = "127.0.0.1") -> None:
    """A self-signed serverAuth certificate for ``host`` (an IP literal), like a home proxy's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CarHub demo proxy")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


class ReverseProxy:
    """nginx on 127.0.0.1:``port`` ending TLS and forwarding to 127.0.0.1:``upstream_port``."""

    def __init__(self, work_dir: Path, upstream_port: int, *, port: int | None = None) -> None:
        """Describe the proxy; :meth:`start` writes its files and starts nginx."""
        self.work_dir = work_dir.resolve()
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self.cert_path = self.work_dir / "proxy.crt"
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """The proxy's public address (what Home Assistant's external URL is set to)."""
        return f"https://127.0.0.1:{self.port}"

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this proxy's certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    async def start(self, *, timeout_s: float = 15.0) -> None:
        """Write the certificate and configuration, start nginx, wait until it accepts."""
        nginx = find_nginx()
        if nginx is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        write_self_signed(self.cert_path, self.work_dir / "proxy.key")
        config = self.work_dir / "nginx.conf"
        config.write_text(
            _CONFIG.format(work=self.work_dir, port=self.port, upstream=self.upstream_port),
            encoding="utf-8",
        )
        self._process = ManagedProcess(
            "nginx",
            [nginx, "-p", self.work_dir, "-c", config, "-g", "daemon off;"],
            log_path=self.work_dir / "nginx-console.log",
        )
        await self._process.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if not self._process.running or loop.time() > deadline:
                    log = self._process.log_text(tail=2000)
                    raise RuntimeError(f"nginx did not start: {log}") from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return

    async def stop(self) -> None:
        """Stop nginx (SIGQUIT: graceful), SIGKILL after a bound."""
        if self._process is not None and self._process.running:
            await self._process.stop(timeout_s=5, sig=signal.SIGQUIT)
