"""GPX track parsing: ``<trkpt lat lon>`` with ``<time>`` (and optional ele/speed/course).

GPX 1.0 and 1.1 are both read (elements are matched by local name, whatever
the namespace). A point without a usable position or time is skipped and
counted; a file that is not XML at all raises :class:`GpxError`. Where the
file carries no speed or course (GPX 1.1 has no such elements), they are
computed from the neighbouring points.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from vehicle_agent.gps.fix import MPS_TO_KMH, GpsFix, bearing_deg, distance_m, valid_position

_LOGGER = logging.getLogger(__name__)


class GpxError(ValueError):
    """The file is not a readable GPX document."""


@dataclass(slots=True)
class GpxStats:
    """Counters from parsing one file."""

    points: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def problem(self, message: str) -> None:
        """Record a skipped point."""
        self.skipped += 1
        if len(self.errors) < 20:
            self.errors.append(message)
        _LOGGER.debug("GPX: %s", message)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child_text(elem: ET.Element, name: str) -> str | None:
    for child in elem:
        if _local(child.tag) == name and child.text is not None:
            return child.text.strip()
    return None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_time(text: str) -> float:
    """ISO 8601 time (``2024-05-01T10:00:00Z``) to unix time; naive means UTC."""
    when = datetime.fromisoformat(text.strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_gpx(data: bytes | str, stats: GpxStats | None = None) -> list[GpsFix]:
    """Parse a GPX document into fixes, in time order."""
    stats = stats if stats is not None else GpxStats()
    try:
        # Track files are local files the operator picks; Python's expat
        # refuses entity-expansion bombs, and no external entities are fetched.
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError as err:
        raise GpxError(f"not a GPX/XML document: {err}") from err
    if _local(root.tag) != "gpx":
        raise GpxError(f"root element is <{_local(root.tag)}>, not <gpx>")
    fixes: list[GpsFix] = []
    for index, elem in enumerate(e for e in root.iter() if _local(e.tag) == "trkpt"):
        lat, lon = _float(elem.get("lat")), _float(elem.get("lon"))
        if lat is None or lon is None or not valid_position(lat, lon):
            where = f"trkpt #{index + 1}"
            stats.problem(f"{where}: bad lat/lon {elem.get('lat')!r} {elem.get('lon')!r}")
            continue
        time_text = _child_text(elem, "time")
        if time_text is None:
            stats.problem(f"trkpt #{index + 1}: no <time>")
            continue
        try:
            ts = parse_time(time_text)
        except ValueError:
            stats.problem(f"trkpt #{index + 1}: bad <time> {time_text!r}")
            continue
        speed = _float(_child_text(elem, "speed"))
        course = _float(_child_text(elem, "course"))
        fixes.append(
            GpsFix(
                time=ts,
                lat=lat,
                lon=lon,
                speed_kmh=None if speed is None else speed * MPS_TO_KMH,
                track_deg=None if course is None else course % 360.0,
                alt_m=_float(_child_text(elem, "ele")),
                eph_m=_hacc(elem),
                mode=3 if _child_text(elem, "ele") is not None else 2,
            )
        )
        stats.points += 1
    fixes.sort(key=lambda f: f.time)
    return fill_motion(fixes)


def _hacc(elem: ET.Element) -> float | None:
    # Some loggers write a horizontal accuracy in metres in an extension.
    for child in elem.iter():
        if _local(child.tag) in ("hacc", "eph") and child.text:
            return _float(child.text)
    return None


def fill_motion(fixes: list[GpsFix]) -> list[GpsFix]:
    """Fill missing speed and course from each point's neighbours."""
    out: list[GpsFix] = []
    for i, fix in enumerate(fixes):
        if (fix.speed_kmh is not None and fix.track_deg is not None) or len(fixes) < 2:
            out.append(fix)
            continue
        a, b = (fixes[i - 1], fix) if i > 0 else (fix, fixes[1])
        dt = b.time - a.time
        dist = distance_m(a.lat, a.lon, b.lat, b.lon)
        speed = fix.speed_kmh
        if speed is None and dt > 0:
            speed = dist / dt * MPS_TO_KMH
        track = fix.track_deg
        if track is None and dist > 0.5:  # no heading from jitter while standing
            track = bearing_deg(a.lat, a.lon, b.lat, b.lon)
        out.append(replace(fix, speed_kmh=speed, track_deg=track))
    return out


def read_gpx(path: Path) -> tuple[list[GpsFix], GpxStats]:
    """Read a GPX file; raises :class:`GpxError` or ``OSError``."""
    stats = GpxStats()
    return parse_gpx(path.read_bytes(), stats), stats
