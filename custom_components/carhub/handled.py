"""The durable record of car messages acted on, so none is acted on twice across a crash.

The bridge acks a message only after the hub's handler returned, and hands
a message over again when Home Assistant died before recording it (with
``env.redelivered`` set). State updates may repeat (applying a value twice
changes nothing), but two kinds of message have effects that must not:

- ``voice_request``: **at-most-once**. The request's id is recorded (committed
  to disk) *before* it is carried out. Killed after that, the request is not
  carried out again when the car resends it: a home action (a door, a light)
  is never repeated late; the driver hears no answer instead.
- ``event`` (DTCs, trips, alerts, ...): **deduplicated at-least-once**. An event
  already recorded is skipped; otherwise it is fired on the bus and recorded
  in the same event-loop step, before any listener of the event has run (Home
  Assistant runs them later in the loop). Killed before the record commits,
  the event had no effect outside this process and is fired when resent;
  killed after it, it is not fired again.

The record is one row per car (``bridge.dedup.DedupRecord``: the newest
``(stream, seq)`` acted on; delivery is in order), in
``.storage/carhub/hub/handled.db``. Its writes are small synchronous SQLite
commits on the event loop, on purpose: an await between acting and recording
would let listeners run, and events and voice requests are rare.
"""

from __future__ import annotations

from pathlib import Path

from bridge.dedup import DedupRecord
from bridge.protocol import Envelope, MessageType

from .const import LOGGER

AT_MOST_ONCE = frozenset({MessageType.VOICE_REQUEST})
"""Recorded before acting: never carried out twice, possibly not at all after a crash."""
AT_LEAST_ONCE_DEDUPLICATED = frozenset({MessageType.EVENT})
"""Acted on, then recorded in the same loop step: never fired twice, never lost."""


class HandledRecord:
    """Which car messages with effects were acted on (see the module doc)."""

    def __init__(self, path: Path) -> None:
        """Describe the record; ``open`` (blocking: run it in the executor) loads it."""
        self._record = DedupRecord(path)

    def open(self) -> None:
        """Open the database (blocking)."""
        self._record.open()

    def close(self) -> None:
        """Close the database (blocking, but only a close)."""
        self._record.close()

    def skip(self, vehicle_id: str, env: Envelope) -> bool:
        """True if ``env`` has an effect and was acted on already (a redelivery)."""
        if env.type not in AT_MOST_ONCE and env.type not in AT_LEAST_ONCE_DEDUPLICATED:
            return False
        if not self._record.seen(vehicle_id, env.stream, env.seq):
            return False
        LOGGER.info(
            "Not handling %s %s of %s again: it was handled before a restart",
            env.type,
            env.message_id,
            vehicle_id,
        )
        return True

    def before_acting(self, vehicle_id: str, env: Envelope) -> None:
        """Record an at-most-once message before it is acted on (commits)."""
        if env.type in AT_MOST_ONCE:
            self._record.record(vehicle_id, env.stream, env.seq)

    def after_acting(self, vehicle_id: str, env: Envelope) -> None:
        """Record a deduplicated at-least-once message right after acting (commits)."""
        if env.type in AT_LEAST_ONCE_DEDUPLICATED:
            self._record.record(vehicle_id, env.stream, env.seq)
