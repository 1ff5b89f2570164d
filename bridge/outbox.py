"""Durable sender queue: every durable message lives here until the peer acks it.

One SQLite database (WAL) per link. ``append`` numbers each message (``seq``
strictly increasing from 1, never reused, kept across restarts), stores it and
returns only after the transaction is on disk; ``pending`` hands the sender
what is still unacked, in order; ``ack`` deletes everything up to a cumulative
sequence number.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``. In WAL mode
``NORMAL`` keeps the database consistent but may lose the last transactions
on a power cut (the WAL is not fsynced at each commit). A car's power can be
cut at any moment, and a message whose ``append`` returned must not vanish, so
``FULL`` is the default. Its cost (one fsync per transaction) is paid once
per batch: concurrent appends and pending acks are grouped into one
transaction by a single writer (group commit) running in a dedicated
single-thread executor, which also keeps SQLite off the event loop.

Compaction (state only; events, voice, commands, results, vocabulary and
notifications are never compacted):

1. Tail coalescing: a ``state`` append whose predecessor is a ``state`` row not
   yet handed to the sender is merged into that row (newer value per signal
   wins) instead of adding a row. Rows never cross an event, so order relative
   to events is kept, and no seq is skipped.
2. When the size bound is reached: *deep compaction* removes from older
   ``state``/``snapshot`` rows every signal a newer row (or the incoming
   message) also carries, deleting rows that end up empty.
3. Still over the bound: the oldest ``state``/``snapshot`` rows are dropped
   until the outbox is back under 90 % of its bound (the receiver then sees a
   seq gap, which it logs; the newest value of every surviving signal is kept).
4. Still over (the outbox holds only never-dropped messages):
   ``OutboxFullError`` for the new message; nothing already stored is lost.

Stream identity: each outbox database gets a random ``stream_id`` when it is
created (kept in its ``meta`` table). The sender announces it in its hello; a
receiver that sees a new stream id for a peer knows the numbering started over
(the sender's state was lost or reinstalled) and resets its ledger for that
peer, instead of dropping the new stream's messages as duplicates.

Any SQLite failure (disk full, read-only file, I/O error) becomes
``OutboxStorageError`` for the caller; the in-memory state rolls back with the
transaction, so the outbox keeps working once the disk has room again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from bridge.errors import OutboxFullError, OutboxStorageError, ProtocolError
from bridge.protocol import (
    MAX_MESSAGE_SIZE,
    PROTOCOL_VERSION,
    Envelope,
    MessageType,
    decode,
    is_durable,
)

__all__ = ["DEFAULT_MAX_BYTES", "Outbox", "OutboxItem", "OutboxStats", "OutboxStore"]

_LOGGER = logging.getLogger(__name__)

DEFAULT_MAX_BYTES: Final[int] = 64 * 1024 * 1024
"""Default size bound of an outbox (sum of stored bodies plus a per-row overhead)."""

_ROW_OVERHEAD: Final[int] = 64
_LOW_WATER: Final[float] = 0.9
_STATE_LIKE: Final[frozenset[str]] = frozenset({MessageType.STATE, MessageType.SNAPSHOT})
_KIND_STATE: Final[int] = 0
_KIND_KEEP: Final[int] = 1

_SCHEMA: Final[str] = """
CREATE TABLE IF NOT EXISTS outbox (
    seq  INTEGER PRIMARY KEY,
    type TEXT    NOT NULL,
    ts   REAL    NOT NULL,
    kind INTEGER NOT NULL,
    body BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One stored message: its body is kept as the encoded JSON bytes."""

    seq: int
    type: str
    ts: float
    body: bytes

    def frame(self, v: int = PROTOCOL_VERSION) -> bytes:
        """The wire envelope, built around the stored body without re-encoding it."""
        return b"".join(
            (
                b'{"v":',
                str(v).encode(),
                b',"type":',
                orjson.dumps(self.type),
                b',"seq":',
                str(self.seq).encode(),
                b',"ts":',
                orjson.dumps(self.ts),
                b',"body":',
                self.body,
                b"}",
            )
        )

    def envelope(self, v: int = PROTOCOL_VERSION) -> Envelope:
        """The message as an ``Envelope`` (decodes the body)."""
        return Envelope(v=v, type=self.type, seq=self.seq, ts=self.ts, body=orjson.loads(self.body))


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxStats:
    """A summary of what the outbox holds."""

    count: int
    bytes: int
    last_seq: int
    acked_seq: int
    oldest_ts: float | None
    max_bytes: int


@dataclass(slots=True)
class _Counters:
    last_seq: int = 0
    acked_seq: int = 0
    total_bytes: int = 0
    count: int = 0
    tail_seq: int = 0
    tail_type: str = ""
    tail_size: int = 0


@dataclass(slots=True)
class _Pending:
    type: str
    body: bytes
    ts: float
    signals: dict[str, Any] | None
    future: asyncio.Future[int] | None = field(default=None)


class OutboxStore:
    """The synchronous SQLite core of ``Outbox``; every call must come from one thread.

    Use ``Outbox`` from asyncio code; this class exists so the core can be
    tested and benchmarked directly and used from a plain script.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        compact_state: bool = True,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_message_bytes: int = MAX_MESSAGE_SIZE,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.compact_state = compact_state
        self.synchronous = synchronous
        self.max_message_bytes = max_message_bytes
        self._db: sqlite3.Connection | None = None
        self._c = _Counters()
        self._stream = 0
        # Highest seq ever handed to a sender by this process. Rows above it
        # were never on the wire and may still be merged into. At open it is
        # the last stored seq: an earlier process may have sent those rows.
        self._sent = 0

    # -- lifecycle -------------------------------------------------------

    def open(self) -> None:
        """Open (creating if needed) the database and load its counters."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={self.synchronous}")
                db.execute("PRAGMA busy_timeout=5000")
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
        except (sqlite3.Error, OSError) as err:
            raise OutboxStorageError(f"cannot open outbox {self.path}: {err}") from err
        self._db = db
        self._load_counters()
        self._sent = self._c.last_seq
        self._stream = self._load_stream()

    def _load_stream(self) -> int:
        """Read this database's stream id, creating it on first open (also for older files)."""
        db = self._conn()
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'stream_id'").fetchone()
            if row is not None and isinstance(row[0], int) and row[0] > 0:
                return int(row[0])
            stream = secrets.randbits(63) or 1
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('stream_id', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (stream,),
            )
        except sqlite3.Error as err:
            raise OutboxStorageError(f"cannot set up outbox {self.path}: {err}") from err
        return stream

    def close(self) -> None:
        """Close the database (idempotent)."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxStorageError(f"outbox {self.path} is not open")
        return self._db

    def _load_counters(self) -> None:
        db = self._conn()
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            count, total, max_seq = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(length(body)), 0), COALESCE(MAX(seq), 0) FROM outbox"
            ).fetchone()
            tail = db.execute(
                "SELECT seq, type, length(body) FROM outbox ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        except sqlite3.Error as err:
            raise OutboxStorageError(f"cannot read outbox {self.path}: {err}") from err
        c = _Counters()
        c.acked_seq = int(meta.get("acked_seq", 0))
        c.last_seq = max(int(meta.get("last_seq", 0)), int(max_seq), c.acked_seq)
        c.count = int(count)
        c.total_bytes = int(total) + _ROW_OVERHEAD * c.count
        if tail is not None:
            c.tail_seq, c.tail_type, c.tail_size = int(tail[0]), str(tail[1]), int(tail[2])
        self._c = c

    # -- reads -------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Highest seq ever assigned."""
        return self._c.last_seq

    @property
    def acked_seq(self) -> int:
        """Highest seq the peer acknowledged."""
        return self._c.acked_seq

    @property
    def stream_id(self) -> str:
        """Random id of this database's seq numbering (16 hex digits; made at creation)."""
        if not self._stream:
            raise OutboxStorageError(f"outbox {self.path} is not open")
        return format(self._stream, "016x")

    def stats(self) -> OutboxStats:
        """Counts and bounds (one small query for the oldest timestamp)."""
        try:
            row = self._conn().execute("SELECT MIN(ts) FROM outbox").fetchone()
        except sqlite3.Error as err:
            raise OutboxStorageError(f"cannot read outbox {self.path}: {err}") from err
        return OutboxStats(
            count=self._c.count,
            bytes=self._c.total_bytes,
            last_seq=self._c.last_seq,
            acked_seq=self._c.acked_seq,
            oldest_ts=None if row[0] is None else float(row[0]),
            max_bytes=self.max_bytes,
        )

    def pending(self, after: int = 0, limit: int = 1000) -> list[OutboxItem]:
        """Stored messages with ``seq > after``, oldest first, at most ``limit``.

        Marks them as handed to the sender: they are no longer merged into.
        """
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT seq, type, ts, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, limit),
                )
                .fetchall()
            )
        except sqlite3.Error as err:
            raise OutboxStorageError(f"cannot read outbox {self.path}: {err}") from err
        items = [OutboxItem(int(s), str(t), float(ts), bytes(b)) for s, t, ts, b in rows]
        if items:
            self._sent = max(self._sent, items[-1].seq)
        return items

    # -- writes ------------------------------------------------------------

    def write(self, appends: list[_Pending], ack_seq: int | None) -> list[int | BaseException]:
        """Apply appends and a cumulative ack in ONE transaction (group commit).

        Returns, per append, its seq or the ``OutboxFullError`` it got. A
        SQLite failure rolls everything back and raises ``OutboxStorageError``.
        """
        db = self._conn()
        saved = replace(self._c)
        results: list[int | BaseException] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            if ack_seq is not None:
                self._ack_in_tx(db, ack_seq)
            for item in appends:
                try:
                    results.append(self._append_in_tx(db, item))
                except OutboxFullError as err:
                    results.append(err)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('last_seq', ?), ('acked_seq', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (self._c.last_seq, self._c.acked_seq),
            )
            db.execute("COMMIT")
        except sqlite3.Error as err:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._c = saved
            raise OutboxStorageError(f"outbox {self.path}: {err}") from err
        return results

    def append(self, type_: str, body: dict[str, Any], *, ts: float | None = None) -> int:
        """Store one message (its own transaction); return its seq."""
        result = self.write([_prepare(type_, body, ts, self.max_message_bytes)], None)[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def ack(self, seq: int) -> None:
        """Delete every message with ``seq <= seq`` (cumulative), durably."""
        self.write([], seq)

    def rebase(self, peer_acked: int) -> int:
        """Renumber after the peer reports more than this outbox ever sent.

        That happens only when this outbox was lost or reset while the peer
        kept its ledger: without renumbering every new message would look like
        a duplicate to the peer. Returns the offset applied (0 when none was needed).
        """
        if peer_acked <= self._c.last_seq:
            return 0
        db = self._conn()
        saved = replace(self._c)
        offset = peer_acked
        try:
            db.execute("BEGIN IMMEDIATE")
            # Adding offset > last_seq moves every row past all old keys: no collisions.
            db.execute("UPDATE outbox SET seq = seq + ?", (offset,))
            self._c.last_seq += offset
            self._c.acked_seq = peer_acked
            if self._c.tail_seq:
                self._c.tail_seq += offset
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('last_seq', ?), ('acked_seq', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (self._c.last_seq, self._c.acked_seq),
            )
            db.execute("COMMIT")
        except sqlite3.Error as err:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._c = saved
            raise OutboxStorageError(f"outbox {self.path}: {err}") from err
        self._sent = max(self._sent + offset, self._c.acked_seq)
        _LOGGER.warning(
            "outbox %s: peer has seen seq %d but this outbox only reached %d; "
            "renumbered %d pending messages by +%d",
            self.path,
            peer_acked,
            self._c.last_seq - offset,
            self._c.count,
            offset,
        )
        return offset

    def _ack_in_tx(self, db: sqlite3.Connection, seq: int) -> None:
        c = self._c
        seq = min(seq, c.last_seq)
        if seq <= c.acked_seq:
            return
        n, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM outbox WHERE seq <= ?", (seq,)
        ).fetchone()
        if n:
            db.execute("DELETE FROM outbox WHERE seq <= ?", (seq,))
        c.count -= int(n)
        c.total_bytes -= int(size) + _ROW_OVERHEAD * int(n)
        c.acked_seq = seq
        if c.tail_seq <= seq:
            c.tail_seq, c.tail_type, c.tail_size = 0, "", 0

    def _append_in_tx(self, db: sqlite3.Connection, item: _Pending) -> int:
        c = self._c
        if (
            self.compact_state
            and item.type == MessageType.STATE
            and c.tail_type == MessageType.STATE
            and c.tail_seq > self._sent
            and item.signals is not None
            and c.tail_size + len(item.body) <= self.max_message_bytes // 2
        ):
            merged = self._merge_into_tail(db, item)
            if merged:
                return c.tail_seq
        size = len(item.body) + _ROW_OVERHEAD
        if c.total_bytes + size > self.max_bytes:
            self._make_room(db, item, size)
        seq = c.last_seq + 1
        kind = _KIND_STATE if item.type in _STATE_LIKE else _KIND_KEEP
        db.execute(
            "INSERT INTO outbox (seq, type, ts, kind, body) VALUES (?, ?, ?, ?, ?)",
            (seq, item.type, item.ts, kind, item.body),
        )
        c.last_seq = seq
        c.count += 1
        c.total_bytes += size
        c.tail_seq, c.tail_type, c.tail_size = seq, item.type, len(item.body)
        return seq

    def _merge_into_tail(self, db: sqlite3.Connection, item: _Pending) -> bool:
        c = self._c
        row = db.execute("SELECT body FROM outbox WHERE seq = ?", (c.tail_seq,)).fetchone()
        if row is None:
            return False
        body = orjson.loads(row[0])
        signals = body.get("signals")
        if not isinstance(signals, dict) or item.signals is None:
            return False
        signals.update(item.signals)
        new = orjson.dumps(body)
        if c.total_bytes + len(new) - c.tail_size > self.max_bytes:
            return False  # let the size-bound policy handle it through a normal insert
        db.execute("UPDATE outbox SET body = ?, ts = ? WHERE seq = ?", (new, item.ts, c.tail_seq))
        c.total_bytes += len(new) - c.tail_size
        c.tail_size = len(new)
        return True

    def _make_room(self, db: sqlite3.Connection, item: _Pending, size: int) -> None:
        c = self._c
        if size > self.max_bytes:
            raise OutboxFullError(
                f"message of {size} bytes exceeds the outbox bound of {self.max_bytes} bytes"
            )
        # After one deep compaction every state row holds at least one signal no
        # newer row has, so later passes scan at most one row per signal: cheap.
        freed, removed = self._deep_compact(db, item)
        dropped = 0
        # Drop down to the low-water mark so the next appends do not drop again.
        target = int(self.max_bytes * _LOW_WATER)
        while c.total_bytes + size > self.max_bytes or (dropped and c.total_bytes + size > target):
            rows = db.execute(
                "SELECT seq, length(body) FROM outbox WHERE kind = ? ORDER BY seq LIMIT 256",
                (_KIND_STATE,),
            ).fetchall()
            if not rows:
                break
            last = 0
            for seq, length in rows:
                last = int(seq)
                c.total_bytes -= int(length) + _ROW_OVERHEAD
                c.count -= 1
                dropped += 1
                if c.total_bytes + size <= target:
                    break
            db.execute("DELETE FROM outbox WHERE kind = ? AND seq <= ?", (_KIND_STATE, last))
            if c.tail_seq <= last:
                self._reload_tail(db)
        if freed or dropped:
            _LOGGER.warning(
                "outbox %s reached its bound of %d bytes: compacted state (%d bytes, %d rows "
                "freed), dropped the %d oldest state rows; now %d bytes",
                self.path,
                self.max_bytes,
                freed,
                removed,
                dropped,
                c.total_bytes,
            )
        if c.total_bytes + size > self.max_bytes:
            raise OutboxFullError(
                f"outbox {self.path} is full: {c.total_bytes} bytes of messages that are "
                f"never dropped (events, voice, commands); bound {self.max_bytes} bytes"
            )

    def _deep_compact(self, db: sqlite3.Connection, item: _Pending) -> tuple[int, int]:
        """Drop superseded signals from state rows, newest first; return (bytes freed, rows)."""
        c = self._c
        seen: set[str] = set(item.signals or ())
        freed = removed = 0
        rows = db.execute(
            "SELECT seq, body FROM outbox WHERE kind = ? ORDER BY seq DESC", (_KIND_STATE,)
        ).fetchall()
        for seq, raw in rows:
            body = orjson.loads(raw)
            signals = body.get("signals")
            if not isinstance(signals, dict):
                continue
            keep = {k: v for k, v in signals.items() if k not in seen}
            seen.update(signals)
            if len(keep) == len(signals):
                continue
            if keep:
                body["signals"] = keep
                new = orjson.dumps(body)
                db.execute("UPDATE outbox SET body = ? WHERE seq = ?", (new, seq))
                freed += len(raw) - len(new)
                if seq == c.tail_seq:
                    c.tail_size = len(new)
            else:
                db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                freed += len(raw) + _ROW_OVERHEAD
                removed += 1
                c.count -= 1
        c.total_bytes -= freed
        if removed:
            self._reload_tail(db)
        return freed, removed

    def _reload_tail(self, db: sqlite3.Connection) -> None:
        c = self._c
        tail = db.execute(
            "SELECT seq, type, length(body) FROM outbox ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if tail is None:
            c.tail_seq, c.tail_type, c.tail_size = 0, "", 0
        else:
            c.tail_seq, c.tail_type, c.tail_size = int(tail[0]), str(tail[1]), int(tail[2])


def _prepare(type_: str, body: dict[str, Any], ts: float | None, max_message: int) -> _Pending:
    """Validate and encode a message on the caller's side, before it is queued."""
    if not is_durable(str(type_)):
        raise ProtocolError(f"{type_} is a control type; only durable messages are stored")
    try:
        raw = orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError) as err:
        raise ProtocolError(f"cannot encode {type_} body: {err}") from err
    when = time.time() if ts is None else ts
    # Validate exactly as the receiver will, so a bad message fails here, not on the peer.
    probe = OutboxItem(1, str(type_), when, raw).frame()
    decode(probe, max_size=max_message)
    signals = None
    if type_ in _STATE_LIKE:
        sig = body.get("signals")
        signals = sig if isinstance(sig, dict) else None
    return _Pending(type=str(type_), body=raw, ts=when, signals=signals)


class Outbox:
    """The asyncio face of the durable outbox (one per link and direction).

    Nothing happens in ``__init__``; call ``await open()`` first. All SQLite
    work runs in a dedicated single-thread executor (or one passed in, which
    must have exactly one worker).
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        compact_state: bool = True,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_message_bytes: int = MAX_MESSAGE_SIZE,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.store = OutboxStore(
            path,
            max_bytes=max_bytes,
            compact_state=compact_state,
            synchronous=synchronous,
            max_message_bytes=max_message_bytes,
        )
        self._own_executor = executor is None
        self._executor = executor
        self._queue: list[_Pending] = []
        self._ack_target: int | None = None
        self._ack_waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._opened = False

    @property
    def path(self) -> Path:
        """The database file."""
        return self.store.path

    @property
    def last_seq(self) -> int:
        """Highest seq assigned so far (after the last committed write)."""
        return self.store.last_seq

    @property
    def acked_seq(self) -> int:
        """Highest seq acked by the peer (after the last committed write)."""
        return self.store.acked_seq

    @property
    def stream_id(self) -> str:
        """This outbox's stream id (see the module doc); available after ``open()``."""
        return self.store.stream_id

    async def _run[T](self, fn: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise OutboxStorageError(f"outbox {self.path} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> None:
        """Open the database (creating it) in the executor."""
        if self._opened:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="carhub-outbox")
        await self._run(self.store.open)
        self._opened = True

    async def close(self) -> None:
        """Finish queued writes, close the database and stop the executor."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)
        if self._executor is not None:
            with contextlib.suppress(Exception):
                await self._run(self.store.close)
            if self._own_executor:
                self._executor.shutdown(wait=False)
                self._executor = None
        self._opened = False

    async def append(self, type_: str, body: dict[str, Any], *, ts: float | None = None) -> int:
        """Store one durable message; return its seq once it is on disk.

        Raises ``ProtocolError`` for a body the receiver would reject,
        ``OutboxFullError`` and ``OutboxStorageError`` as described above.
        """
        item = _prepare(type_, body, ts, self.store.max_message_bytes)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        item.future = fut
        self._queue.append(item)
        self._kick()
        return await fut

    async def append_many(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> list[int]:
        """Store several messages in one transaction; return their seqs."""
        futs = []
        loop = asyncio.get_running_loop()
        for type_, body in messages:
            item = _prepare(type_, body, None, self.store.max_message_bytes)
            item.future = loop.create_future()
            futs.append(item.future)
            self._queue.append(item)
        self._kick()
        results = await asyncio.gather(*futs, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return [r for r in results if isinstance(r, int)]

    def ack_nowait(self, seq: int) -> None:
        """Record a cumulative ack; it is written with the next transaction."""
        if seq > (self._ack_target or 0) and seq > self.store.acked_seq:
            self._ack_target = seq
            self._kick()

    async def ack(self, seq: int) -> None:
        """Record a cumulative ack and wait until it is on disk."""
        self.ack_nowait(seq)
        if self._writer is None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ack_waiters.append(fut)
        await fut

    async def pending(self, after: int = 0, limit: int = 1000) -> list[OutboxItem]:
        """Stored messages with ``seq > after``, in order (see ``OutboxStore.pending``)."""
        return await self._run(self.store.pending, after, limit)

    async def stats(self) -> OutboxStats:
        """Counts and bounds."""
        return await self._run(self.store.stats)

    async def rebase(self, peer_acked: int) -> int:
        """See ``OutboxStore.rebase``; waits for queued writes first."""
        await self.flush()
        return await self._run(self.store.rebase, peer_acked)

    async def flush(self) -> None:
        """Wait until every queued append and ack is on disk (or failed)."""
        while self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)

    def _kick(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        try:
            while self._queue or self._ack_target is not None:
                batch, self._queue = self._queue, []
                ack, self._ack_target = self._ack_target, None
                waiters, self._ack_waiters = self._ack_waiters, []
                try:
                    results: list[int | BaseException] = await self._run(
                        self.store.write, batch, ack
                    )
                except OutboxStorageError as err:
                    _LOGGER.error("%s", err)
                    for item in batch:
                        _settle(item.future, err)
                    for w in waiters:
                        if not w.done():
                            w.set_exception(err)
                    continue
                except BaseException as err:
                    # Cancelled (loop shutting down) or a bug: fail every waiter, never hang one.
                    lost = OutboxStorageError(f"outbox write interrupted: {err!r}")
                    for item in batch + self._queue:
                        _settle(item.future, lost)
                    self._queue = []
                    for w in waiters:
                        if not w.done():
                            w.set_result(None)
                    raise
                for item, result in zip(batch, results, strict=True):
                    _settle(item.future, result)
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
        finally:
            self._writer = None


def _settle(fut: asyncio.Future[int] | None, result: int | BaseException) -> None:
    if fut is None or fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)
