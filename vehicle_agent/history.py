"""History without gaps: a down-sampled record of the car's numbers, sent home after a dead zone.

:class:`History` keeps, for every numeric signal the store emits, one row per
signal per ``resolution_s`` (60 s): the time-weighted mean of the value held
over that minute (a value holds until the next one, so a constant signal still
gets its row), its minimum and maximum. Rows live in SQLite
(``<state-dir>/history.db``). Bound: ``max_rows`` (default 400,000, about
9 days of 30 signals, some 30 MB); past it, the older half is merged into
``coarse_s`` (10-minute) rows, and if that is not enough the oldest rows go.

Per home, the time the link went down is kept (``gaps`` table, so a restart
in the dead zone does not lose it). When the link is back,
:func:`history_events` turns the rows of every hour the gap touched (whole
hours, from the top of the hour the link went down to now) into ``history``
events, at most ``CHUNK_POINTS`` points each; they go through the home's
outbox like every event (never compacted) and Home Assistant imports them into
long-term statistics (custom_components/carhub/history_import.py).

Event body: ``{"kind": "history", "ts": now, "data": {"from": float, "to":
float, "resolution_s": 60, "part": i, "parts": n, "signals": {path: [[start,
span_s, mean, min, max], ...]}}}``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bridge.protocol import MessageType
from vehicle_agent.runtime import Link
from vehicle_agent.state_store import Change
from vehicle_agent.values import finite_number

_LOGGER = logging.getLogger(__name__)

CHUNK_POINTS: Final = 2000
"""Points per history event (about 80 KB of JSON, under the 256 KiB message limit)."""
MAX_CATCH_UP_S: Final = 3600.0
"""A clock jump longer than this (the computer slept) writes no rows for the jump."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS samples (
    start REAL NOT NULL, span REAL NOT NULL, path TEXT NOT NULL,
    mean REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,
    PRIMARY KEY (start, path)
);
CREATE TABLE IF NOT EXISTS gaps (hub_id TEXT PRIMARY KEY, since REAL NOT NULL);
"""


@dataclass(slots=True)
class _Bucket:
    start: float
    value: float
    since: float  # time the current value has been integrated from
    area: float = 0.0
    seconds: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf


class History:
    """Down-sampled history of numeric signals, bounded (see the module docstring)."""

    def __init__(
        self,
        path: Path | None,
        *,
        resolution_s: float = 60.0,
        coarse_s: float = 600.0,
        max_rows: int = 400_000,
    ) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.resolution_s = resolution_s
        self.coarse_s = coarse_s
        self.max_rows = max_rows
        self._db = sqlite3.connect(":memory:" if path is None else str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._open: dict[str, _Bucket] = {}
        self._pending: list[tuple[float, float, str, float, float, float]] = []
        self._rows = int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def close(self) -> None:
        """Write what is pending and close."""
        self._write()
        self._db.close()

    # --- recording ---

    def observe(self, path: str, value: object, ts: float) -> None:
        """One emitted value (non-numbers and booleans are ignored)."""
        number = finite_number(value)
        if number is None:
            return
        bucket = self._open.get(path)
        if bucket is None:
            start = math.floor(ts / self.resolution_s) * self.resolution_s
            self._open[path] = _Bucket(start=start, value=number, since=ts, lo=number, hi=number)
            return
        self._advance(path, bucket, ts)
        bucket.value = number
        bucket.lo, bucket.hi = min(bucket.lo, number), max(bucket.hi, number)

    def on_change(self, change: Change) -> None:
        """A state store listener."""
        self.observe(change.path, change.value, change.ts)

    def tick(self, now: float) -> None:
        """Close every minute that ended by *now* and write the rows."""
        for path, bucket in self._open.items():
            self._advance(path, bucket, now)
        self._write()

    def _advance(self, path: str, bucket: _Bucket, until: float) -> None:
        if until <= bucket.since:
            return
        end = bucket.start + self.resolution_s
        if until - end > MAX_CATCH_UP_S:
            # Slept or jumped: close this minute, skip the jump, go on from *until*.
            self._close(path, bucket, end)
            bucket.start = math.floor(until / self.resolution_s) * self.resolution_s
            bucket.since, bucket.area, bucket.seconds = until, 0.0, 0.0
            bucket.lo = bucket.hi = bucket.value
            return
        while until >= end:
            self._close(path, bucket, end)
            bucket.start, bucket.since, bucket.area, bucket.seconds = end, end, 0.0, 0.0
            bucket.lo = bucket.hi = bucket.value
            end += self.resolution_s
        bucket.area += bucket.value * (until - bucket.since)
        bucket.seconds += until - bucket.since
        bucket.since = until

    def _close(self, path: str, bucket: _Bucket, end: float) -> None:
        held = max(0.0, end - bucket.since)
        bucket.area += bucket.value * held
        bucket.seconds += held
        # The mean over the part of the minute the signal was known.
        mean = bucket.area / bucket.seconds if bucket.seconds > 0 else bucket.value
        self._pending.append((bucket.start, end - bucket.start, path, mean, bucket.lo, bucket.hi))

    def _write(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._rows += len(rows)
        if self._rows > self.max_rows:
            self._compact()

    def _compact(self) -> None:
        """Merge the older half into coarse rows; drop the oldest if that is not enough."""
        db = self._db
        (cutoff,) = db.execute(
            "SELECT start FROM samples ORDER BY start LIMIT 1 OFFSET ?", (self._rows // 2,)
        ).fetchone()
        c = self.coarse_s
        with db:
            merged = db.execute(
                "SELECT CAST(start / ? AS INTEGER) * ?, SUM(span), path, "
                "SUM(mean * span) / SUM(span), MIN(min), MAX(max) FROM samples "
                "WHERE start < ? AND span < ? GROUP BY 1, path",
                (c, c, cutoff, c),
            ).fetchall()
            db.execute("DELETE FROM samples WHERE start < ? AND span < ?", (cutoff, c))
            db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?)", merged)
            self._rows = int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
            if self._rows > self.max_rows * 0.9:
                drop = self._rows - int(self.max_rows * 0.8)
                db.execute(
                    "DELETE FROM samples WHERE rowid IN "
                    "(SELECT rowid FROM samples ORDER BY start LIMIT ?)",
                    (drop,),
                )
                self._rows -= drop
        _LOGGER.info("history compacted to %d rows (bound %d)", self._rows, self.max_rows)

    @property
    def rows(self) -> int:
        """Rows stored."""
        return self._rows

    def samples(self, since: float, until: float) -> dict[str, list[list[float]]]:
        """``{path: [[start, span, mean, min, max], ...]}`` for rows starting in [since, until)."""
        out: dict[str, list[list[float]]] = {}
        for start, span, path, mean, lo, hi in self._db.execute(
            "SELECT start, span, path, mean, min, max FROM samples "
            "WHERE start >= ? AND start < ? ORDER BY start",
            (since, until),
        ):
            out.setdefault(path, []).append(
                [start, span, round(mean, 4), round(lo, 4), round(hi, 4)]
            )
        return out

    # --- gaps per home ---

    def gap(self, hub_id: str) -> float | None:
        """When the link to *hub_id* went down, if it is (or was, unsent) down."""
        row = self._db.execute("SELECT since FROM gaps WHERE hub_id = ?", (hub_id,)).fetchone()
        return None if row is None else float(row[0])

    def gap_started(self, hub_id: str, ts: float) -> None:
        """The link to *hub_id* went down at *ts* (kept if already down)."""
        with self._db:
            self._db.execute("INSERT OR IGNORE INTO gaps VALUES (?, ?)", (hub_id, ts))

    def gap_closed(self, hub_id: str) -> None:
        """The history of the gap is in the home's outbox."""
        with self._db:
            self._db.execute("DELETE FROM gaps WHERE hub_id = ?", (hub_id,))


def history_events(history: History, since: float, now: float) -> list[dict[str, Any]]:
    """The ``history`` event bodies for a gap that began at *since* (whole hours)."""
    start = math.floor(since / 3600.0) * 3600.0
    signals = history.samples(start, now)
    points = [(path, p) for path, items in signals.items() for p in items]
    chunks = [points[i : i + CHUNK_POINTS] for i in range(0, len(points), CHUNK_POINTS)]
    events = []
    for i, chunk in enumerate(chunks):
        grouped: dict[str, list[list[float]]] = {}
        for path, p in chunk:
            grouped.setdefault(path, []).append(p)
        data = {
            "from": start,
            "to": now,
            "resolution_s": history.resolution_s,
            "part": i + 1,
            "parts": len(chunks),
            "signals": grouped,
        }
        events.append({"kind": "history", "ts": now, "data": data})
    return events


async def history_loop(
    links: Mapping[str, Link],
    history: History,
    *,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.time,
) -> None:
    """Tick the history and hand each home the history of its dead zones when it is back.

    *links* is the runtime's live ``links`` mapping (homes come and go).
    """
    while True:
        now = clock()
        history.tick(now)
        for hub_id, link in list(links.items()):
            since = history.gap(hub_id)
            if not link.connected:
                if since is None:
                    history.gap_started(hub_id, now)
                continue
            if since is None:
                continue
            events = history_events(history, since, now)
            try:
                for body in events:
                    await link.send(MessageType.EVENT, body)
            except Exception as exc:  # outbox full or broken: keep the gap, try later
                _LOGGER.error("cannot queue history for home %s: %s", hub_id, exc)
                continue
            history.gap_closed(hub_id)
            _LOGGER.info(
                "history since %.0f sent to home %s (%d events)", since, hub_id, len(events)
            )
        await asyncio.sleep(interval_s)
