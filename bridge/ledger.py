"""Receiver side of effectively-once delivery: the highest seq handled per peer.

The sender keeps every unacked message in its outbox and resends from the
oldest after a reconnect; the receiver drops whatever it already handled.

Rules for an incoming durable message with sequence number ``seq`` from a peer
whose ledger says ``last``:

- ``seq <= last``: a duplicate (a resend, or a rewind). Dropped, but still
  acked (with ``last``), so the sender can trim its outbox.
- ``seq == last + 1``: the next message. Handled, then recorded.
- ``seq > last + 1``: a gap. **Accepted** and logged with the number of missing
  messages. A correct sender resends strictly in order from its outbox and
  trims only on ack, so a gap never comes from the network; it comes from the
  sender's own documented policy (its outbox dropped the oldest *state* rows at
  its size bound, or deep compaction removed superseded state rows). Refusing
  the message would stall the link forever on data that no longer exists.
  Order and at-most-once still hold: the ledger only moves forward.

Streams: a sender announces the random id of its outbox (``stream_id`` in its
hello). ``observe_stream`` records it per peer; when a known peer comes back
with a different id, its outbox was lost or recreated and its numbering
started again at 1, so the peer's seq is reset (logged) and its new messages
are delivered instead of being dropped as duplicates. A peer seen for the
first time with a stream id (or an older sender without one) changes nothing.

Redelivery: ``mark_handing`` is called before a message goes to the handler
and answers whether it *may have been handed over before*: in this process
(an earlier attempt raised or deferred) or in a process that died before
recording it. For the latter the ledger keeps a durable "handed up to"
reservation per peer, written ``HANDED_BATCH`` messages ahead (one write per
batch, not per message) and trimmed to the exact value on a clean ``close``;
after a crash every message up to the reservation is flagged (conservative:
a flag means "check your dedup record", never "this is a duplicate").

Persistence: SQLite (WAL, ``synchronous=FULL``), one row per peer. ``advance``
updates memory only; ``flush`` writes every changed peer in one transaction.
The server calls ``flush`` before it sends the cumulative ack, so an acked
message is always on record. A crash between handling and ``flush`` can at
worst hand the same messages to the handler again after restart (at-least-once
for that small window, with ``redelivered`` set), never lose them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from pathlib import Path

from bridge._sqlite import open_durable, transaction
from bridge.errors import OutboxStorageError

__all__ = ["HANDED_BATCH", "InboundLedger", "SeqVerdict"]

_LOGGER = logging.getLogger(__name__)

HANDED_BATCH = 256
"""How far ahead the durable "handed up to" reservation is written (see the module doc)."""


class SeqVerdict(Enum):
    """How an incoming seq relates to what the ledger has seen from that peer."""

    NEXT = "next"
    GAP = "gap"
    DUPLICATE = "duplicate"


class InboundLedger:
    """Highest seq handled per peer, in memory with a SQLite copy on disk.

    Nothing happens in ``__init__``; call ``await open()`` first. SQLite runs
    in a dedicated single-thread executor.
    """

    def __init__(self, path: Path, *, executor: ThreadPoolExecutor | None = None) -> None:
        self.path = path
        self._own_executor = executor is None
        self._executor = executor
        self._db: sqlite3.Connection | None = None
        self._last: dict[str, int] = {}
        self._streams: dict[str, str] = {}
        self._dirty: dict[str, int] = {}
        # Highest seq handed to a handler per peer (in this process or, after a
        # restart, as reserved by the previous one) and the durable reservation.
        self._handed: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def _run[T](self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise OutboxStorageError(f"ledger {self.path} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        """Open (creating) the database and load every peer's seq."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="carhub-ledger")
        self._last, self._streams, self._handed = await self._run(self._open_sync)
        self._reserved = dict(self._handed)

    def _open_sync(self) -> tuple[dict[str, int], dict[str, str], dict[str, int]]:
        try:
            db = open_durable(
                self.path,
                [
                    "CREATE TABLE IF NOT EXISTS ledger "
                    "(peer TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
                    "CREATE TABLE IF NOT EXISTS streams "
                    "(peer TEXT PRIMARY KEY, stream TEXT NOT NULL) WITHOUT ROWID",
                    "CREATE TABLE IF NOT EXISTS handed "
                    "(peer TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
                ],
            )
            try:
                rows = db.execute("SELECT peer, seq FROM ledger").fetchall()
                streams = db.execute("SELECT peer, stream FROM streams").fetchall()
                handed = db.execute("SELECT peer, seq FROM handed").fetchall()
            except BaseException:
                db.close()
                raise
        except (sqlite3.Error, OSError) as err:
            raise OutboxStorageError(f"cannot open ledger {self.path}: {err}") from err
        self._db = db
        return (
            {str(p): int(s) for p, s in rows},
            {str(p): str(s) for p, s in streams},
            {str(p): int(s) for p, s in handed},
        )

    async def close(self) -> None:
        """Write pending changes (best effort) and close."""
        if self._executor is None:
            return
        with contextlib.suppress(OutboxStorageError):
            await self.flush()
            # A clean stop: the reservation shrinks to what was really handed over,
            # so the next process flags nothing that was never delivered.
            exact = {p: self._handed.get(p, 0) for p, r in self._reserved.items()}
            await self._run(self._write_handed_sync, exact)
        await self._run(self._close_sync)
        if self._own_executor:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _close_sync(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def last(self, peer: str) -> int:
        """Highest seq handled from ``peer`` (0 if none)."""
        return self._last.get(peer, 0)

    def classify(self, peer: str, seq: int) -> SeqVerdict:
        """Whether ``seq`` is the next message, after a gap, or a duplicate."""
        last = self._last.get(peer, 0)
        if seq <= last:
            return SeqVerdict.DUPLICATE
        if seq == last + 1:
            return SeqVerdict.NEXT
        _LOGGER.warning(
            "seq gap from %s: expected %d, got %d (%d messages missing; the sender's "
            "outbox dropped them under its size policy). Accepting.",
            peer,
            last + 1,
            seq,
            seq - last - 1,
        )
        return SeqVerdict.GAP

    def advance(self, peer: str, seq: int) -> None:
        """Record in memory that ``seq`` was handled (never moves backwards)."""
        if seq > self._last.get(peer, 0):
            self._last[peer] = seq
            self._dirty[peer] = seq

    def reset(self, peer: str) -> None:
        """Forget a peer (it was removed or re-paired); written by the next flush."""
        self._last.pop(peer, None)
        self._streams.pop(peer, None)
        self._handed.pop(peer, None)
        self._reserved.pop(peer, None)
        self._dirty[peer] = -1

    async def mark_handing(self, peer: str, seq: int) -> bool:
        """Note that ``seq`` goes to the handler now; True if it may have gone before.

        Before the first message past the durable reservation, the reservation
        moves ``HANDED_BATCH`` ahead (written at once). Raises
        ``OutboxStorageError``: then the message must not be handed over.
        """
        before = self._handed.get(peer, 0)
        if seq > self._reserved.get(peer, 0):
            async with self._lock:
                target = seq + HANDED_BATCH
                await self._run(self._write_handed_sync, {peer: target})
                self._reserved[peer] = target
        self._handed[peer] = max(before, seq)
        return seq <= before

    def _write_handed_sync(self, handed: dict[str, int]) -> None:
        db = self._db
        if db is None:
            raise OutboxStorageError(f"ledger {self.path} is not open")

        def write(db: sqlite3.Connection) -> None:
            for peer, seq in handed.items():
                db.execute(
                    "INSERT INTO handed (peer, seq) VALUES (?, ?) "
                    "ON CONFLICT (peer) DO UPDATE SET seq = excluded.seq",
                    (peer, seq),
                )

        try:
            transaction(db, write)
        except sqlite3.Error as err:
            raise OutboxStorageError(f"ledger {self.path}: {err}") from err

    def stream(self, peer: str) -> str | None:
        """The stream id last announced by ``peer`` (None if it never sent one)."""
        return self._streams.get(peer)

    async def observe_stream(self, peer: str, stream_id: str) -> bool:
        """Record the peer's stream id; True if it changed and the peer's seq was reset.

        Written at once (one transaction with the reset), before the caller
        tells the peer what it has. Raises ``OutboxStorageError``.
        """
        async with self._lock:
            old = self._streams.get(peer)
            if old == stream_id:
                return False
            changed = old is not None
            dropped = self._dirty.pop(peer, None) if changed else None
            try:
                await self._run(self._write_stream_sync, peer, stream_id, changed)
            except BaseException:
                if dropped is not None:
                    self._dirty.setdefault(peer, dropped)
                raise
            self._streams[peer] = stream_id
            if changed:
                last = self._last.pop(peer, 0)
                self._handed.pop(peer, None)
                self._reserved.pop(peer, None)
                _LOGGER.warning(
                    "%s started a new message stream (%s, was %s): its outbox was lost or "
                    "recreated; forgetting its old seq %d so its new messages are delivered",
                    peer,
                    stream_id,
                    old,
                    last,
                )
            return changed

    def _write_stream_sync(self, peer: str, stream_id: str, reset: bool) -> None:
        db = self._db
        if db is None:
            raise OutboxStorageError(f"ledger {self.path} is not open")
        try:
            db.execute("BEGIN IMMEDIATE")
            if reset:
                db.execute("DELETE FROM ledger WHERE peer = ?", (peer,))
                db.execute("DELETE FROM handed WHERE peer = ?", (peer,))
            db.execute(
                "INSERT INTO streams (peer, stream) VALUES (?, ?) "
                "ON CONFLICT (peer) DO UPDATE SET stream = excluded.stream",
                (peer, stream_id),
            )
            db.execute("COMMIT")
        except sqlite3.Error as err:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise OutboxStorageError(f"ledger {self.path}: {err}") from err

    async def flush(self) -> None:
        """Persist every changed peer in one transaction; raise ``OutboxStorageError``."""
        async with self._lock:
            if not self._dirty:
                return
            dirty, self._dirty = self._dirty, {}
            try:
                await self._run(self._write_sync, dirty)
            except BaseException:
                # Keep them for the next flush; newer values win.
                for peer, seq in dirty.items():
                    self._dirty.setdefault(peer, seq)
                raise

    def _write_sync(self, dirty: dict[str, int]) -> None:
        db = self._db
        if db is None:
            raise OutboxStorageError(f"ledger {self.path} is not open")
        try:
            db.execute("BEGIN IMMEDIATE")
            for peer, seq in dirty.items():
                if seq < 0:
                    db.execute("DELETE FROM ledger WHERE peer = ?", (peer,))
                    db.execute("DELETE FROM streams WHERE peer = ?", (peer,))
                    db.execute("DELETE FROM handed WHERE peer = ?", (peer,))
                else:
                    # Memory is authoritative: it only moves forward, except on reset().
                    db.execute(
                        "INSERT INTO ledger (peer, seq) VALUES (?, ?) "
                        "ON CONFLICT (peer) DO UPDATE SET seq = excluded.seq",
                        (peer, seq),
                    )
            db.execute("COMMIT")
        except sqlite3.Error as err:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise OutboxStorageError(f"ledger {self.path}: {err}") from err
