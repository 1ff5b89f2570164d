"""Helpers of the link tests: a real home CA, paired cars, a hub, a TCP proxy.

Everything listens on 127.0.0.1 only; every wait is bounded in time.
Certificates for the rejection cases (another CA, expired, not yet valid) are
made directly with ``cryptography`` in ``make_foreign_material``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bridge.client import CarLink
from bridge.pki import CarIdentity, HomeCA
from bridge.protocol import Envelope
from bridge.server import HubServer, PeerInfo, ServerLimits

WAIT = 20.0  # upper bound of any single wait in these tests


# --- PKI ------------------------------------------------------------------------------


def pair_car(ca: HomeCA, directory: Path, vehicle_id: str) -> ssl.SSLContext:
    """Give a car an identity signed by ``ca`` (what pairing does) and return its TLS context."""
    identity = CarIdentity.create(directory)
    cert = ca.sign_car_csr(identity.csr_pem(vehicle_id), vehicle_id=vehicle_id)
    identity.store_certificate(cert, ca.ca_cert_pem)
    return identity.client_ssl_context()


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A throwaway self-signed CA (for 'certificate from another CA')."""
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_client_cert(
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate,
    vehicle_id: str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A client certificate with chosen issuer and validity."""
    key = _key()
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, vehicle_id)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )
    return key, cert


def client_context(
    directory: Path,
    *,
    ca_pem: bytes,
    cert: x509.Certificate | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    tls12_only: bool = False,
) -> ssl.SSLContext:
    """A client context trusting ``ca_pem``, with an optional client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(ca_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls12_only:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=directory / "ca.crt")
    if cert is not None and key is not None:
        (directory / "c.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / "c.key").write_bytes(_pem_key(key))
        ctx.load_cert_chain(directory / "c.crt", directory / "c.key")
    return ctx


def home_ca_material(ca: HomeCA) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The home CA's key and certificate, to forge out-of-validity certificates with it."""
    key = serialization.load_pem_private_key((ca.directory / "ca.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, x509.load_pem_x509_certificate(ca.ca_cert_pem)


async def tls_accepted(port: int, ctx: ssl.SSLContext) -> bool:
    """True if the hub completes the TLS handshake and answers HTTP; False if TLS refuses."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"), 5
        )
    except (ssl.SSLError, OSError):
        return False
    try:
        writer.write(b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.read(12), 5)
    except (ssl.SSLError, OSError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return head.startswith(b"HTTP/1.1")


# --- hub and cars ----------------------------------------------------------------------


@dataclass
class RecordingHandler:
    """A HubHandler that records everything, with bounded waits."""

    messages: list[tuple[str, Envelope]] = field(default_factory=list)
    connects: list[tuple[PeerInfo, Envelope]] = field(default_factory=list)
    disconnects: list[PeerInfo] = field(default_factory=list)
    fail_on: Callable[[Envelope], bool] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_connect(self, peer: PeerInfo, hello: Envelope) -> None:
        self.connects.append((peer, hello))
        self.changed.set()

    async def on_message(self, peer: PeerInfo, env: Envelope) -> None:
        if self.fail_on is not None and self.fail_on(env):
            raise RuntimeError("handler refuses this message")
        self.messages.append((peer.vehicle_id, env))
        self.changed.set()

    async def on_disconnect(self, peer: PeerInfo) -> None:
        self.disconnects.append(peer)
        self.changed.set()

    def of(self, vehicle_id: str, type_: str | None = None) -> list[Envelope]:
        return [
            e for v, e in self.messages if v == vehicle_id and (type_ is None or e.type == type_)
        ]

    async def wait_until(self, cond: Callable[[], bool], limit_s: float = WAIT) -> None:
        deadline = time.monotonic() + limit_s
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("condition not reached in time")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.2))


async def wait_for(cond: Callable[[], bool], limit_s: float = WAIT, step: float = 0.02) -> None:
    """Poll ``cond`` until true, at most ``limit_s`` seconds."""
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


FAST_LIMITS = ServerLimits(max_msgs_per_s=100_000, burst=100_000, heartbeat_s=1.0, dead_after_s=5.0)


async def start_hub(
    ca: HomeCA,
    state_dir: Path,
    handler: RecordingHandler,
    *,
    port: int = 0,
    limits: ServerLimits = FAST_LIMITS,
    **kwargs: Any,
) -> HubServer:
    hub = HubServer(
        ca=ca,
        state_dir=state_dir,
        handler=handler,
        host="127.0.0.1",
        port=port,
        limits=limits,
        **kwargs,
    )
    await hub.start()
    return hub


def car_hello(vehicle_id: str) -> dict[str, Any]:
    return {
        "agent_version": "test",
        "vehicle": {
            "vehicle_id": vehicle_id,
            "vin": "WVWZZZ1JZXW000001",
            "make": "Test",
            "model": "Car",
            "profile": "test",
        },
        "capabilities": ["state", "events"],
        "signals": {"Vehicle.Speed": {"unit": "km/h", "datatype": "float"}},
    }


@dataclass
class CarInbox:
    """What a car received from the home."""

    messages: list[Envelope] = field(default_factory=list)

    async def __call__(self, env: Envelope) -> None:
        self.messages.append(env)


def make_car(
    home_dir: Path,
    url: str,
    ssl_ctx: ssl.SSLContext,
    vehicle_id: str = "car-1",
    *,
    inbox: CarInbox | None = None,
    snapshot: Callable[[], dict[str, Any]] | None = None,
    **kwargs: Any,
) -> CarLink:
    opts: dict[str, Any] = {
        "backoff_min_s": 0.02,
        "backoff_max_s": 0.2,
        "heartbeat_s": 1.0,
        "dead_after_s": 5.0,
    }
    opts.update(kwargs)
    return CarLink(
        home_dir=home_dir,
        hello_body=car_hello(vehicle_id),
        on_message=inbox if inbox is not None else CarInbox(),
        snapshot=snapshot if snapshot is not None else dict,
        url=url,
        ssl_context=ssl_ctx,
        **opts,
    )


# --- a TCP proxy on 127.0.0.1 that can cut connections and black-hole acks ------------


class FaultProxy:
    """Forwards 127.0.0.1:port to the hub; ``cut()`` aborts every live connection.

    With ``blackhole_downstream`` set, bytes from the hub to the car are
    swallowed (the TLS stream stalls: the car sees no acks) until the next cut.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.blackhole_downstream = False
        self.cuts = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Abort every connection in both directions (an RST, like a lost network)."""
        for a, b in list(self._pairs):
            a.transport.abort()
            b.transport.abort()
        if self._pairs:
            self.cuts += 1
        self._pairs.clear()
        self.blackhole_downstream = False

    @property
    def live(self) -> int:
        return len(self._pairs)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        pair = (writer, up_w)
        self._pairs.add(pair)
        t1 = asyncio.create_task(self._pipe(reader, up_w, pair, downstream=False))
        t2 = asyncio.create_task(self._pipe(up_r, writer, pair, downstream=True))
        self._tasks.update((t1, t2))
        t1.add_done_callback(self._tasks.discard)
        t2.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        *,
        downstream: bool,
    ) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                if downstream and self.blackhole_downstream:
                    continue
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if pair in self._pairs:
                self._pairs.discard(pair)
                for w in pair:
                    w.transport.abort()


async def next_json(proc: subprocess.Popen[str], limit_s: float = 20) -> dict[str, Any]:
    """The next JSON line a `carhub-bridge serve` subprocess prints (bounded wait)."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), limit_s)
    assert line, f"serve ended early (exit {proc.poll()})"
    obj = orjson.loads(line)
    assert isinstance(obj, dict)
    return obj
