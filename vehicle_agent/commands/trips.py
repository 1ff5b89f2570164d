"""`vehicle-agent trips`: list the car's trips, or export them as CSV or GPX."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bridge.homes import default_state_dir
from vehicle_agent.trip_log import TripLog, TripRecord

DESCRIPTION = """\
The agent records every trip in <state-dir>/trips.db (start and end time and
place, distance, duration, average and top speed, fuel or energy used).

  list          one line per trip (--json: one JSON object per trip)
  export        --format csv (one row per trip) or gpx (one track per trip,
                from the route points kept every 5 s while GPS had a fix)

--last N keeps the newest N trips; --out FILE writes there instead of stdout.

Examples:
  vehicle-agent trips list --last 10
  vehicle-agent trips export --format csv --out trips.csv
  vehicle-agent trips export --format gpx --out trips.gpx
"""

CSV_FIELDS = (
    "trip",
    "start",
    "end",
    "duration_s",
    "distance_km",
    "distance_source",
    "average_speed_kmh",
    "max_speed_kmh",
    "start_latitude",
    "start_longitude",
    "end_latitude",
    "end_longitude",
    "odometer_start_km",
    "odometer_end_km",
    "fuel_used_percent",
    "energy_used_percent",
    "reason",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `trips` sub-command."""
    parser = subparsers.add_parser(
        "trips",
        help="list or export the recorded trips (CSV, GPX)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=("list", "export"))
    parser.add_argument("--state-dir", type=Path, default=None, help="the agent's state dir")
    parser.add_argument("--format", choices=("csv", "gpx"), default="csv", help="export format")
    parser.add_argument("--last", type=int, default=None, metavar="N", help="newest N trips")
    parser.add_argument("--json", action="store_true", help="list as JSON lines")
    parser.add_argument("--out", type=Path, default=None, help="write to FILE (default stdout)")
    parser.set_defaults(func=run)


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _place(summary: dict[str, Any], key: str) -> tuple[Any, Any]:
    place = summary.get(key)
    if not isinstance(place, dict):
        return "", ""
    return place.get("latitude", ""), place.get("longitude", "")


def csv_text(records: list[TripRecord]) -> str:
    """One row per finished trip, the columns of ``CSV_FIELDS``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        s = record.summary
        start_lat, start_lon = _place(s, "start")
        end_lat, end_lon = _place(s, "end")
        row = {name: s.get(name, "") for name in CSV_FIELDS}
        row.update(
            trip=record.id,
            start=_iso(record.start_ts),
            end=_iso(record.end_ts),
            start_latitude=start_lat,
            start_longitude=start_lon,
            end_latitude=end_lat,
            end_longitude=end_lon,
        )
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def gpx_text(log: TripLog, records: list[TripRecord]) -> str:
    """A GPX 1.1 document with one track per trip that has route points."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<gpx version="1.1" creator="CarHub vehicle-agent" '
        'xmlns="http://www.topografix.com/GPX/1/1">',
    ]
    for record in records:
        points = log.points(record.id)
        if not points:
            continue
        s = record.summary
        desc = f"{s.get('distance_km', '')} km, {s.get('duration_s', '')} s"
        lines += [
            "  <trk>",
            f"    <name>{escape(f'Trip {record.id} {_iso(record.start_ts)}')}</name>",
            f"    <desc>{escape(desc)}</desc>",
            "    <trkseg>",
        ]
        lines += [
            f'      <trkpt lat="{lat:.7f}" lon="{lon:.7f}"><time>{_iso(ts)}</time></trkpt>'
            for ts, lat, lon in points
        ]
        lines += ["    </trkseg>", "  </trk>"]
    lines += ["</gpx>", ""]
    return "\n".join(lines)


def list_text(records: list[TripRecord], *, as_json: bool) -> str:
    """Human lines, or JSON lines (the stored summary plus ``trip``/``running``)."""
    lines = []
    for record in records:
        s = record.summary
        if as_json:
            lines.append(json.dumps({**s, "trip": record.id, "running": record.end_ts is None}))
            continue
        end = _iso(record.end_ts) if record.end_ts is not None else "(running)"
        lines.append(
            f"{record.id:>5}  {_iso(record.start_ts)}  {end:<20}  "
            f"{s.get('distance_km', 0):>9.3f} km  {s.get('duration_s', 0):>8.0f} s  "
            f"avg {s.get('average_speed_kmh', 0):>5.1f}  max {s.get('max_speed_kmh', 0):>5.1f} km/h"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def run(args: argparse.Namespace) -> int:
    """List or export; exit code 1 when the log cannot be read."""
    state_dir = args.state_dir or default_state_dir()
    path = state_dir / "trips.db"
    if not path.is_file():
        sys.stderr.write(f"vehicle-agent trips: no trips recorded yet ({path} missing)\n")
        return 1
    log = TripLog(path)
    try:
        records = log.trips(limit=args.last)
        if args.action == "list":
            text = list_text(records, as_json=args.json)
        elif args.format == "gpx":
            text = gpx_text(log, [r for r in records if r.end_ts is not None])
        else:
            text = csv_text([r for r in records if r.end_ts is not None])
    finally:
        log.close()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0
