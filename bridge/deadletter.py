"""Dead letters: durable messages whose handler kept failing, kept on disk with their payload.

A receiving link hands a durable message to its handler; when the handler
raises (anything but ``DeferMessage``) the message is *not* acked: the link
closes with 4005 and the sender resends it. ``FailureTracker`` counts those
attempts per peer; once a message has failed ``max_attempts`` times it is
written to the ``DeadLetterStore`` (SQLite, ``synchronous=FULL``) with its
whole envelope and the last error, reported, and only then acked. So one
poison message cannot block a car forever, and none is silently dropped: the
payload can be read back with ``DeadLetterStore.letters()`` (or
``read_dead_letters(path)`` from another process).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bridge._sqlite import open_durable
from bridge.errors import OutboxStorageError

__all__ = ["DeadLetter", "DeadLetterStore", "FailureTracker", "read_dead_letters"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dead_letters ("
    "id INTEGER PRIMARY KEY, peer TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, "
    "type TEXT NOT NULL, ts REAL NOT NULL, body TEXT NOT NULL, reason TEXT NOT NULL, "
    "attempts INTEGER NOT NULL, dead_at REAL NOT NULL)"
)
_COLUMNS = "peer, stream, seq, type, ts, body, reason, attempts, dead_at"


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    """One message given up on: who sent it, the envelope fields, why and when."""

    peer: str
    stream: str
    seq: int
    type: str
    ts: float
    body: dict[str, Any]
    reason: str
    attempts: int
    dead_at: float

    @property
    def message_id(self) -> str:
        """The message's stable id (``"<stream>:<seq>"``, as ``Envelope.message_id``)."""
        return f"{self.stream}:{self.seq}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for logs, ``serve`` output and diagnostics)."""
        return {
            "vehicle_id": self.peer,
            "id": self.message_id,
            "seq": self.seq,
            "type": self.type,
            "ts": self.ts,
            "body": self.body,
            "reason": self.reason,
            "attempts": self.attempts,
            "dead_at": self.dead_at,
        }


class FailureTracker:
    """Failed delivery attempts of the message each peer is stuck on (memory only).

    One entry per peer (the message at the head of its stream), so memory is
    bounded by the number of cars. A restart of the receiving process starts
    counting again, which only adds a few more attempts.
    """

    def __init__(self) -> None:
        self._current: dict[str, tuple[str, int, int]] = {}

    def failed(self, peer: str, stream: str, seq: int) -> int:
        """Record one more failure of ``(stream, seq)`` from ``peer``; the count so far."""
        old = self._current.get(peer)
        count = old[2] + 1 if old is not None and old[:2] == (stream, seq) else 1
        self._current[peer] = (stream, seq, count)
        return count

    def done(self, peer: str, seq: int) -> None:
        """The peer got past ``seq`` (handled or dead-lettered): forget its failures."""
        old = self._current.get(peer)
        if old is not None and old[1] <= seq:
            del self._current[peer]


def _connect(path: Path) -> sqlite3.Connection:
    return open_durable(path, [_SCHEMA])


def _row_to_letter(row: tuple[Any, ...]) -> DeadLetter:
    peer, stream, seq, type_, ts, body, reason, attempts, dead_at = row
    return DeadLetter(
        peer=str(peer),
        stream=str(stream),
        seq=int(seq),
        type=str(type_),
        ts=float(ts),
        body=orjson.loads(body),
        reason=str(reason),
        attempts=int(attempts),
        dead_at=float(dead_at),
    )


def read_dead_letters(path: Path, peer: str | None = None) -> list[DeadLetter]:
    """Every dead letter in the store at ``path`` (oldest first; blocking, read-only use)."""
    if not path.exists():
        return []
    try:
        db = _connect(path)
    except (sqlite3.Error, OSError) as err:
        raise OutboxStorageError(f"cannot open dead letters {path}: {err}") from err
    try:
        query = f"SELECT {_COLUMNS} FROM dead_letters"  # noqa: S608 (constant columns)
        if peer is None:
            rows = db.execute(query + " ORDER BY id").fetchall()
        else:
            rows = db.execute(query + " WHERE peer = ? ORDER BY id", (peer,)).fetchall()
    except sqlite3.Error as err:
        raise OutboxStorageError(f"dead letters {path}: {err}") from err
    finally:
        db.close()
    return [_row_to_letter(r) for r in rows]


class DeadLetterStore:
    """Durable store of dead letters (SQLite file); open with ``await open()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        """Open (creating) the database."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="carhub-deadletter")
        try:
            self._db = await self._run(_connect, self.path)
        except (sqlite3.Error, OSError) as err:
            raise OutboxStorageError(f"cannot open dead letters {self.path}: {err}") from err

    async def close(self) -> None:
        """Close the database."""
        if self._executor is None:
            return
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=False)
        self._executor = None

    async def _run[T](self, fn: Any, *args: object) -> T:  # noqa: ANN401
        if self._executor is None:
            raise OutboxStorageError(f"dead letters {self.path} are not open")
        result: T = await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        return result

    async def add(
        self,
        *,
        peer: str,
        stream: str,
        seq: int,
        type_: str,
        ts: float,
        body: dict[str, Any],
        reason: str,
        attempts: int,
    ) -> DeadLetter:
        """Store one dead letter durably (committed on return); ``OutboxStorageError``."""
        letter = DeadLetter(
            peer=peer,
            stream=stream,
            seq=seq,
            type=type_,
            ts=ts,
            body=body,
            reason=reason,
            attempts=attempts,
            dead_at=time.time(),
        )
        await self._run(self._add_sync, letter)
        return letter

    def _add_sync(self, letter: DeadLetter) -> None:
        db = self._db
        if db is None:
            raise OutboxStorageError(f"dead letters {self.path} are not open")
        try:
            db.execute(
                f"INSERT INTO dead_letters ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    letter.peer,
                    letter.stream,
                    letter.seq,
                    letter.type,
                    letter.ts,
                    orjson.dumps(letter.body).decode(),
                    letter.reason,
                    letter.attempts,
                    letter.dead_at,
                ),
            )
        except (sqlite3.Error, TypeError, orjson.JSONEncodeError) as err:
            # One autocommitted statement: nothing to roll back.
            raise OutboxStorageError(f"dead letters {self.path}: {err}") from err

    async def letters(self, peer: str | None = None) -> list[DeadLetter]:
        """Every stored dead letter (of ``peer``, or all), oldest first."""
        return await self._run(read_dead_letters, self.path, peer)
