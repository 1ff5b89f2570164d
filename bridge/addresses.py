"""The addresses a car dials to reach one home, and which way it got through.

A home has three kinds of address (``home.json`` in the home's directory):

- ``lan_urls``: the direct mutual-TLS listener on the home network
  (``wss://192.168.1.10:8766``);
- ``external_url``: the same listener through a port the owner forwards;
- ``remote_urls``: Home Assistant's own web server from outside (its external
  URL, Home Assistant Cloud's remote URL), reached through the tunnel
  (``https://host/api/carhub/link``, see ``bridge.tunnel``).

The car dials the home network first and the outside after, starting each
group with the address that worked last (kept in ``link.json``). The home
sends a new list in an ``addresses`` message when its addresses change; the
car stores it in ``home.json``, so the next reconnect uses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from bridge._fileio import write_public
from bridge.errors import BridgeError, ProtocolError

__all__ = [
    "LINK_FILE",
    "ROUTE_HOME_NETWORK",
    "ROUTE_REMOTE",
    "HomeAddresses",
    "check_url",
    "load_addresses",
    "load_last_url",
    "store_addresses",
    "store_last_url",
]

ROUTE_HOME_NETWORK: Final[str] = "home_network"
"""The car reached home through an address on the home network."""
ROUTE_REMOTE: Final[str] = "remote"
"""The car reached home through an outside address (forwarded port or tunnel)."""

LINK_FILE: Final[str] = "link.json"
_HOME_FILE: Final[str] = "home.json"
_MAX_URLS: Final[int] = 16
_MAX_URL_LEN: Final[int] = 512
_SCHEMES: Final[frozenset[str]] = frozenset({"wss", "https", "ws", "http"})


def check_url(value: object) -> str:
    """The address as given; ``ProtocolError`` unless a ws(s)/http(s) URL with a host."""
    if not isinstance(value, str) or len(value) > _MAX_URL_LEN or not value.isprintable():
        raise ProtocolError("hub addresses must be printable text of at most 512 characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError as err:
        raise ProtocolError(f"not a valid hub address: {value!r}") from err
    if parts.scheme not in _SCHEMES or not host:
        raise ProtocolError(f"hub addresses must be ws(s):// or http(s):// with a host: {value!r}")
    return value


def _url_list(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or len(value) > _MAX_URLS:
        raise ProtocolError(f"{name} must be a list of at most {_MAX_URLS} URLs")
    return [check_url(u) for u in value]


@dataclass(frozen=True, kw_only=True)
class HomeAddresses:
    """Every address of one home, by kind (see the module doc)."""

    lan_urls: list[str]
    external_url: str | None = None
    remote_urls: list[str] = field(default_factory=list)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> HomeAddresses:
        """From an ``addresses`` message body or ``home.json`` (``ProtocolError`` if invalid)."""
        external = body.get("external_url")
        addresses = cls(
            lan_urls=_url_list(body.get("lan_urls", []), "lan_urls"),
            external_url=None if external is None else check_url(external),
            remote_urls=_url_list(body.get("remote_urls", []), "remote_urls"),
        )
        if not addresses.all_urls():
            raise ProtocolError("no hub address at all")
        return addresses

    def to_body(self) -> dict[str, Any]:
        """The ``addresses`` message body (and the matching ``home.json`` keys)."""
        return {
            "lan_urls": list(self.lan_urls),
            "external_url": self.external_url,
            "remote_urls": list(self.remote_urls),
        }

    def outside_urls(self) -> list[str]:
        """The addresses reachable from outside the home network, forwarded port first."""
        outside = [self.external_url] if self.external_url else []
        return list(dict.fromkeys([*outside, *self.remote_urls]))

    def all_urls(self) -> list[str]:
        """Every address, home network first."""
        return list(dict.fromkeys([*self.lan_urls, *self.outside_urls()]))

    def route(self, url: str) -> str:
        """``ROUTE_HOME_NETWORK`` for a home-network address, else ``ROUTE_REMOTE``."""
        return ROUTE_HOME_NETWORK if url in self.lan_urls else ROUTE_REMOTE

    def dial_order(self, last_good: str | None = None) -> list[str]:
        """Home network first, then outside; the address that worked last leads its group."""
        groups = [list(self.lan_urls), self.outside_urls()]
        for group in groups:
            if last_good in group:
                group.remove(last_good)
                group.insert(0, last_good)
        return list(dict.fromkeys([*groups[0], *groups[1]]))


def load_addresses(home_dir: Path) -> HomeAddresses:
    """The addresses in ``home_dir/home.json`` (blocking; ``BridgeError`` if unreadable)."""
    path = home_dir / _HOME_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return HomeAddresses.from_body(data)
    except (OSError, ValueError, ProtocolError) as err:
        raise BridgeError(f"cannot read the addresses in {path}: {err}") from err


def store_addresses(home_dir: Path, addresses: HomeAddresses) -> bool:
    """Write new addresses into ``home.json`` (other keys kept); False if unchanged (blocking)."""
    path = home_dir / _HOME_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BridgeError(f"cannot read {path}: {err}") from err
    updated = {**data, **addresses.to_body()}
    if updated == data:
        return False
    write_public(path, json.dumps(updated, indent=2).encode() + b"\n")
    return True


def load_last_url(home_dir: Path) -> str | None:
    """The address that worked last (``link.json``), or None (blocking, never raises)."""
    try:
        value = json.loads((home_dir / LINK_FILE).read_text(encoding="utf-8")).get("last_url")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def store_last_url(home_dir: Path, url: str) -> None:
    """Remember the address that worked (blocking)."""
    write_public(home_dir / LINK_FILE, json.dumps({"last_url": url}).encode() + b"\n")
