"""A durable record of the messages a handler has acted on, for deduplication across crashes.

The link hands messages over in order, and a message handled but not yet
recorded in the ledger when the receiving process dies is handed over again
after the restart (``Envelope.redelivered``). A handler whose effect must not
happen twice keeps a ``DedupRecord``: per peer the id of the newest message it
acted on, ``(stream, seq)``. Because delivery is in order, one row per peer is
enough: a message of the same stream with ``seq <=`` the recorded one was
acted on before.

Two ways to use it (the choice is per message type, see docs/INTERFACES.md):

- at-most-once ("record before acting"): ``record`` first, then act. A crash
  in between loses the action, never repeats it (home actions).
- deduplicated at-least-once: check ``seen``, act, then ``record`` in the same
  event-loop step. A crash before the record commits repeats the action; do
  it where no effect escapes the process before the next loop step (firing an
  event on a bus whose listeners run later), so nothing observable repeats.

The methods are synchronous on purpose: ``record`` commits (SQLite WAL,
``synchronous=FULL``) before it returns, so no other coroutine can act on the
message in between. Each call is one small transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge._sqlite import open_durable
from bridge.errors import OutboxStorageError

__all__ = ["DedupRecord"]


class DedupRecord:
    """Per peer, the newest ``(stream, seq)`` acted on; durable (SQLite)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._last: dict[str, tuple[str, int]] = {}

    def open(self) -> None:
        """Open (creating) the database and load every peer's record (blocking)."""
        try:
            db = open_durable(
                self.path,
                [
                    "CREATE TABLE IF NOT EXISTS handled (peer TEXT PRIMARY KEY, "
                    "stream TEXT NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID"
                ],
            )
            try:
                rows = db.execute("SELECT peer, stream, seq FROM handled").fetchall()
            except BaseException:
                db.close()
                raise
        except (sqlite3.Error, OSError) as err:
            raise OutboxStorageError(f"cannot open dedup record {self.path}: {err}") from err
        self._db = db
        self._last = {str(p): (str(st), int(sq)) for p, st, sq in rows}

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def seen(self, peer: str, stream: str, seq: int) -> bool:
        """True if the message ``(stream, seq)`` of ``peer`` was acted on already."""
        last = self._last.get(peer)
        return last is not None and last[0] == stream and seq <= last[1]

    def last(self, peer: str) -> tuple[str, int] | None:
        """The newest ``(stream, seq)`` recorded for ``peer``."""
        return self._last.get(peer)

    def record(self, peer: str, stream: str, seq: int) -> None:
        """Record that ``(stream, seq)`` was acted on; committed when this returns.

        Raises ``OutboxStorageError`` when SQLite fails (then nothing is recorded).
        """
        db = self._db
        if db is None:
            raise OutboxStorageError(f"dedup record {self.path} is not open")
        try:
            db.execute(
                "INSERT INTO handled (peer, stream, seq) VALUES (?, ?, ?) ON CONFLICT (peer) "
                "DO UPDATE SET stream = excluded.stream, seq = excluded.seq",
                (peer, stream, seq),
            )
        except sqlite3.Error as err:
            raise OutboxStorageError(f"dedup record {self.path}: {err}") from err
        self._last[peer] = (stream, seq)

    def forget(self, peer: str) -> None:
        """Drop a peer's record (it was removed)."""
        if self._db is not None:
            try:
                self._db.execute("DELETE FROM handled WHERE peer = ?", (peer,))
            except sqlite3.Error as err:
                raise OutboxStorageError(f"dedup record {self.path}: {err}") from err
        self._last.pop(peer, None)
