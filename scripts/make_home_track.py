"""Generate vehicle_agent/data/home_loop_track.gpx: a fictional errand that leaves home and returns.

The track is synthetic, one point per second like a phone or dash GNSS logger:
the car stands at home for 30 s, drives out through a residential street and
along a main road to a shop about 7 km away, stands there for 90 s, and comes
back by another way (a main road with bends, a 40 s stop at a red light, a slow
residential stretch) until it is parked at home again for 30 s. Speeds change
with a comfortable acceleration (1.5 m/s^2) and headings turn at most 12
degrees per second. The coordinates do not follow a real road; the home is at
HOME_LAT, HOME_LON (tests put Home Assistant's home zone there).

Run: .venv/bin/python scripts/make_home_track.py
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from make_demo_track import EARTH_RADIUS_M, step  # the same spherical step, one place

OUT = Path(__file__).resolve().parent.parent / "vehicle_agent" / "data" / "home_loop_track.gpx"
START = datetime(2024, 5, 18, 16, 0, 0, tzinfo=UTC)
# The demo home: the first point of demo_track.gpx (demo/ha_config.py puts the home there).
HOME_LAT, HOME_LON = 52.081230, 5.012440
ACCEL_MPS2 = 1.5
TURN_DEG_PER_S = 12.0


@dataclass(frozen=True)
class Leg:
    """Drive *metres* towards *bearing* at *kmh*; ``kmh == 0`` stands still for *seconds*."""

    bearing: float
    metres: float = 0.0
    kmh: float = 0.0
    seconds: float = 0.0


OUTBOUND = [
    Leg(0, seconds=30),  # parked at home
    Leg(90, 400, 30),
    Leg(20, 1200, 50),
    Leg(45, 2500, 80),
    Leg(60, 2000, 80),
    Leg(35, 1500, 80),
    Leg(100, 800, 50),
    Leg(100, seconds=90),  # at the shop
]
RETURN = [
    Leg(190, 1500, 50),
    Leg(230, 2200, 80),
    Leg(255, 1800, 80),
    Leg(210, 1200, 70),
    Leg(210, seconds=40),  # red light
    Leg(200, 1000, 70),
    Leg(260, 600, 40),
]


def to_home(lat: float, lon: float) -> tuple[float, float]:
    """(metres, bearing) from a point to the home."""
    p1, p2 = math.radians(lat), math.radians(HOME_LAT)
    dl = math.radians(HOME_LON - lon)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return dist, (math.degrees(math.atan2(x, y)) + 360) % 360


class Car:
    """Dead reckoning at 1 Hz with bounded acceleration and turn rate."""

    def __init__(self) -> None:
        self.lat, self.lon = HOME_LAT, HOME_LON
        self.heading = 90.0
        self.mps = 0.0
        self.points: list[tuple[float, float]] = []

    def tick(self, target_bearing: float, target_mps: float) -> float:
        """One second; returns the metres driven."""
        self.points.append((self.lat, self.lon))
        turn = (target_bearing - self.heading + 540) % 360 - 180
        self.heading = (self.heading + max(-TURN_DEG_PER_S, min(TURN_DEG_PER_S, turn))) % 360
        new = max(self.mps - ACCEL_MPS2, min(self.mps + ACCEL_MPS2, target_mps))
        dist = (self.mps + new) / 2
        self.mps = new
        self.lat, self.lon = step(self.lat, self.lon, self.heading, dist)
        return dist

    def leg(self, leg: Leg) -> None:
        if leg.kmh == 0:
            for _ in range(int(leg.seconds)):
                self.tick(self.heading, 0.0)
            return
        done = 0.0
        while done < leg.metres:
            left = leg.metres - done
            # Brake in time for a stop or a slower leg: v^2 = 2 a s.
            target = min(leg.kmh / 3.6, math.sqrt(2 * ACCEL_MPS2 * left) + 5 / 3.6)
            done += self.tick(leg.bearing, target)

    def home(self) -> None:
        """Steer to the home at 30 km/h, stop there, stand 30 s."""
        while True:
            dist, bearing = to_home(self.lat, self.lon)
            if dist < 4:
                break
            self.tick(bearing, min(30 / 3.6, math.sqrt(2 * ACCEL_MPS2 * dist)))
        for _ in range(30):
            self.tick(self.heading, 0.0)


def main() -> None:
    car = Car()
    for leg in [*OUTBOUND, *RETURN]:
        car.leg(leg)
    car.home()
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- Fictional errand from home and back for the CarHub tests and demo, generated",
        "     by scripts/make_home_track.py. The coordinates do not follow a real road. -->",
        '<gpx version="1.1" creator="CarHub make_home_track.py" '
        'xmlns="http://www.topografix.com/GPX/1/1">',
        "  <trk>",
        "    <name>CarHub errand from home and back</name>",
        "    <trkseg>",
    ]
    for t, (lat, lon) in enumerate(car.points):
        when = (START + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f'      <trkpt lat="{lat:.7f}" lon="{lon:.7f}"><time>{when}</time></trkpt>')
    lines += ["    </trkseg>", "  </trk>", "</gpx>", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {OUT} ({len(car.points)} points)")


if __name__ == "__main__":
    main()
