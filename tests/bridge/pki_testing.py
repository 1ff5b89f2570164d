"""Test helpers for PKI / pairing tests: a real TLS handshake on 127.0.0.1, bounded in time."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bridge.pki import HomeCA

TIMEOUT = 5.0


@dataclass
class Handshake:
    """Outcome of one TLS connection attempt, seen from both ends."""

    server_error: BaseException | None
    client_error: BaseException | None
    peer_cert_der: bytes | None
    version: str | None

    @property
    def ok(self) -> bool:
        return self.server_error is None and self.client_error is None


def tls_handshake(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    *,
    server_hostname: str = "127.0.0.1",
) -> Handshake:
    """Connect a client to a one-shot TLS server on 127.0.0.1 and exchange two bytes.

    With TLS 1.3 the server verifies the client certificate after the client
    believes the handshake is done, so the client also reads the server's
    greeting: a rejected client sees the alert there.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]
    outcome: dict[str, object] = {}

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                outcome["peer"] = tls.getpeercert(binary_form=True)
                outcome["version"] = tls.version()
                tls.sendall(b"ok")
        except BaseException as err:  # recorded for the test to assert on
            outcome["server_error"] = err
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_error: BaseException | None = None
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            data = tls.recv(2)
            if data != b"ok":
                raise ConnectionError(f"server closed the connection ({data!r})")
    except BaseException as err:
        client_error = err
    thread.join(TIMEOUT + 1)
    assert not thread.is_alive()
    server_error = outcome.get("server_error")
    peer = outcome.get("peer")
    version = outcome.get("version")
    return Handshake(
        server_error=server_error if isinstance(server_error, BaseException) else None,
        client_error=client_error,
        peer_cert_der=peer if isinstance(peer, bytes) else None,
        version=version if isinstance(version, str) else None,
    )


def load_ca_key(directory: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def forge_client_cert(
    ca_dir: Path,
    key: ec.EllipticCurvePrivateKey,
    *,
    vehicle_id: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> bytes:
    """A client certificate signed with the CA key but custom validity (expired / future)."""
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = load_ca_key(ca_dir)
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, vehicle_id)]))
        .issuer_name(ca_cert.subject)
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
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def client_context_from_files(
    tmp: Path, *, cert_pem: bytes, key: ec.EllipticCurvePrivateKey, ca_pem: bytes
) -> ssl.SSLContext:
    """A TLS 1.3 client context from raw material (for forged / foreign certificates)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "c.crt").write_bytes(cert_pem)
    (tmp / "c.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp / "ca.crt").write_bytes(ca_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=tmp / "ca.crt")
    ctx.load_cert_chain(tmp / "c.crt", tmp / "c.key")
    return ctx


def csr_for_new_key() -> bytes:
    """A CSR (PEM) for a fresh EC P-256 key: cheap, well under a millisecond."""
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def issue_many(ca: HomeCA, count: int, *, per_vehicle: int = 4) -> None:
    """Have ``ca`` issue ``count`` car certificates, ``per_vehicle`` to each fleet car.

    Each car is paired once and renewed ``per_vehicle - 1`` times (round robin).
    One key per car is enough: the CA uses only the CSR's public key.
    """
    vehicles = max(1, -(-count // per_vehicle))
    csrs = [csr_for_new_key() for _ in range(vehicles)]
    for n in range(count):
        ca.sign_car_csr(csrs[n % vehicles], vehicle_id=f"fleet-{n % vehicles:03d}")
