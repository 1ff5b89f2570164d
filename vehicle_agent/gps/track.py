"""Recorded tracks (GPX or NMEA files) and their replay as live fixes.

:func:`load_track` reads either format (by extension, else by content).
:func:`replay` yields the fixes at the recorded pace, a multiple of it, or as
fast as possible, optionally looping; the clock and sleep are injectable so
tests check the schedule without waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import statistics
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vehicle_agent.gps.fix import GpsFix
from vehicle_agent.gps.gpx import GpxError, GpxStats, parse_gpx
from vehicle_agent.gps.nmea import NmeaStats, parse_nmea


class TrackError(Exception):
    """The track file cannot be read or holds no usable fix."""


@dataclass(slots=True)
class Track:
    """A loaded track: fixes in time order and what was skipped on the way."""

    fixes: list[GpsFix]
    source: str
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Seconds from the first fix to the last."""
        return self.fixes[-1].time - self.fixes[0].time if self.fixes else 0.0


def load_track(path: str | Path) -> Track:
    """Read a GPX or NMEA file. Raises :class:`TrackError` (never crashes on bad lines)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TrackError(f"cannot read track {path}: {err}") from err
    is_gpx = path.suffix.lower() == ".gpx" or (
        path.suffix.lower() not in (".nmea", ".log", ".txt") and data.lstrip()[:1] == b"<"
    )
    if is_gpx:
        gstats = GpxStats()
        try:
            fixes = parse_gpx(data, gstats)
        except GpxError as err:
            raise TrackError(f"{path}: {err}") from err
        track = Track(fixes, str(path), gstats.skipped, gstats.errors)
    else:
        nstats = NmeaStats()
        fixes = parse_nmea(data.decode("ascii", errors="replace").splitlines(), nstats)
        track = Track(fixes, str(path), nstats.malformed + nstats.bad_checksum, nstats.errors)
    if not track.fixes:
        detail = f" ({'; '.join(track.problems[:3])})" if track.problems else ""
        raise TrackError(f"{path}: no usable fix in the track{detail}")
    return track


async def replay(
    fixes: Sequence[GpsFix],
    *,
    speed: float = 1.0,
    loop: bool = False,
    max_loops: int | None = None,
    restamp: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    wall: Callable[[], float] = time.time,
) -> AsyncGenerator[GpsFix]:
    """Yield ``fixes`` on the recorded schedule divided by ``speed``.

    ``speed=math.inf`` replays without waiting. With ``loop`` the track starts
    over after one typical fix interval, ``max_loops`` times (``None``: for
    ever). With ``restamp`` each fix carries the wall-clock time it is yielded
    at, as a live receiver's would; otherwise its recorded time.
    """
    if not speed > 0:
        raise ValueError("replay speed must be positive")
    if not fixes:
        return
    t0 = fixes[0].time
    gaps = [b.time - a.time for a, b in itertools.pairwise(fixes) if b.time > a.time]
    period = (fixes[-1].time - t0) + (statistics.median(gaps) if gaps else 1.0)
    start = clock()
    rounds = 0
    while True:
        for fix in fixes:
            if not math.isinf(speed):
                target = start + (rounds * period + (fix.time - t0)) / speed
                delay = target - clock()
                if delay > 0:
                    await sleep(delay)
            yield dataclasses.replace(fix, time=wall()) if restamp else fix
        rounds += 1
        if not loop or (max_loops is not None and rounds >= max_loops):
            return
