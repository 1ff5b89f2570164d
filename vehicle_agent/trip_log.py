"""TripLog: the car's durable record of its trips (SQLite, ``<state-dir>/trips.db``).

One row per trip, created when the trip starts (``end_ts`` NULL while it
runs) and completed when it ends; the summary is a JSON object (see
:mod:`vehicle_agent.trips` for its keys). ``sent`` says whether the trip's
``trip_end`` event went into the links' outboxes; a trip that ended but was
not handed over (the agent died in between) is handed over at the next start.
Route points (one per GPS fix, at most one per ``POINT_INTERVAL_S``) are kept
for the GPX export.

Every write is its own transaction with ``synchronous=FULL``: a finished trip
is on disk before its event is sent. The database is small (a few hundred
bytes per trip plus 24 bytes per route point) and is never pruned: it is the
driver's logbook.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

POINT_INTERVAL_S: Final = 5.0
"""Route points closer in time than this to the previous one are not stored."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS trips (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    start_ts REAL    NOT NULL,
    end_ts   REAL,
    sent     INTEGER NOT NULL DEFAULT 0,
    summary  TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS points (
    trip_id INTEGER NOT NULL,
    ts      REAL    NOT NULL,
    lat     REAL    NOT NULL,
    lon     REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS points_trip ON points (trip_id, ts);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class TripRecord:
    """One stored trip."""

    id: int
    start_ts: float
    end_ts: float | None
    sent: bool
    summary: dict[str, Any]


class TripLog:
    """The trips database; ``path=None`` keeps it in memory (tests, no state dir)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(":memory:" if path is None else str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def begin(self, start_ts: float, summary: dict[str, Any]) -> int:
        """Store a trip that starts now; returns its id (never reused)."""
        cur = self._db.execute(
            "INSERT INTO trips (start_ts, summary) VALUES (?, ?)",
            (start_ts, json.dumps(summary)),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def progress(self, trip_id: int, summary: dict[str, Any]) -> None:
        """Save the running summary of an active trip (what a crash would keep)."""
        self._db.execute(
            "UPDATE trips SET summary = ? WHERE id = ? AND end_ts IS NULL",
            (json.dumps(summary), trip_id),
        )

    def finish(self, trip_id: int, end_ts: float, summary: dict[str, Any]) -> None:
        """Store the final summary of a trip."""
        self._db.execute(
            "UPDATE trips SET end_ts = ?, summary = ? WHERE id = ?",
            (end_ts, json.dumps(summary), trip_id),
        )

    def mark_sent(self, trip_ids: list[int]) -> None:
        """Record that these trips' ``trip_end`` events are in the outboxes."""
        self._db.executemany("UPDATE trips SET sent = 1 WHERE id = ?", [(i,) for i in trip_ids])

    def add_point(self, trip_id: int, ts: float, lat: float, lon: float) -> None:
        """Append one route point."""
        self._db.execute(
            "INSERT INTO points (trip_id, ts, lat, lon) VALUES (?, ?, ?, ?)",
            (trip_id, ts, lat, lon),
        )

    def points(self, trip_id: int) -> list[tuple[float, float, float]]:
        """(ts, lat, lon) of a trip's route, oldest first."""
        rows = self._db.execute(
            "SELECT ts, lat, lon FROM points WHERE trip_id = ? ORDER BY ts", (trip_id,)
        ).fetchall()
        return [(float(t), float(a), float(o)) for t, a, o in rows]

    def trips(self, *, since: float | None = None, limit: int | None = None) -> list[TripRecord]:
        """Stored trips, oldest first (the newest *limit* if given)."""
        query = "SELECT id, start_ts, end_ts, sent, summary FROM trips"
        args: list[Any] = []
        if since is not None:
            query += " WHERE start_ts >= ?"
            args.append(since)
        query += " ORDER BY id DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        rows = self._db.execute(query, args).fetchall()
        return [_record(row) for row in reversed(rows)]

    def unfinished(self) -> list[TripRecord]:
        """Trips that never ended (the agent stopped without ending them)."""
        rows = self._db.execute(
            "SELECT id, start_ts, end_ts, sent, summary FROM trips WHERE end_ts IS NULL ORDER BY id"
        ).fetchall()
        return [_record(row) for row in rows]

    def unsent(self) -> list[TripRecord]:
        """Finished trips whose ``trip_end`` never went into the outboxes."""
        rows = self._db.execute(
            "SELECT id, start_ts, end_ts, sent, summary FROM trips "
            "WHERE end_ts IS NOT NULL AND sent = 0 ORDER BY id"
        ).fetchall()
        return [_record(row) for row in rows]


def _record(row: tuple[Any, ...]) -> TripRecord:
    trip_id, start_ts, end_ts, sent, summary = row
    try:
        data = json.loads(summary)
    except ValueError:
        data = {}
    return TripRecord(
        id=int(trip_id),
        start_ts=float(start_ts),
        end_ts=None if end_ts is None else float(end_ts),
        sent=bool(sent),
        summary=data if isinstance(data, dict) else {},
    )
