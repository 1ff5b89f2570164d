"""The car's paired homes on disk.

Layout under the car's state directory (``~/.local/share/carhub-agent/`` by
default, ``CARHUB_AGENT_DIR`` or ``--state-dir`` to override)::

    vehicle_id                 this car's id (made once, sent at pairing)
    homes/<hub_id>/            one directory per paired home (0700)
        car.key                the car's private key for this home (0600)
        car.crt                its certificate, signed by the home CA
        ca.crt                 the home CA the car pins
        home.json              {"version", "hub_id", "lan_urls", "external_url", "paired_at"}
        outbox.db, ledger.db   the link's durable state (bridge.outbox / bridge.ledger)
    homes/.pending-<hub_id>/   key material of a pairing in progress

A car can be paired with several homes; each has its own key, certificate,
outbox and sequence numbers. Pairing writes the new key into the pending
directory and ``commit`` moves it into place only after the certificate
arrived, so a failed pairing never damages a working link. All methods block
(file I/O): call them from an executor in asyncio code.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge._fileio import make_private_dir, write_public
from bridge.errors import BridgeError
from bridge.pairing import HubInfo
from bridge.pki import CAR_CERT_FILE, CAR_KEY_FILE, HOME_CA_FILE, CarIdentity, is_valid_vehicle_id

__all__ = [
    "HOMES_DIR",
    "HOME_FILE",
    "LINK_STATE_FILES",
    "VEHICLE_ID_FILE",
    "HomeRecord",
    "HomeRegistry",
    "default_state_dir",
]

_LOGGER = logging.getLogger(__name__)

HOMES_DIR = "homes"
HOME_FILE = "home.json"
VEHICLE_ID_FILE = "vehicle_id"
LINK_STATE_FILES = (
    "outbox.db",
    "outbox.db-wal",
    "outbox.db-shm",
    "ledger.db",
    "ledger.db-wal",
    "ledger.db-shm",
)
_PENDING = ".pending-"
_IDENTITY_FILES = (CAR_KEY_FILE, CAR_CERT_FILE, HOME_CA_FILE)
_MAX_HOME_JSON = 64 * 1024


def default_state_dir() -> Path:
    """``$CARHUB_AGENT_DIR`` or ``~/.local/share/carhub-agent``."""
    env = os.environ.get("CARHUB_AGENT_DIR")
    return Path(env) if env else Path.home() / ".local" / "share" / "carhub-agent"


@dataclass(frozen=True, kw_only=True)
class HomeRecord:
    """One paired home, as ``home.json`` describes it."""

    hub_id: str
    lan_urls: list[str]
    external_url: str | None
    paired_at: dt.datetime
    directory: Path
    remote_urls: list[str] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        """Every URL to try, LAN first, then the external one, then the remote ones."""
        outside = [*([self.external_url] if self.external_url else []), *self.remote_urls]
        return [*self.lan_urls, *outside]

    def to_json(self) -> dict[str, Any]:
        """The content of ``home.json``."""
        return {
            "version": 1,
            "hub_id": self.hub_id,
            "lan_urls": list(self.lan_urls),
            "external_url": self.external_url,
            "remote_urls": list(self.remote_urls),
            "paired_at": self.paired_at.isoformat(),
        }


def _check_hub_id(hub_id: str) -> str:
    # The id names a directory: the same safe alphabet as vehicle ids.
    if not is_valid_vehicle_id(hub_id):
        raise BridgeError(f"not a valid hub id: {hub_id!r}")
    return hub_id


class HomeRegistry:
    """The homes this car is paired with, under ``root/homes/`` (``root`` = state directory)."""

    def __init__(self, root: Path) -> None:
        """Use ``root`` as the car's state directory; nothing is created yet."""
        self.root = root
        self.homes_dir = root / HOMES_DIR

    def directory(self, hub_id: str) -> Path:
        """The directory of one home (whether or not it is paired)."""
        return self.homes_dir / _check_hub_id(hub_id)

    def vehicle_id(self) -> str:
        """This car's id: read from the state directory, made once if missing."""
        path = self.root / VEHICLE_ID_FILE
        with contextlib.suppress(FileNotFoundError):
            value = path.read_text(encoding="utf-8").strip()
            if is_valid_vehicle_id(value):
                return value
            raise BridgeError(f"{path} does not hold a valid vehicle id")
        make_private_dir(self.root)
        value = f"car-{secrets.token_hex(6)}"
        write_public(path, value.encode() + b"\n")
        return value

    def list(self) -> builtins.list[HomeRecord]:
        """Every paired home, oldest pairing first. Broken entries are skipped with a log line."""
        if not self.homes_dir.is_dir():
            return []
        records = []
        for entry in sorted(self.homes_dir.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            try:
                records.append(self._read_record(entry))
            except BridgeError as err:
                _LOGGER.warning("ignoring %s: %s", entry, err)
        return sorted(records, key=lambda r: r.paired_at)

    def get(self, hub_id: str) -> HomeRecord | None:
        """The record of one paired home, or None."""
        directory = self.directory(hub_id)
        if not (directory / HOME_FILE).exists():
            return None
        return self._read_record(directory)

    def load_identity(self, hub_id: str) -> CarIdentity:
        """The car's identity (key, certificate, pinned CA) for one home."""
        return CarIdentity.load(self.directory(hub_id))

    def remove(self, hub_id: str) -> None:
        """Forget a home: delete its directory, key material and link state included."""
        directory = self.directory(hub_id)
        if not directory.is_dir():
            raise BridgeError(f"not paired with home {hub_id!r}")
        shutil.rmtree(directory)
        _LOGGER.info("removed home %s", hub_id)

    # -- pairing ---------------------------------------------------------------------------
    def identity_factory(self, hub: HubInfo) -> CarIdentity:
        """Make a fresh identity for a pairing in progress (``PairingServer``'s factory)."""
        pending = self.homes_dir / f"{_PENDING}{_check_hub_id(hub.hub_id)}"
        make_private_dir(self.root)
        make_private_dir(self.homes_dir)
        if pending.exists():
            shutil.rmtree(pending)
        return CarIdentity.create(pending)

    def commit(self, hub: HubInfo) -> HomeRecord:
        """Move a completed pairing's identity into place and write ``home.json``.

        Re-pairing a home keeps its outbox and ledger (so sequence numbers go
        on) if the home CA is unchanged; a different CA means a new home
        behind the same id, so the old link state is deleted.
        """
        pending = self.homes_dir / f"{_PENDING}{_check_hub_id(hub.hub_id)}"
        for name in _IDENTITY_FILES:
            if not (pending / name).exists():
                raise BridgeError(f"no completed pairing for home {hub.hub_id!r}")
        target = self.directory(hub.hub_id)
        make_private_dir(target)
        old_ca = target / HOME_CA_FILE
        if old_ca.exists() and old_ca.read_bytes() != (pending / HOME_CA_FILE).read_bytes():
            for name in LINK_STATE_FILES:
                (target / name).unlink(missing_ok=True)
        for name in _IDENTITY_FILES:
            (pending / name).replace(target / name)
        record = HomeRecord(
            hub_id=hub.hub_id,
            lan_urls=list(hub.lan_urls),
            external_url=hub.external_url,
            paired_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
            directory=target,
            remote_urls=list(hub.remote_urls),
        )
        write_public(target / HOME_FILE, json.dumps(record.to_json(), indent=2).encode() + b"\n")
        shutil.rmtree(pending, ignore_errors=True)
        return record

    def discard_pending(self) -> None:
        """Delete the key material of pairings that never completed."""
        if not self.homes_dir.is_dir():
            return
        for entry in self.homes_dir.iterdir():
            if entry.name.startswith(_PENDING):
                shutil.rmtree(entry, ignore_errors=True)

    # -- internals -----------------------------------------------------------------------
    def _read_record(self, directory: Path) -> HomeRecord:
        path = directory / HOME_FILE
        try:
            raw = path.read_bytes()
            if len(raw) > _MAX_HOME_JSON:
                raise BridgeError(f"{path} is too large")
            data = json.loads(raw)
            hub_id = _check_hub_id(str(data["hub_id"]))
            urls = data["lan_urls"]
            external = data.get("external_url")
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise BridgeError(f"{path}: lan_urls must be a list of strings")
            if external is not None and not isinstance(external, str):
                raise BridgeError(f"{path}: external_url must be a string or null")
            paired_at = dt.datetime.fromisoformat(str(data["paired_at"]))
            remote = data.get("remote_urls", [])
            if not isinstance(remote, list) or not all(isinstance(u, str) for u in remote):
                raise BridgeError(f"{path}: remote_urls must be a list of strings")
        except FileNotFoundError as err:
            raise BridgeError(f"{directory} has no {HOME_FILE}") from err
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise BridgeError(f"{path} is unreadable: {err}") from err
        if hub_id != directory.name:
            raise BridgeError(f"{path} names hub {hub_id!r}, not {directory.name!r}")
        return HomeRecord(
            hub_id=hub_id,
            lan_urls=urls,
            external_url=external,
            paired_at=paired_at,
            directory=directory,
            remote_urls=remote,
        )
