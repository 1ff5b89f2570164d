"""Where the car is: gpsd's JSON stream, or a recorded GPX/NMEA track replayed live."""

from vehicle_agent.gps.fix import HELLO_SIGNALS, GpsFix
from vehicle_agent.gps.gpsd import GpsdClient, GpsdStats, parse_tpv
from vehicle_agent.gps.gpx import GpxError, parse_gpx
from vehicle_agent.gps.nmea import NmeaStats, parse_nmea
from vehicle_agent.gps.track import Track, TrackError, load_track, replay

__all__ = [
    "HELLO_SIGNALS",
    "GpsFix",
    "GpsdClient",
    "GpsdStats",
    "GpxError",
    "NmeaStats",
    "Track",
    "TrackError",
    "load_track",
    "parse_gpx",
    "parse_nmea",
    "parse_tpv",
    "replay",
]
