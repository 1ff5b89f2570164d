"""The home's certificate authority and the car's identity, and their TLS contexts.

Home side (``HomeCA``, one per home, files in ``certs/`` by default, see
``certs/README.md``):

- an EC P-256 CA (``ca.key`` 0600, ``ca.crt``) whose SHA-256 key fingerprint
  gives the ``hub_id``;
- the hub's server certificate (``server.crt``, ``server.key`` 0600) with DNS
  and IP subject alternative names: the car checks the address it dials
  against them;
- car certificates signed from a CSR the car made (the car's private key never
  leaves the car). The CA sets the subject (CN = vehicle id) itself and copies
  nothing from the CSR but its public key;
- a record of the issued certificates (``issued.json``, kept by
  ``bridge.issued``: cached for the check at every handshake, expired
  records pruned, limits) and a signed revocation list (``crl.pem``),
  written when the CA is created and after every revocation.

``HomeCA.server_ssl_context()`` accepts TLS 1.3 only, requires a client
certificate from this CA and checks the CRL for the client certificate at every
handshake (``VERIFY_CRL_CHECK_LEAF``). It fails closed: without a readable,
correctly signed CRL it refuses to build a context, and OpenSSL itself rejects
any client whose CRL it cannot find.

Renewal: calling ``sign_car_csr`` for a vehicle id that already has a
certificate issues a new one; the old one stays valid until it expires or is
revoked, so a car can switch over without a gap. ``revoke(vehicle_id)``
revokes all of a vehicle's certificates.

Car side (``CarIdentity``, one per paired home, files in that home's
directory): the car's key (``car.key`` 0600, generated on the car), its
certificate (``car.crt``) and the pinned home CA (``ca.crt``).

Car-side renewal (``bridge.renewal`` drives it over the link): the car makes
a NEW key for each renewal (``car.next.key``, 0600) and sends a CSR for it;
the old key and certificate stay in use until the signed certificate for the
new key has been checked and stored. The switch is crash-safe: the new
certificate is written as ``car.next.crt`` first, then the new key and the
new certificate are renamed over the old ones; ``CarIdentity.load`` finishes
a switch that a crash interrupted.

Everything here does blocking file I/O and CPU-bound signing: from asyncio code
call it through ``loop.run_in_executor`` (or ``asyncio.to_thread``). The
returned ``ssl.SSLContext`` objects are safe to use from the event loop.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

from bridge._fileio import make_private_dir, rename_atomic, write_private, write_public
from bridge.errors import CertificateError
from bridge.issued import (
    MAX_RECORD_BYTES,
    IssuedCertificate,
    IssuedSnapshot,
    IssuedStore,
    prune_expired,
)

__all__ = [
    "CAR_CERT_FILE",
    "CAR_KEY_FILE",
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "CRL_FILE",
    "HOME_CA_FILE",
    "ISSUED_FILE",
    "NEXT_CAR_CERT_FILE",
    "NEXT_CAR_KEY_FILE",
    "SERVER_CERT_FILE",
    "SERVER_KEY_FILE",
    "CarIdentity",
    "HomeCA",
    "IssuedCertificate",
    "is_valid_vehicle_id",
    "vehicle_id_from_certificate",
]

_LOGGER = logging.getLogger(__name__)

# Home (CA) directory.
CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
SERVER_CERT_FILE = "server.crt"
SERVER_KEY_FILE = "server.key"
CRL_FILE = "crl.pem"
ISSUED_FILE = "issued.json"
# Serialises issued.json/crl.pem updates between processes (serve and revoke).
CA_LOCK_FILE = ".ca.lock"
# Car side, inside one home's directory.
CAR_KEY_FILE = "car.key"
CAR_CERT_FILE = "car.crt"
HOME_CA_FILE = "ca.crt"
# Car side, during a renewal: the new key and its certificate before the switch.
NEXT_CAR_KEY_FILE = "car.next.key"
NEXT_CAR_CERT_FILE = "car.next.crt"

CA_VALIDITY = dt.timedelta(days=20 * 365)
SERVER_CERT_DAYS = 825
CAR_CERT_DAYS = 365
MAX_CAR_CERT_DAYS = 825
CRL_VALIDITY = dt.timedelta(days=365)
# server_ssl_context() re-signs a CRL that would expire within this margin.
CRL_REFRESH_MARGIN = dt.timedelta(days=30)
# Certificates start a little in the past: car and home clocks disagree.
_BACKDATE = dt.timedelta(minutes=5)
_MAX_PEM_BYTES = 64 * 1024
# The CRL lists every revoked certificate that has not expired yet, so it is
# bounded by the issued record, not by the size of one certificate.
_MAX_CRL_BYTES = MAX_RECORD_BYTES

_VEHICLE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOSTNAME_RE = re.compile(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?")


def is_valid_vehicle_id(vehicle_id: str) -> bool:
    """True for 1-64 characters of ``[A-Za-z0-9._-]`` starting with a letter or digit."""
    return bool(_VEHICLE_ID_RE.fullmatch(vehicle_id))


def _now() -> dt.datetime:
    # Whole seconds: certificate and CRL times are encoded to the second.
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read(path: Path, what: str, *, max_bytes: int = _MAX_PEM_BYTES) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise CertificateError(f"{what} missing: {path}") from err
    except OSError as err:
        raise CertificateError(f"{what} unreadable: {path}: {err}") from err
    if len(data) > max_bytes:
        raise CertificateError(f"{what} too large: {path}")
    return data


def _load_cert(data: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as err:
        raise CertificateError(f"{what} is not a PEM certificate: {err}") from err


def _load_ec_key(data: bytes, what: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise CertificateError(f"{what} is not an unencrypted PEM private key: {err}") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{what} is not an EC key")
    return key


def _check_private_mode(path: Path) -> None:
    # Warn rather than refuse: a copied key is still the owner's key, but say so.
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        _LOGGER.warning("%s is readable by others (mode %o); it should be 0600", path, mode)


def _common_name(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _is_ca_certificate(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def _ski(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value


def vehicle_id_from_certificate(cert_der: bytes) -> str:
    """Return the vehicle id (subject CN) of a car certificate in DER form.

    The server calls this with ``ssl_object.getpeercert(binary_form=True)``
    after the handshake has verified the chain, so the CN can be trusted: the
    CA set it. Raises ``CertificateError`` if the certificate carries no valid
    vehicle id.
    """
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError as err:
        raise CertificateError(f"not a DER certificate: {err}") from err
    cn = _common_name(cert)
    if cn is None or not is_valid_vehicle_id(cn):
        raise CertificateError("certificate carries no valid vehicle id")
    return cn


def _tls13_context(purpose: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    return ctx


def _parse_serial(text: str) -> int | None:
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    if not cleaned or len(cleaned) > 40:
        return None
    try:
        return int(cleaned, 16)
    except ValueError:
        return None


def _default_hostnames() -> list[str]:
    names = ["localhost"]
    host = socket.gethostname()
    if host and host != "localhost" and _HOSTNAME_RE.fullmatch(host):
        names.append(host)
    return names


class _CALock:
    """Reentrant lock across threads AND processes sharing one CA directory.

    ``issued.json`` and ``crl.pem`` are read-modify-written (signing, revoking,
    re-signing the CRL); a running hub signs renewals while ``carhub-bridge
    revoke`` may run in another process, and a lost update could drop a
    revocation. A thread lock plus ``flock`` on a lock file prevents that.
    Without ``fcntl`` or a writable directory it degrades to the thread lock.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._rlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._rlock.acquire()
        try:
            if self._depth == 0 and fcntl is not None:
                try:
                    fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                except OSError as err:
                    _LOGGER.debug("no CA lock file %s: %s", self._path, err)
                else:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                    except OSError:
                        os.close(fd)
                        raise
                    self._fd = fd
            self._depth += 1
        except BaseException:
            self._rlock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._rlock.release()


class HomeCA:
    """The home's certificate authority, stored in one directory.

    Use ``create``, ``load`` or ``load_or_create``; the constructor is internal.
    Methods are thread-safe (one lock around ``issued.json`` and the CRL) and
    blocking: run them in an executor from asyncio code.
    """

    def __init__(
        self, directory: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
    ) -> None:
        """Wrap an already loaded CA key and certificate (internal: use ``load``)."""
        self.directory = directory
        self._key = key
        self.ca_certificate = cert
        self.ca_cert_pem: bytes = _cert_pem(cert)
        self.hub_id: str = hashlib.sha256(_spki(key.public_key())).hexdigest()[:16]
        self._lock = _CALock(directory / CA_LOCK_FILE)
        self._issued = IssuedStore(directory / ISSUED_FILE)

    # -- paths --------------------------------------------------------------
    @property
    def ca_cert_path(self) -> Path:
        """``ca.crt``."""
        return self.directory / CA_CERT_FILE

    @property
    def server_cert_path(self) -> Path:
        """``server.crt``."""
        return self.directory / SERVER_CERT_FILE

    @property
    def server_key_path(self) -> Path:
        """``server.key`` (0600)."""
        return self.directory / SERVER_KEY_FILE

    @property
    def crl_path(self) -> Path:
        """``crl.pem``."""
        return self.directory / CRL_FILE

    @property
    def issued_path(self) -> Path:
        """``issued.json``."""
        return self.directory / ISSUED_FILE

    # -- construction ---------------------------------------------------------
    @classmethod
    def create(cls, directory: Path, *, name: str = "CarHub Home CA") -> HomeCA:
        """Create a new CA in ``directory``, with an empty CRL and a default server cert.

        The default server certificate names ``localhost``, this machine's host
        name, ``127.0.0.1`` and ``::1``; call ``issue_server_certificate`` for
        the addresses cars will really dial. Refuses to overwrite an existing CA.
        """
        make_private_dir(directory)
        if (directory / CA_KEY_FILE).exists() or (directory / CA_CERT_FILE).exists():
            raise CertificateError(f"a CA already exists in {directory}")
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CarHub"),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + CA_VALIDITY)
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        write_private(directory / CA_KEY_FILE, _key_pem(key))
        write_public(directory / CA_CERT_FILE, _cert_pem(cert))
        ca = cls(directory, key, cert)
        with ca._lock:
            ca._write_issued([], crl_number=1)
            ca._write_crl([], crl_number=1)
        ca.issue_server_certificate(hostnames=_default_hostnames(), ips=["127.0.0.1", "::1"])
        _LOGGER.info("created home CA %s in %s", ca.hub_id, directory)
        return ca

    @classmethod
    def load(cls, directory: Path) -> HomeCA:
        """Load the CA in ``directory``; ``CertificateError`` if it is missing or broken."""
        key_path = directory / CA_KEY_FILE
        key = _load_ec_key(_read(key_path, "CA key"), "CA key")
        _check_private_mode(key_path)
        cert = _load_cert(_read(directory / CA_CERT_FILE, "CA certificate"), "CA certificate")
        if _spki(key.public_key()) != cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise CertificateError(f"{CA_KEY_FILE} does not match {CA_CERT_FILE} in {directory}")
        if not _is_ca_certificate(cert):
            raise CertificateError(f"{CA_CERT_FILE} in {directory} is not a CA certificate")
        return cls(directory, key, cert)

    @classmethod
    def load_or_create(cls, directory: Path) -> HomeCA:
        """Load the CA in ``directory``, creating it first if there is none."""
        if (directory / CA_CERT_FILE).exists() or (directory / CA_KEY_FILE).exists():
            return cls.load(directory)
        return cls.create(directory)

    # -- server certificate -----------------------------------------------------
    def issue_server_certificate(
        self, *, hostnames: list[str], ips: list[str], days: int = SERVER_CERT_DAYS
    ) -> None:
        """Issue (or replace) the hub's server certificate and key.

        Every address a car may dial (host names and IP literals of the hub
        URLs given at pairing) must be listed, because the car checks it.
        """
        names: list[x509.GeneralName] = []
        for host in hostnames:
            if not _HOSTNAME_RE.fullmatch(host) or len(host) > 253:
                raise CertificateError(f"not a valid host name: {host!r}")
            names.append(x509.DNSName(host.rstrip(".")))
        for ip in ips:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(ip)))
            except ValueError as err:
                raise CertificateError(f"not a valid IP address: {ip!r}") from err
        if not names:
            raise CertificateError("the server certificate needs at least one host name or IP")
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key()
        now = _now()
        cn = hostnames[0] if hostnames else "carhub-hub"
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, cn[:64]),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CarHub hub"),
                    ]
                )
            )
            .issuer_name(self.ca_certificate.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(self._aki(), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        with self._lock:
            write_private(self.server_key_path, _key_pem(key))
            write_public(self.server_cert_path, _cert_pem(cert))

    def server_certificate(self) -> x509.Certificate | None:
        """The current server certificate, or None if there is none."""
        if not self.server_cert_path.exists():
            return None
        return _load_cert(_read(self.server_cert_path, "server certificate"), "server certificate")

    # -- car certificates ---------------------------------------------------------
    def sign_car_csr(self, csr_pem: bytes, *, vehicle_id: str, days: int = CAR_CERT_DAYS) -> bytes:
        """Sign a car's CSR and return the certificate (PEM).

        The CSR's signature must be valid (the car holds the key) and its key
        EC P-256. Only its public key is used: the subject is ``CN=vehicle_id``
        chosen by the caller, and no extension is copied. For a vehicle id that
        already has a certificate this is a renewal: the old certificate stays
        valid until it expires or is revoked.
        """
        if not is_valid_vehicle_id(vehicle_id):
            raise CertificateError(f"not a valid vehicle id: {vehicle_id!r}")
        if not 1 <= days <= MAX_CAR_CERT_DAYS:
            raise CertificateError(f"validity must be 1..{MAX_CAR_CERT_DAYS} days, not {days}")
        if len(csr_pem) > _MAX_PEM_BYTES:
            raise CertificateError("CSR too large")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as err:
            raise CertificateError(f"not a PEM certificate request: {err}") from err
        if not csr.is_signature_valid:
            raise CertificateError("the CSR signature is invalid")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
            public.curve, ec.SECP256R1
        ):
            raise CertificateError("the car key must be EC P-256")
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, vehicle_id),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CarHub vehicle"),
                    ]
                )
            )
            .issuer_name(self.ca_certificate.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(self._aki(), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        record = IssuedCertificate(
            serial=cert.serial_number,
            vehicle_id=vehicle_id,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sha256=cert.fingerprint(hashes.SHA256()).hex(),
        )
        with self._lock:
            records, crl_number = self._read_issued()
            records.append(record)
            self._write_issued(records, crl_number=crl_number, issuing=True)
        return _cert_pem(cert)

    def issued_certificates(self) -> list[IssuedCertificate]:
        """Every car certificate on record (pruned ones excepted), oldest first."""
        return list(self._issued.snapshot().records)

    def prune(self) -> int:
        """Drop records of certificates expired for a while (see ``bridge.issued``); how many.

        The CRL is re-signed without them. Revoked certificates that have not
        expired stay on record and in the CRL. Signing, revoking and starting
        a server (``server_ssl_context``) prune too.
        """
        with self._lock:
            snap = self._issued.snapshot()
            kept = prune_expired(snap.records, _now())
            dropped = len(snap.records) - len(kept)
            if dropped:
                self._write_issued(kept, crl_number=snap.crl_number + 1)
                self._write_crl(kept, crl_number=snap.crl_number + 1)
                _LOGGER.info("pruned %d expired certificate record(s)", dropped)
            return dropped

    def certificate_expiry(self, vehicle_id: str) -> dt.datetime | None:
        """Expiry (UTC) of the vehicle's newest unrevoked certificate, or None."""
        valid = [
            r.not_after
            for r in self.issued_certificates()
            if r.vehicle_id == vehicle_id and r.revoked_at is None
        ]
        return max(valid) if valid else None

    # -- revocation -----------------------------------------------------------------
    def revoke(self, vehicle_id_or_serial: str) -> None:
        """Revoke every certificate of a vehicle id, or one certificate by hex serial.

        Rewrites ``crl.pem``; a running server picks it up with
        ``reload_crl(context)`` or a new ``server_ssl_context()``. Revoking an
        already revoked vehicle is a no-op; an unknown id or serial raises
        ``CertificateError``.
        """
        with self._lock:
            records, crl_number = self._read_issued()
            by_vehicle = [r for r in records if r.vehicle_id == vehicle_id_or_serial]
            if by_vehicle:
                targets = {r.serial for r in by_vehicle if r.revoked_at is None}
            else:
                serial = _parse_serial(vehicle_id_or_serial)
                matches = [r for r in records if serial is not None and r.serial == serial]
                if not matches:
                    raise CertificateError(
                        f"no issued certificate for vehicle id or serial {vehicle_id_or_serial!r}"
                    )
                targets = {r.serial for r in matches if r.revoked_at is None}
            if not targets:
                return
            now = _now()
            records = [replace(r, revoked_at=now) if r.serial in targets else r for r in records]
            # issued.json first: if we crash before the CRL is written, the
            # CRL's number lags behind and server_ssl_context() re-signs it.
            written = self._write_issued(records, crl_number=crl_number + 1)
            self._write_crl(written.records, crl_number=crl_number + 1)
            _LOGGER.info("revoked %d certificate(s) for %s", len(targets), vehicle_id_or_serial)

    def is_revoked(self, serial: int) -> bool:
        """True if the certificate with this serial has been revoked.

        Called at every handshake: one ``stat`` of ``issued.json`` and a set
        lookup; the file is re-read only after it changed. Raises
        ``CertificateError`` if the record cannot be read (fail closed).
        """
        return self._issued.snapshot().is_revoked(serial)

    def refresh_crl(self) -> None:
        """Re-sign the CRL with a new validity period (same revoked serials).

        Also recreates a CRL that went missing; the revoked serials come from
        ``issued.json``.
        """
        with self._lock:
            records, crl_number = self._read_issued()
            written = self._write_issued(records, crl_number=crl_number + 1)
            self._write_crl(written.records, crl_number=crl_number + 1)

    def load_crl(self) -> x509.CertificateRevocationList:
        """Read and verify ``crl.pem``; ``CertificateError`` if missing, unreadable or forged."""
        data = _read(self.crl_path, "CRL", max_bytes=_MAX_CRL_BYTES)
        try:
            crl = x509.load_pem_x509_crl(data)
        except ValueError as err:
            raise CertificateError(f"{self.crl_path} is not a PEM CRL: {err}") from err
        if crl.issuer != self.ca_certificate.subject or not crl.is_signature_valid(
            self._key.public_key()
        ):
            raise CertificateError(f"{self.crl_path} is not signed by this CA")
        return crl

    # -- TLS -----------------------------------------------------------------------
    def server_ssl_context(self) -> ssl.SSLContext:
        """A server context: TLS 1.3 only, client certificate from this CA required, CRL checked.

        Raises ``CertificateError`` (and builds nothing) if the server
        certificate or the CRL is missing, unreadable or not signed by this CA:
        revocation must never be silently off. A CRL close to its next update
        is re-signed first.
        """
        with self._lock:
            self.prune()
            crl = self.load_crl()
            _, recorded_number = self._read_issued()
            now = _now()
            if (
                _crl_number(crl) < recorded_number
                or crl.next_update_utc is None
                or crl.next_update_utc < now + CRL_REFRESH_MARGIN
                # Signed while the clock ran ahead: OpenSSL would refuse every car
                # ("CRL is not yet valid") until that time.
                or crl.last_update_utc > now + _BACKDATE
            ):
                self.refresh_crl()
            if not self.server_cert_path.exists() or not self.server_key_path.exists():
                raise CertificateError(f"no server certificate in {self.directory}")
            ctx = _tls13_context(ssl.PROTOCOL_TLS_SERVER)
            try:
                ctx.load_cert_chain(self.server_cert_path, self.server_key_path)
                ctx.load_verify_locations(cafile=self.ca_cert_path)
                ctx.load_verify_locations(cafile=self.crl_path)
            except (ssl.SSLError, OSError) as err:
                raise CertificateError(f"cannot load the hub's TLS material: {err}") from err
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
            return ctx

    def reload_crl(self, context: ssl.SSLContext) -> None:
        """Load the current ``crl.pem`` into a running server's context.

        OpenSSL keeps every CRL it was given and uses the one with the newest
        ``lastUpdate``, so new handshakes see the new revocations at once.
        Already established connections are not affected: close them.
        """
        with self._lock:
            self.load_crl()
            try:
                context.load_verify_locations(cafile=self.crl_path)
            except (ssl.SSLError, OSError) as err:
                raise CertificateError(f"cannot load {self.crl_path}: {err}") from err

    # -- internals -------------------------------------------------------------------
    def _aki(self) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            _ski(self.ca_certificate)
        )

    def _read_issued(self) -> tuple[list[IssuedCertificate], int]:
        snap = self._issued.snapshot()
        return list(snap.records), snap.crl_number

    def _write_issued(
        self, records: list[IssuedCertificate], *, crl_number: int, issuing: bool = False
    ) -> IssuedSnapshot:
        # Every write prunes: the record holds one validity period, not the home's history.
        return self._issued.write(
            prune_expired(records, _now()), crl_number=crl_number, issuing=issuing
        )

    def _write_crl(self, records: Iterable[IssuedCertificate], *, crl_number: int) -> None:
        last_update = self._next_last_update()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca_certificate.subject)
            .last_update(last_update)
            .next_update(last_update + CRL_VALIDITY)
            .add_extension(x509.CRLNumber(crl_number), critical=False)
            .add_extension(self._aki(), critical=False)
        )
        for record in records:
            if record.revoked_at is None:
                continue
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(record.serial)
                .revocation_date(record.revoked_at)
                .build()
            )
        crl = builder.sign(self._key, hashes.SHA256())
        write_public(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))

    def _next_last_update(self) -> dt.datetime:
        # OpenSSL picks the CRL with the strictly newest lastUpdate (to the
        # second) when a running context holds several, so a new CRL must not
        # share its predecessor's second. Waiting is rare (two revocations in
        # one second) and bounded; a clock that went backwards is not waited on.
        previous: dt.datetime | None = None
        if self.crl_path.exists():
            try:
                previous = x509.load_pem_x509_crl(self.crl_path.read_bytes()).last_update_utc
            except (ValueError, OSError):
                previous = None
        now = _now()
        deadline = time.monotonic() + 2.5
        while (
            previous is not None
            and now <= previous < now + dt.timedelta(seconds=2)
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
            now = _now()
        return now


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def _check_car_certificate(cert: x509.Certificate, ca: x509.Certificate, spki: bytes) -> None:
    """A car certificate must be from ``ca``, for the key ``spki``, valid now, for clientAuth."""
    if not _is_ca_certificate(ca):
        raise CertificateError("the home CA certificate is not a CA")
    try:
        ca.verify_directly_issued_by(ca)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as err:
        raise CertificateError(f"the certificate is not signed by the home CA: {err}") from err
    if (
        cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        != spki
    ):
        raise CertificateError("the certificate is not for this car's key")
    now = _now()
    if not cert.not_valid_before_utc <= now + _BACKDATE or cert.not_valid_after_utc <= now:
        raise CertificateError("the certificate is not valid now")
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as err:
        raise CertificateError("the certificate has no extended key usage") from err
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise CertificateError("the certificate does not allow client authentication")


def _finish_renewal(directory: Path) -> None:
    """Move a checked ``car.next.crt`` (and its ``car.next.key``) over the current pair.

    Each step is an atomic rename, and every state between them is recognised
    here: new key already in place (rename the certificate), certificate that
    matches neither key (stale: removed). The old pair stays usable until the
    new key is in place.
    """
    next_cert_path = directory / NEXT_CAR_CERT_FILE
    next_key_path = directory / NEXT_CAR_KEY_FILE
    try:
        cert = _load_cert(_read(next_cert_path, "renewed certificate"), "renewed certificate")
    except CertificateError as err:
        _LOGGER.warning("dropping an unreadable renewed certificate: %s", err)
        next_cert_path.unlink(missing_ok=True)
        return
    want = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if next_key_path.exists():
        next_key = _load_ec_key(_read(next_key_path, "renewal key"), "renewal key")
        if _spki(next_key.public_key()) != want:
            _LOGGER.warning("dropping a renewed certificate that does not match the renewal key")
            next_cert_path.unlink(missing_ok=True)
            return
        rename_atomic(next_key_path, directory / CAR_KEY_FILE)
    key = _load_ec_key(_read(directory / CAR_KEY_FILE, "car key"), "car key")
    if _spki(key.public_key()) != want:
        _LOGGER.warning("dropping a renewed certificate that does not match the car key")
        next_cert_path.unlink(missing_ok=True)
        return
    rename_atomic(next_cert_path, directory / CAR_CERT_FILE)
    _LOGGER.info("switched to the renewed certificate in %s", directory)


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


class CarIdentity:
    """The car's key, certificate and pinned CA for one home, in that home's directory.

    The key is generated on the car and never leaves it; only a CSR does.
    Blocking file I/O: run in an executor from asyncio code.
    """

    def __init__(self, directory: Path, key: ec.EllipticCurvePrivateKey) -> None:
        """Wrap a loaded key (internal: use ``create`` or ``load``)."""
        self.directory = directory
        self._key = key

    @property
    def key_path(self) -> Path:
        """``car.key`` (0600)."""
        return self.directory / CAR_KEY_FILE

    @property
    def cert_path(self) -> Path:
        """``car.crt``."""
        return self.directory / CAR_CERT_FILE

    @property
    def ca_path(self) -> Path:
        """``ca.crt``: the home CA the car pins."""
        return self.directory / HOME_CA_FILE

    @classmethod
    def create(cls, directory: Path) -> CarIdentity:
        """Generate a new EC P-256 key in ``directory`` (0600); refuses to replace one."""
        make_private_dir(directory)
        path = directory / CAR_KEY_FILE
        if path.exists():
            raise CertificateError(f"a car key already exists in {directory}")
        key = ec.generate_private_key(ec.SECP256R1())
        write_private(path, _key_pem(key))
        return cls(directory, key)

    @classmethod
    def load(cls, directory: Path) -> CarIdentity:
        """Load the identity in ``directory`` (the certificate may not be there yet).

        Completes a renewal switch that a crash interrupted.
        """
        if (directory / NEXT_CAR_CERT_FILE).exists():
            _finish_renewal(directory)
        path = directory / CAR_KEY_FILE
        key = _load_ec_key(_read(path, "car key"), "car key")
        _check_private_mode(path)
        return cls(directory, key)

    def csr_pem(self, vehicle_id: str) -> bytes:
        """A CSR for this key (PEM). The CN is informational: the CA sets its own."""
        if not is_valid_vehicle_id(vehicle_id):
            raise CertificateError(f"not a valid vehicle id: {vehicle_id!r}")
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, vehicle_id)]))
            .sign(self._key, hashes.SHA256())
        )
        return csr.public_bytes(serialization.Encoding.PEM)

    def store_certificate(self, cert_pem: bytes, ca_pem: bytes) -> None:
        """Check and store the signed certificate and the home CA.

        The certificate must be signed by that CA, carry this identity's public
        key, be valid now and allow client authentication; the CA must be a
        self-signed CA certificate, and the same CA as any already stored here
        (a renewal cannot switch homes).
        """
        ca = _load_cert(ca_pem, "home CA certificate")
        cert = _load_cert(cert_pem, "car certificate")
        _check_car_certificate(cert, ca, _spki(self._key.public_key()))
        if self.ca_path.exists():
            stored = _load_cert(_read(self.ca_path, "home CA certificate"), "home CA certificate")
            if stored != ca:
                raise CertificateError("a different home CA is already stored here")
        write_public(self.ca_path, _cert_pem(ca))
        write_public(self.cert_path, _cert_pem(cert))

    # -- renewal ------------------------------------------------------------------
    @property
    def next_key_path(self) -> Path:
        """``car.next.key`` (0600): the key of a renewal in progress."""
        return self.directory / NEXT_CAR_KEY_FILE

    @property
    def renewal_pending(self) -> bool:
        """True while a renewal key waits for its certificate."""
        return self.next_key_path.exists()

    def renewal_csr_pem(self, *, new_key: bool = True) -> bytes:
        """A CSR for renewing the stored certificate (same vehicle id).

        With ``new_key`` (the default) the CSR is for the pending renewal key,
        made now (0600) unless an earlier request already made it; the current
        key stays in use until ``install_renewed_certificate``. Without, the
        CSR is for the current key.
        """
        vehicle_id = self.vehicle_id
        if vehicle_id is None:
            raise CertificateError(f"no certificate stored in {self.directory}: nothing to renew")
        key = self._key
        if new_key:
            if self.next_key_path.exists():
                key = _load_ec_key(_read(self.next_key_path, "renewal key"), "renewal key")
            else:
                key = ec.generate_private_key(ec.SECP256R1())
                write_private(self.next_key_path, _key_pem(key))
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, vehicle_id)]))
            .sign(key, hashes.SHA256())
        )
        return csr.public_bytes(serialization.Encoding.PEM)

    def install_renewed_certificate(self, cert_pem: bytes, ca_pem: bytes | None = None) -> bool:
        """Check a renewed certificate and switch to it; False if it is already the current one.

        It must come from the stored home CA (``ca_pem``, when given, must be
        that CA), name the same vehicle id, be valid now, allow client
        authentication and carry either the pending renewal key or the
        current key. For the renewal key the switch is crash-safe (see the
        module doc) and the pending key becomes the identity's key.
        """
        ca = _load_cert(_read(self.ca_path, "home CA certificate"), "home CA certificate")
        if ca_pem is not None and _load_cert(ca_pem, "home CA certificate") != ca:
            raise CertificateError("the renewed certificate names a different home CA")
        cert = _load_cert(cert_pem, "renewed certificate")
        current = self.certificate()
        if current is not None and cert == current:
            return False
        if current is not None and _common_name(cert) != _common_name(current):
            raise CertificateError(
                f"the renewed certificate is for {_common_name(cert)!r}, "
                f"not this car ({_common_name(current)!r})"
            )
        cert_spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if cert_spki == _spki(self._key.public_key()):
            _check_car_certificate(cert, ca, cert_spki)
            write_public(self.cert_path, _cert_pem(cert))
            return True
        if not self.next_key_path.exists():
            raise CertificateError("the renewed certificate is not for this car's key")
        next_key = _load_ec_key(_read(self.next_key_path, "renewal key"), "renewal key")
        _check_car_certificate(cert, ca, _spki(next_key.public_key()))
        write_public(self.directory / NEXT_CAR_CERT_FILE, _cert_pem(cert))
        _finish_renewal(self.directory)
        self._key = next_key
        return True

    def discard_renewal(self) -> None:
        """Forget a pending renewal key (the next renewal makes a new one)."""
        self.next_key_path.unlink(missing_ok=True)
        (self.directory / NEXT_CAR_CERT_FILE).unlink(missing_ok=True)

    def certificate(self) -> x509.Certificate | None:
        """The stored car certificate, or None before pairing completed."""
        if not self.cert_path.exists():
            return None
        return _load_cert(_read(self.cert_path, "car certificate"), "car certificate")

    @property
    def vehicle_id(self) -> str | None:
        """The vehicle id the home CA put in the certificate, or None."""
        cert = self.certificate()
        return _common_name(cert) if cert is not None else None

    def certificate_expiry(self) -> dt.datetime | None:
        """Expiry (UTC) of the stored certificate: renew well before it."""
        cert = self.certificate()
        return cert.not_valid_after_utc if cert is not None else None

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context: TLS 1.3, this car's certificate, trusting only the home CA.

        Host names are checked: connect with ``server_hostname`` set to the
        host (name or IP literal) of the hub URL, which the hub's server
        certificate lists in its subject alternative names.
        """
        if not self.cert_path.exists() or not self.ca_path.exists():
            raise CertificateError(f"no certificate stored in {self.directory}: pair first")
        ctx = _tls13_context(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = True
        try:
            ctx.load_verify_locations(cafile=self.ca_path)
            ctx.load_cert_chain(self.cert_path, self.key_path)
        except (ssl.SSLError, OSError) as err:
            raise CertificateError(f"cannot load the car's TLS material: {err}") from err
        return ctx
