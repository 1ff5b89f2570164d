"""FrameDecoder: CAN frames -> named signal values, with counters.

Each bus name (``can0``, ``can1``...) maps to one or more cantools databases.
The decoder resolves a frame ID to its message once per (bus, ID) and caches
the answer, so a frame costs a dict lookup before any decoding.

Outcomes, each counted in :class:`DecodeStats`:

* ``unknown``: no database on that bus has the ID (normal on a real car: not
  an error);
* ``filtered``: the message is known but the profile needs nothing from it;
* ``unchanged``: with a profile, the bits of the wanted signals are the same
  as in the previous frame of that message, so decoding would change nothing;
* ``decoded``: cantools decoded it;
* ``errors``: decoding failed (wrong length, bad multiplexer...): counted,
  logged once per (bus, ID), never raised.

Only decoding what the profile needs, and skipping frames whose relevant bits
did not change, is what makes the decoder several times faster than decoding
every frame: most frames on a bus repeat the same values at 10-100 Hz.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import can
from cantools.database.can import Database, Message

from vehicle_agent.can_input import DEFAULT_BUS
from vehicle_agent.dbc_loader import signal_mask

_LOGGER = logging.getLogger(__name__)
_EXTENDED = 0x80000000
_UNKNOWN = 0
_FILTERED = 1
_DECODE = 2

# bus -> message name -> signal names the consumer needs
Wanted = Mapping[str, Mapping[str, Collection[str]]]


class DecodedFrame(NamedTuple):
    """One decoded frame."""

    timestamp: float
    bus: str
    frame_id: int
    message: str
    signals: dict[str, Any]


@dataclass(slots=True)
class DecodeStats:
    """Counters of what happened to the frames (see module docstring)."""

    frames: int = 0
    decoded: int = 0
    unchanged: int = 0
    filtered: int = 0
    unknown: int = 0
    errors: int = 0
    unknown_ids: set[tuple[str, int]] = field(default_factory=set)
    error_ids: set[tuple[str, int]] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        """Counters as a plain dict (for JSON summaries)."""
        return {
            "frames_read": self.frames,
            "decoded": self.decoded,
            "unchanged": self.unchanged,
            "filtered": self.filtered,
            "unknown_id_frames": self.unknown,
            "unknown_ids": len(self.unknown_ids),
            "decode_errors": self.errors,
            "decode_error_ids": len(self.error_ids),
        }


class _Route:
    """What to do with frames of one (bus, ID): cached after the first frame."""

    __slots__ = ("decode", "kind", "last", "mask", "name")

    def __init__(self, kind: int, message: Message | None = None, mask: int | None = None) -> None:
        self.kind = kind
        self.name = message.name if message is not None else ""
        # Bound method cached: saves an attribute lookup per frame.
        self.decode = message.decode if message is not None else _no_decode
        self.mask = mask
        self.last: tuple[int, int] | None = None


def _no_decode(data: bytes, decode_choices: bool = False) -> dict[str, Any]:
    raise AssertionError("unknown or filtered routes are never decoded")


def signal_bits(message: Message, names: Collection[str]) -> int | None:
    """Bit mask (over ``int.from_bytes(data, "little")``) of the named signals.

    Returns None when the message is multiplexed or the layout is not plain
    (then every frame must be decoded).
    """
    if message.is_multiplexed():
        return None
    mask = 0
    for signal in message.signals:
        if signal.name in names:
            mask |= signal_mask(signal)
    return mask


class FrameDecoder:
    """Decode frames per bus with cantools; see the module docstring.

    *databases* maps bus names to databases; the key ``"*"`` applies to any
    bus not listed. *wanted* (bus -> message -> signals) restricts decoding to
    what a profile uses and enables the unchanged-bits shortcut.
    """

    def __init__(
        self,
        databases: Mapping[str, Sequence[Database]],
        *,
        wanted: Wanted | None = None,
        decode_choices: bool = False,
        skip_unchanged: bool = True,
    ) -> None:
        self._databases = {bus: list(dbs) for bus, dbs in databases.items()}
        self._wanted = wanted
        self._decode_choices = decode_choices
        self._skip_unchanged = skip_unchanged and wanted is not None
        self._routes: dict[str, dict[int, _Route]] = {}
        self._lookup: dict[str, dict[int, Message]] = {}
        self.stats = DecodeStats()

    def reset_stats(self) -> None:
        """Start counting from zero (the route cache is kept)."""
        self.stats = DecodeStats()

    def decode_message(self, msg: can.Message) -> DecodedFrame | None:
        """Decode a python-can message (bus name from its channel)."""
        if msg.is_error_frame or msg.is_remote_frame:
            self.stats.frames += 1
            return None
        channel = msg.channel
        return self.decode(
            DEFAULT_BUS if channel is None else str(channel),
            msg.arbitration_id,
            msg.data,
            msg.timestamp,
            msg.is_extended_id,
        )

    def decode(
        self,
        bus: str,
        frame_id: int,
        data: bytes | bytearray,
        timestamp: float,
        is_extended: bool = False,
    ) -> DecodedFrame | None:
        """Decode one frame; None when unknown, filtered, unchanged or broken."""
        stats = self.stats
        stats.frames += 1
        key = frame_id | _EXTENDED if is_extended else frame_id
        routes = self._routes.get(bus)
        route = routes.get(key) if routes is not None else None
        if route is None:
            route = self._resolve(bus, frame_id, is_extended)
            self._routes.setdefault(bus, {})[key] = route
        kind = route.kind
        if kind != _DECODE:
            if kind == _UNKNOWN:
                stats.unknown += 1
                stats.unknown_ids.add((bus, frame_id))
            else:
                stats.filtered += 1
            return None
        mask = route.mask
        if mask is not None:
            state = (len(data), int.from_bytes(data, "little") & mask)
            if state == route.last:
                stats.unchanged += 1
                return None
            route.last = state
        try:
            signals = route.decode(bytes(data), decode_choices=self._decode_choices)
        except Exception as exc:  # cantools/bitstruct raise many types; never fatal
            route.last = None
            stats.errors += 1
            if (bus, frame_id) not in stats.error_ids:
                stats.error_ids.add((bus, frame_id))
                _LOGGER.warning(
                    "cannot decode %s 0x%X (%s, %d bytes): %s; further errors of this ID "
                    "are only counted",
                    bus,
                    frame_id,
                    route.name,
                    len(data),
                    exc,
                )
            return None
        stats.decoded += 1
        return DecodedFrame(timestamp, bus, frame_id, route.name, signals)  # type: ignore[arg-type]

    def _dbs_for(self, bus: str) -> list[Database]:
        return self._databases.get(bus) or self._databases.get("*") or []

    def _find(self, bus: str, frame_id: int, is_extended: bool) -> Message | None:
        table = self._lookup.get(bus)
        if table is None:
            table = {}
            # First database wins for an ID listed twice (the bus's main DBC first).
            for db in reversed(self._dbs_for(bus)):
                for m in db.messages:
                    table[m.frame_id | (_EXTENDED if m.is_extended_frame else 0)] = m
            self._lookup[bus] = table
        found = table.get(frame_id | (_EXTENDED if is_extended else 0))
        if found is None:
            # Tolerate a log that lost the extended flag (or a DBC that set it).
            found = table.get(frame_id if is_extended else frame_id | _EXTENDED)
        return found

    def _resolve(self, bus: str, frame_id: int, is_extended: bool) -> _Route:
        message = self._find(bus, frame_id, is_extended)
        if message is None:
            return _Route(_UNKNOWN)
        if self._wanted is None:
            return _Route(_DECODE, message)
        names = self._wanted.get(bus, {}).get(message.name)
        if not names:
            return _Route(_FILTERED, message)
        mask = signal_bits(message, names) if self._skip_unchanged else None
        return _Route(_DECODE, message, mask)
