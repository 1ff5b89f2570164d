"""A GNSS position fix and its conversion to VSS updates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vehicle_agent.mapper import VssUpdate

LATITUDE = "Vehicle.CurrentLocation.Latitude"
LONGITUDE = "Vehicle.CurrentLocation.Longitude"
HEADING = "Vehicle.CurrentLocation.Heading"
ACCURACY = "Vehicle.CurrentLocation.HorizontalAccuracy"
ALTITUDE = "Vehicle.CurrentLocation.Altitude"
GNSS_SPEED = "Vehicle.CurrentLocation.Speed"
"""Custom leaf: speed over ground from the receiver, km/h (``Vehicle.Speed`` stays the car's)."""

HELLO_SIGNALS: dict[str, dict[str, Any]] = {
    LATITUDE: {"unit": "deg", "datatype": "float"},
    LONGITUDE: {"unit": "deg", "datatype": "float"},
    HEADING: {"unit": "deg", "datatype": "float"},
    ACCURACY: {"unit": "m", "datatype": "float"},
    ALTITUDE: {"unit": "m", "datatype": "float"},
    GNSS_SPEED: {"unit": "km/h", "datatype": "float"},
}
"""What a GPS source adds to the hello's ``signals`` (the car profile knows nothing of it)."""

KNOTS_TO_KMH = 1.852
MPS_TO_KMH = 3.6


@dataclass(frozen=True, slots=True, kw_only=True)
class GpsFix:
    """One position fix. Optional fields are ``None`` when the source did not say."""

    time: float
    """Unix time of the fix."""
    lat: float
    """Degrees, WGS84, north positive."""
    lon: float
    """Degrees, WGS84, east positive."""
    speed_kmh: float | None = None
    track_deg: float | None = None
    """Course over ground, degrees from true north, 0..360."""
    alt_m: float | None = None
    eph_m: float | None = None
    """Estimated horizontal position error, metres."""
    mode: int = 2
    """2 = 2D fix, 3 = 3D fix (gpsd's TPV mode)."""

    def to_json(self) -> dict[str, Any]:
        """Plain dict for printing (`vehicle-agent gps`)."""
        return {
            "time": self.time,
            "lat": self.lat,
            "lon": self.lon,
            "speed_kmh": self.speed_kmh,
            "track": self.track_deg,
            "alt": self.alt_m,
            "eph": self.eph_m,
            "mode": self.mode,
        }

    def to_vss(self) -> list[VssUpdate]:
        """The fix as VSS updates; unknown fields produce no update."""
        out = [
            VssUpdate(LATITUDE, round(self.lat, 7), self.time),
            VssUpdate(LONGITUDE, round(self.lon, 7), self.time),
        ]
        if self.track_deg is not None:
            out.append(VssUpdate(HEADING, round(self.track_deg, 1), self.time))
        if self.eph_m is not None:
            out.append(VssUpdate(ACCURACY, round(self.eph_m, 1), self.time))
        if self.alt_m is not None:
            out.append(VssUpdate(ALTITUDE, round(self.alt_m, 1), self.time))
        if self.speed_kmh is not None:
            out.append(VssUpdate(GNSS_SPEED, round(self.speed_kmh, 2), self.time))
        return out


def valid_position(lat: object, lon: object) -> bool:
    """True when ``lat``/``lon`` are finite numbers inside the globe's ranges."""
    return (
        isinstance(lat, int | float)
        and isinstance(lon, int | float)
        and not isinstance(lat, bool)
        and not isinstance(lon, bool)
        and math.isfinite(lat)
        and math.isfinite(lon)
        and -90.0 <= lat <= 90.0
        and -180.0 <= lon <= 180.0
    )


EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial great-circle bearing from point 1 to point 2, degrees 0..360."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0
