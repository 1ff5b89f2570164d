"""Certificate renewal over the existing authenticated link.

The car renews its client certificate before it expires, without pairing
again, by sending a durable ``renew_request`` over its mTLS link; the hub signs
and answers with a durable ``renew_response``:

1. The car (``CarRenewal``, driven by ``CarLink`` at every connect and every
   ``RenewalPolicy.check_interval_s``) sees that its certificate is inside the
   renewal window: ``min(before, fraction * lifetime)`` before expiry (30 days
   or a third of the lifetime by default, whichever is shorter, so short-lived
   certificates do not renew in a loop).
2. It makes a NEW key (``car.next.key``, 0600) and sends
   ``{"request_id", "csr"}``. A new key rather than the same one: a key copied
   from the car (a backup, an SD card) stops being useful when the certificate
   it belongs to expires, and no key is used longer than one certificate
   lifetime. The old key and certificate stay in use until the new
   certificate is checked and stored, so a lost answer or a crash never
   strands the car. An unanswered request is repeated after
   ``retry_after_s`` with the same pending key.
3. The hub (``HubRenewals``, run by ``HubServer``) signs the CSR with
   ``HomeCA.sign_car_csr`` for the vehicle id of the peer's verified
   certificate, never one from the message (a car can only renew itself), and
   answers ``{"request_id", "ok": true, "certificate", "ca", "not_after"}`` or
   ``{"request_id", "ok": false, "detail"}`` (bad CSR, too frequent).
4. The car checks the certificate (home CA, its vehicle id, the pending key,
   valid now, clientAuth), switches to it crash-safely
   (``CarIdentity.install_renewed_certificate``) and reconnects with it.

Everything in ``CarRenewal`` and ``HubRenewals`` blocks (file I/O, key
generation, signing): call it from an executor in asyncio code.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bridge._fileio import write_public
from bridge.errors import CertificateError
from bridge.pki import CAR_CERT_DAYS, CarIdentity, HomeCA

__all__ = [
    "DEFAULT_RENEWAL",
    "RENEWAL_STATE_FILE",
    "CarRenewal",
    "HubRenewals",
    "RenewalEvent",
    "RenewalOutcome",
    "RenewalPolicy",
    "RevocationEvent",
]

_LOGGER = logging.getLogger(__name__)

RENEWAL_STATE_FILE: Final[str] = "renewal.json"
"""Car side, in the home's directory: the request in flight ``{"request_id", "sent_at"}``."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class RenewalPolicy:
    """When the car renews, and how often it looks (see the module doc).

    ``clock`` returns the current time (UTC, aware); tests move it forward.
    ``reconnect`` makes the link reconnect at once with the new certificate
    (otherwise it is used from the next connect on).
    """

    before: dt.timedelta = dt.timedelta(days=30)
    fraction: float = 1 / 3
    check_interval_s: float = 3600.0
    retry_after_s: float = 6 * 3600.0
    new_key: bool = True
    reconnect: bool = True
    clock: Callable[[], dt.datetime] = field(default=_utcnow, compare=False)

    def renew_at(self, cert: x509.Certificate) -> dt.datetime:
        """When a renewal of ``cert`` is due."""
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        return cert.not_valid_after_utc - min(self.before, lifetime * self.fraction)

    def due(self, cert: x509.Certificate) -> bool:
        """True once ``cert`` is inside its renewal window."""
        return self.clock() >= self.renew_at(cert)


DEFAULT_RENEWAL: Final[RenewalPolicy] = RenewalPolicy()


@dataclass(frozen=True, kw_only=True)
class RenewalOutcome:
    """What the car made of a ``renew_response``."""

    ok: bool
    installed: bool
    detail: str
    not_after: dt.datetime | None = None


@dataclass(frozen=True, kw_only=True)
class RenewalEvent:
    """What the hub did with one ``renew_request`` (for hooks and logs)."""

    vehicle_id: str
    request_id: str
    ok: bool
    detail: str
    serial: int | None = None
    not_after: dt.datetime | None = None
    previous_not_after: dt.datetime | None = None
    reissued: bool = False  # the same key asked again: the earlier certificate was sent again

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form (``carhub-bridge serve`` prints it)."""
        return {
            "vehicle_id": self.vehicle_id,
            "request_id": self.request_id,
            "ok": self.ok,
            "detail": self.detail,
            "serial": format(self.serial, "x") if self.serial is not None else None,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "previous_not_after": (
                self.previous_not_after.isoformat() if self.previous_not_after else None
            ),
            "reissued": self.reissued,
        }


@dataclass(frozen=True, kw_only=True)
class RevocationEvent:
    """Certificates of one vehicle the hub found revoked, and whether its live link was closed."""

    vehicle_id: str
    serials: tuple[int, ...]
    disconnected: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form (``carhub-bridge serve`` prints it)."""
        return {
            "vehicle_id": self.vehicle_id,
            "serials": [format(s, "x") for s in self.serials],
            "disconnected": self.disconnected,
        }


# --- car side ----------------------------------------------------------------------------


class CarRenewal:
    """The car's renewal state for one home directory (blocking: use an executor)."""

    def __init__(self, directory: Path, policy: RenewalPolicy = DEFAULT_RENEWAL) -> None:
        self.directory = directory
        self.policy = policy

    @property
    def state_path(self) -> Path:
        """``renewal.json``: the request in flight."""
        return self.directory / RENEWAL_STATE_FILE

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            _LOGGER.warning("ignoring unreadable %s: %s", self.state_path, err)
            return {}
        return data if isinstance(data, dict) else {}

    def _write_state(self, state: dict[str, Any]) -> None:
        write_public(self.state_path, json.dumps(state).encode() + b"\n")

    def prepare(self, *, force: bool = False) -> dict[str, Any] | None:
        """The body of a ``renew_request`` to send now, or None if none is due.

        None when the certificate is outside its renewal window (unless
        ``force``) or a request was sent less than ``retry_after_s`` ago.
        Raises ``CertificateError`` when there is no identity to renew.
        """
        identity = CarIdentity.load(self.directory)
        cert = identity.certificate()
        if cert is None:
            raise CertificateError(f"no certificate in {self.directory}: nothing to renew")
        if not force and not self.policy.due(cert):
            return None
        sent_at = self._read_state().get("sent_at")
        if (
            not force
            and isinstance(sent_at, (int, float))
            and 0 <= time.time() - sent_at < self.policy.retry_after_s
        ):
            return None  # waiting for the answer to the last request
        csr = identity.renewal_csr_pem(new_key=self.policy.new_key)
        _LOGGER.info(
            "certificate in %s expires %s: requesting a renewal",
            self.directory,
            cert.not_valid_after_utc.isoformat(),
        )
        return {"request_id": secrets.token_hex(8), "csr": csr.decode("ascii")}

    def mark_sent(self, request_id: str) -> None:
        """Record that the request is queued (no new one before ``retry_after_s``)."""
        self._write_state({"request_id": request_id, "sent_at": time.time()})

    def apply_response(self, body: dict[str, Any]) -> RenewalOutcome:
        """Check and install the certificate of a ``renew_response``, or record the refusal."""
        request_id = str(body.get("request_id", ""))
        if not body.get("ok"):
            detail = str(body.get("detail") or "refused")
            _LOGGER.warning("home refused certificate renewal %s: %s", request_id, detail)
            state = self._read_state()
            state["last_error"] = detail
            self._write_state(state)
            return RenewalOutcome(ok=False, installed=False, detail=detail)
        cert_pem = str(body.get("certificate", "")).encode()
        ca = body.get("ca")
        ca_pem = ca.encode() if isinstance(ca, str) else None
        try:
            identity = CarIdentity.load(self.directory)
            installed = identity.install_renewed_certificate(cert_pem, ca_pem)
        except CertificateError as err:
            _LOGGER.error("rejecting renewed certificate %s: %s", request_id, err)
            state = self._read_state()
            state["last_error"] = str(err)
            self._write_state(state)
            return RenewalOutcome(ok=False, installed=False, detail=str(err))
        self.state_path.unlink(missing_ok=True)
        expiry = identity.certificate_expiry()
        if installed:
            _LOGGER.info(
                "installed renewed certificate (expires %s)", expiry.isoformat() if expiry else "?"
            )
        return RenewalOutcome(
            ok=True,
            installed=installed,
            detail="installed" if installed else "already installed",
            not_after=expiry,
        )


# --- hub side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Issued:
    key_sha256: str
    cert_pem: str
    serial: int
    not_after: dt.datetime
    at: float


class HubRenewals:
    """The hub's answer to ``renew_request`` (blocking: use an executor).

    The vehicle id always comes from the caller (the peer's verified
    certificate). A request for a key that was just signed gets the same
    certificate again (a resent request is not a second certificate); a
    request for yet another key within ``min_interval_s`` of the last
    renewal is refused, so a misbehaving car cannot fill the CA's records.
    """

    def __init__(
        self, ca: HomeCA, *, days: int = CAR_CERT_DAYS, min_interval_s: float = 600.0
    ) -> None:
        self.ca = ca
        self.days = days
        self.min_interval_s = min_interval_s
        self._last: dict[str, _Issued] = {}
        self._lock = threading.Lock()

    def handle(
        self,
        vehicle_id: str,
        body: dict[str, Any],
        previous_not_after: dt.datetime | None = None,
        peer_serial: int | None = None,
    ) -> tuple[dict[str, Any], RenewalEvent]:
        """Sign (or refuse) one request; return the ``renew_response`` body and what happened.

        ``peer_serial`` is the serial of the certificate the car is connected
        with: if it is revoked (before or while signing) nothing is handed
        out, and a certificate signed meanwhile is revoked too.
        """
        request_id = str(body.get("request_id", ""))[:64]
        csr_text = body.get("csr")

        def refuse(detail: str) -> tuple[dict[str, Any], RenewalEvent]:
            _LOGGER.warning("refusing certificate renewal for %s: %s", vehicle_id, detail)
            event = RenewalEvent(
                vehicle_id=vehicle_id,
                request_id=request_id,
                ok=False,
                detail=detail,
                previous_not_after=previous_not_after,
            )
            return {"request_id": request_id, "ok": False, "detail": detail}, event

        if peer_serial is not None and self.ca.is_revoked(peer_serial):
            return refuse("the certificate of this connection is revoked")
        if not isinstance(csr_text, str):
            return refuse("the request carries no CSR")
        csr_pem = csr_text.encode("utf-8", "replace")
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as err:
            return refuse(f"not a PEM certificate request: {err}")
        key_sha = hashlib.sha256(
            csr.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).hexdigest()
        with self._lock:
            last = self._last.get(vehicle_id)
            now = time.monotonic()
            reissued = False
            if last is not None and last.key_sha256 == key_sha and csr.is_signature_valid:
                issued, reissued = last, True
            elif last is not None and now - last.at < self.min_interval_s:
                return refuse(
                    f"renewed {now - last.at:.0f} s ago; "
                    f"try again in {self.min_interval_s - (now - last.at):.0f} s"
                )
            else:
                try:
                    cert_pem = self.ca.sign_car_csr(csr_pem, vehicle_id=vehicle_id, days=self.days)
                except CertificateError as err:
                    return refuse(str(err))
                cert = x509.load_pem_x509_certificate(cert_pem)
                issued = _Issued(
                    key_sha256=key_sha,
                    cert_pem=cert_pem.decode("ascii"),
                    serial=cert.serial_number,
                    not_after=cert.not_valid_after_utc,
                    at=now,
                )
                self._last[vehicle_id] = issued
        if peer_serial is not None and self.ca.is_revoked(peer_serial):
            # Revoked while we signed: the new certificate must not outlive the old one.
            with contextlib.suppress(CertificateError):
                self.ca.revoke(format(issued.serial, "x"))
            return refuse("the certificate of this connection is revoked")
        _LOGGER.info(
            "renewed the certificate of %s: serial %x, expires %s%s",
            vehicle_id,
            issued.serial,
            issued.not_after.isoformat(),
            " (sent again)" if reissued else "",
        )
        response = {
            "request_id": request_id,
            "ok": True,
            "certificate": issued.cert_pem,
            "ca": self.ca.ca_cert_pem.decode("ascii"),
            "not_after": issued.not_after.timestamp(),
        }
        event = RenewalEvent(
            vehicle_id=vehicle_id,
            request_id=request_id,
            ok=True,
            detail="sent again" if reissued else "renewed",
            serial=issued.serial,
            not_after=issued.not_after,
            previous_not_after=previous_not_after,
            reissued=reissued,
        )
        return response, event
