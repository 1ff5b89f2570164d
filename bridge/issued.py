"""The home CA's record of issued car certificates (``issued.json``).

One JSON document ``{"version": 1, "crl_number": N, "certificates": [...]}``
with one certificate per line, replaced atomically on every change (temporary
file, fsync, rename: a crash leaves the old record or the new one).

Limits, chosen so that a home never reaches them:

- ``MAX_RECORD_BYTES`` (64 MiB) is the most a reader accepts: a larger file is
  not a record this CA wrote.
- ``ISSUE_LIMIT_BYTES`` (32 MiB, about 130,000 certificates of ~250 bytes)
  is where issuing stops: ``IssuedStore.write(..., issuing=True)`` raises
  ``CertificateError`` past it. Revocations are always written (a revocation
  adds a few bytes per row, far below the room left between the two limits),
  so reaching it never stops the hub from refusing a car or from starting.
- ``WARN_BYTES`` (16 MiB): every write or fresh read above it logs a warning.

With pruning (below) the record holds the certificates of the last validity
period only (a car with yearly renewals has two or three), so these limits
are decades of renewals and re-pairings away even for hundreds of cars.

Pruning (``prune_expired``): a record is dropped once its certificate expired
more than ``PRUNE_AFTER_EXPIRY`` ago (30 days, room for a hub clock that was
set back). TLS refuses an expired certificate by itself, revoked or not, so
neither the record nor its CRL entry is needed after that. Superseded
certificates (the older certificate of a renewed or re-paired car) stay
valid until they expire, which is what lets a car switch without a gap; they
are pruned at their expiry like any other. A revoked certificate is never
dropped before it expires: it stays refused until then.

Checks at every handshake stay cheap as the record grows: ``snapshot()``
keeps the parsed record and a set of revoked serials in memory, keyed by the
file's inode, size, mtime and ctime, and re-reads only when one changed (a
write by this object updates the cache directly). One ``stat`` and one set
lookup per connection.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bridge._fileio import write_public
from bridge.errors import CertificateError

__all__ = [
    "ISSUE_LIMIT_BYTES",
    "MAX_RECORD_BYTES",
    "PRUNE_AFTER_EXPIRY",
    "WARN_BYTES",
    "IssuedCertificate",
    "IssuedSnapshot",
    "IssuedStore",
    "prune_expired",
]

_LOGGER = logging.getLogger(__name__)

MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
ISSUE_LIMIT_BYTES: Final = 32 * 1024 * 1024
WARN_BYTES: Final = 16 * 1024 * 1024
PRUNE_AFTER_EXPIRY: Final = dt.timedelta(days=30)
_FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedCertificate:
    """One car certificate the CA issued (a row of ``issued.json``)."""

    serial: int
    vehicle_id: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    revoked_at: dt.datetime | None = None

    @property
    def serial_hex(self) -> str:
        """The serial as lowercase hex, the form ``carhub-bridge revoke`` accepts."""
        return format(self.serial, "x")

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in ``issued.json``."""
        return {
            "serial": self.serial_hex,
            "vehicle_id": self.vehicle_id,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IssuedCertificate:
        """Parse one row of ``issued.json``."""
        revoked = data.get("revoked_at")
        return cls(
            serial=int(str(data["serial"]), 16),
            vehicle_id=str(data["vehicle_id"]),
            not_before=dt.datetime.fromisoformat(str(data["not_before"])),
            not_after=dt.datetime.fromisoformat(str(data["not_after"])),
            sha256=str(data["sha256"]),
            revoked_at=dt.datetime.fromisoformat(str(revoked)) if revoked else None,
        )


@dataclass(frozen=True, slots=True)
class IssuedSnapshot:
    """The record as read at one moment, with the revoked serials indexed."""

    records: tuple[IssuedCertificate, ...]
    crl_number: int
    revoked: frozenset[int]
    size: int

    @classmethod
    def of(cls, records: Iterable[IssuedCertificate], crl_number: int, size: int) -> IssuedSnapshot:
        """Build a snapshot (and its revoked-serial index) from records."""
        rows = tuple(records)
        revoked = frozenset(r.serial for r in rows if r.revoked_at is not None)
        return cls(rows, crl_number, revoked, size)

    def is_revoked(self, serial: int) -> bool:
        """True if the certificate with this serial is on record as revoked."""
        return serial in self.revoked


def prune_expired(
    records: Iterable[IssuedCertificate], now: dt.datetime
) -> list[IssuedCertificate]:
    """The records whose certificate has not been expired for ``PRUNE_AFTER_EXPIRY`` yet."""
    cutoff = now - PRUNE_AFTER_EXPIRY
    return [r for r in records if r.not_after >= cutoff]


# (inode, size, mtime_ns, ctime_ns): a rename over the file changes the inode,
# an in-place edit the times or the size.
type _FileSignature = tuple[int, int, int, int]


def _signature(st: os.stat_result) -> _FileSignature:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class IssuedStore:
    """Reads and writes ``issued.json``; ``snapshot()`` is cached (see the module doc).

    Serialise writers with the CA's lock: the store itself only makes each
    write atomic. Reads need no lock.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = MAX_RECORD_BYTES,
        issue_limit_bytes: int = ISSUE_LIMIT_BYTES,
        warn_bytes: int = WARN_BYTES,
    ) -> None:
        """Use ``path``; the byte limits are parameters so tests can reach them quickly."""
        self.path = path
        self.max_bytes = max_bytes
        self.issue_limit_bytes = issue_limit_bytes
        self.warn_bytes = warn_bytes
        self._cached: tuple[_FileSignature, IssuedSnapshot] | None = None
        # Serialised rows by serial: a write re-encodes only the rows that changed.
        self._rows: dict[int, tuple[IssuedCertificate, bytes]] = {}

    def snapshot(self) -> IssuedSnapshot:
        """The current record; read from disk only if the file changed since last time.

        A missing file is an empty record. Raises ``CertificateError`` if the
        file is unreadable, too large or corrupt (callers fail closed).
        """
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return IssuedSnapshot.of((), 0, 0)
        except OSError as err:
            raise CertificateError(f"{self.path} unreadable: {err}") from err
        cached = self._cached
        if cached is not None and cached[0] == _signature(st):
            return cached[1]
        return self._load()

    def write(
        self, records: Iterable[IssuedCertificate], *, crl_number: int, issuing: bool = False
    ) -> IssuedSnapshot:
        """Replace the record atomically and return it as a snapshot.

        With ``issuing`` (a new certificate is in ``records``) the write is
        refused with ``CertificateError`` past ``issue_limit_bytes``; other
        writes (revocations, pruning) are refused only past ``max_bytes``.
        """
        rows = tuple(records)
        encoded = [self._row(r) for r in rows]
        self._rows = {r.serial: (r, row) for r, row in zip(rows, encoded, strict=True)}
        head = f'{{"version": {_FORMAT_VERSION}, "crl_number": {int(crl_number)}, '
        data = (
            head.encode() + b'"certificates": [\n' + b",\n".join(encoded) + b"\n]}\n"
            if encoded
            else head.encode() + b'"certificates": []}\n'
        )
        limit = self.issue_limit_bytes if issuing else self.max_bytes
        if len(data) > limit:
            raise CertificateError(
                f"{self.path} would grow to {len(data)} bytes, past its limit of {limit}: "
                f"{len(rows)} certificates are on record; revoke cars that are gone "
                "(expired certificates are pruned automatically)"
            )
        self._warn_if_large(len(data), len(rows))
        write_public(self.path, data)
        snap = IssuedSnapshot.of(rows, crl_number, len(data))
        try:
            st = self.path.stat()
        except OSError:
            self._cached = None
        else:
            self._cached = (_signature(st), snap) if st.st_size == len(data) else None
        return snap

    # -- internals ------------------------------------------------------------------
    def _row(self, record: IssuedCertificate) -> bytes:
        cached = self._rows.get(record.serial)
        # Rows come back as the same objects from the snapshot: identity is the fast check.
        if cached is not None and (cached[0] is record or cached[0] == record):
            return cached[1]
        return json.dumps(record.to_json(), separators=(",", ":")).encode()

    def _load(self) -> IssuedSnapshot:
        try:
            # fstat the descriptor we read: the signature then belongs to these bytes.
            with self.path.open("rb") as handle:
                st = os.fstat(handle.fileno())
                if st.st_size > self.max_bytes:
                    raise CertificateError(
                        f"{self.path} is {st.st_size} bytes, past the {self.max_bytes} "
                        "a record of issued certificates may reach"
                    )
                data = handle.read(self.max_bytes + 1)
        except FileNotFoundError:
            return IssuedSnapshot.of((), 0, 0)
        except OSError as err:
            raise CertificateError(f"{self.path} unreadable: {err}") from err
        if len(data) > self.max_bytes:
            raise CertificateError(f"{self.path} grew past {self.max_bytes} bytes while read")
        try:
            doc = json.loads(data)
            records = [IssuedCertificate.from_json(row) for row in doc["certificates"]]
            crl_number = int(doc.get("crl_number", 0))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise CertificateError(f"{self.path} is corrupt: {err}") from err
        snap = IssuedSnapshot.of(records, crl_number, len(data))
        self._warn_if_large(len(data), len(records))
        self._cached = (_signature(st), snap)
        return snap

    def _warn_if_large(self, size: int, count: int) -> None:
        if size > self.warn_bytes:
            _LOGGER.warning(
                "%s holds %d certificates in %d bytes; issuing stops at %d bytes. "
                "Revoke cars that are gone; expired certificates are pruned automatically",
                self.path,
                count,
                size,
                self.issue_limit_bytes,
            )
