"""Leaving and approaching home, and the estimated time of arrival.

Fed with every position of the car (after arrived/left-home detection by
zone), :class:`HomeWatch` keeps:

* ``distance_km``: great-circle distance from the car to the edge of the home
  zone (``zone.home`` centre minus its radius), 0 inside;
* whether the car *heads home*: its GPS heading is within ``HEADING_TOLERANCE``
  degrees of the bearing to home while it moves, or its distance to home
  shrank by at least ``TREND_MIN_KM`` over the last ``TREND_WINDOW_S``;
* ``eta_min`` (None unless heading home and within the *ETA range* option):
  ``distance_km * ROAD_FACTOR / recent speed`` in minutes, where the recent
  speed is the time-weighted mean of the last ``SPEED_WINDOW_S`` of car speed
  (``Vehicle.Speed``, else GNSS speed, else from successive positions),
  at least ``MIN_SPEED_KMH``. ``ROAD_FACTOR`` (1.3) is the usual ratio of
  road to straight-line distance (route circuity, 1.2-1.4 in published
  studies of road networks).

``approaching_home`` fires once per approach when the ETA first drops to the
*approach time* option or below; it is armed again when the car is home, has
left home, or moved 1 km further away than where it fired. On the recorded
errand (tests/integration/test_home_approach.py) the ETA stays within the
error documented in docs/home-assistant.md.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.util.location import distance as distance_m

ROAD_FACTOR: Final = 1.3
SPEED_WINDOW_S: Final = 300.0
MIN_SPEED_KMH: Final = 10.0
HEADING_TOLERANCE: Final = 60.0
MOVING_KMH: Final = 5.0
TREND_WINDOW_S: Final = 120.0
TREND_MIN_KM: Final = 0.1
REARM_KM: Final = 1.0
HOME_ZONE: Final = "zone.home"

DEFAULT_APPROACH_MINUTES: Final = 10.0
DEFAULT_ETA_MAX_KM: Final = 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """One position of the car with what is known about its motion (car time)."""

    ts: float
    latitude: float
    longitude: float
    heading: float | None = None
    speed_kmh: float | None = None


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial great-circle bearing from point 1 to point 2, degrees 0..360."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0


class HomeWatch:
    """Distance, heading and ETA to the home zone of one car; fires approaching_home."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Watch the approach to ``zone.home`` of *hass*."""
        self._hass = hass
        self._speeds: deque[tuple[float, float]] = deque()
        self._distances: deque[tuple[float, float]] = deque()
        self._last: Position | None = None
        self._fired_at_km: float | None = None
        self.distance_km: float | None = None
        self.eta_min: float | None = None
        self.heading_home = False

    def _home(self) -> tuple[float, float, float] | None:
        state = self._hass.states.get(HOME_ZONE)
        if state is None:
            return None
        attrs = state.attributes
        try:
            return float(attrs["latitude"]), float(attrs["longitude"]), float(attrs["radius"])
        except (KeyError, TypeError, ValueError):
            return None

    def reset(self) -> None:
        """The car arrived or left home: a new approach can fire."""
        self._fired_at_km = None

    def update(
        self, pos: Position, *, approach_minutes: float, eta_max_km: float
    ) -> dict[str, Any] | None:
        """Take one position; return the ``approaching_home`` event data when it fires."""
        home = self._home()
        if home is None:
            self.distance_km = self.eta_min = None
            return None
        lat, lon, radius = home
        centre_m = distance_m(pos.latitude, pos.longitude, lat, lon)
        if centre_m is None:
            return None
        dist_km = max(0.0, centre_m - radius) / 1000.0
        self.distance_km = round(dist_km, 3)
        speed = self._speed(pos)
        self._remember(pos.ts, speed, dist_km)
        recent = max(MIN_SPEED_KMH, self._recent_speed())
        to_home = bearing_deg(pos.latitude, pos.longitude, lat, lon)
        aligned = (
            pos.heading is not None
            and speed >= MOVING_KMH
            and abs((pos.heading - to_home + 540.0) % 360.0 - 180.0) <= HEADING_TOLERANCE
        )
        self.heading_home = dist_km > 0 and (aligned or self._closing(pos.ts, dist_km))
        if self.heading_home and dist_km <= eta_max_km:
            self.eta_min = round(dist_km * ROAD_FACTOR / recent * 60.0, 1)
        else:
            self.eta_min = None
        self._last = pos
        if self._fired_at_km is not None and dist_km > self._fired_at_km + REARM_KM:
            self._fired_at_km = None
        if self.eta_min is None or self.eta_min > approach_minutes or self._fired_at_km is not None:
            return None
        self._fired_at_km = dist_km
        return {
            "zone": HOME_ZONE,
            "eta_min": self.eta_min,
            "distance_km": self.distance_km,
            "latitude": pos.latitude,
            "longitude": pos.longitude,
        }

    def _speed(self, pos: Position) -> float:
        if pos.speed_kmh is not None:
            return pos.speed_kmh
        last = self._last
        if last is None or pos.ts <= last.ts:
            return 0.0
        moved = distance_m(last.latitude, last.longitude, pos.latitude, pos.longitude) or 0.0
        return moved / (pos.ts - last.ts) * 3.6

    def _remember(self, ts: float, speed: float, dist_km: float) -> None:
        self._speeds.append((ts, speed))
        self._distances.append((ts, dist_km))
        while self._speeds and self._speeds[0][0] < ts - SPEED_WINDOW_S:
            self._speeds.popleft()
        while len(self._distances) > 1 and self._distances[1][0] <= ts - TREND_WINDOW_S:
            self._distances.popleft()

    def _recent_speed(self) -> float:
        """Time-weighted mean speed over the window (each sample holds until the next)."""
        samples = list(self._speeds)
        if len(samples) < 2:
            return samples[0][1] if samples else 0.0
        total = weight = 0.0
        for (t0, v0), (t1, _) in pairwise(samples):
            if v0 < MOVING_KMH:
                continue  # standing (shop, lights): not part of the driving speed
            total += v0 * (t1 - t0)
            weight += t1 - t0
        return total / weight if weight > 0 else samples[-1][1]

    def _closing(self, now: float, dist_km: float) -> bool:
        """The distance to home shrank over the trend window."""
        oldest_ts, oldest_km = self._distances[0]
        return now - oldest_ts >= TREND_WINDOW_S / 2 and oldest_km - dist_km >= TREND_MIN_KM
