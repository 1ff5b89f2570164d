"""Finished trips at home: zone names and the car's last trip (trip_sensor.py shows it).

The car sends ``trip_end`` with the trip summary (docs/INTERFACES.md). Here
the start and end coordinates get the Home Assistant zone they lie in
(``start_zone``/``end_zone``: entity id, ``start_zone_name``/``end_zone_name``:
its name, "Home" for ``zone.home`` unless renamed), the trip becomes the
car's ``last_trip`` and the coordinator fires the event on the bus.

A trip the car sends twice (it resends a trip whose hand-over it could not
record, see vehicle_agent/trip_log.py) is recognised by its id and start
time and fired only once per Home Assistant run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from homeassistant.components.zone import async_active_zone
from homeassistant.core import HomeAssistant, callback

from .models import VehicleState, as_float

# Trips remembered to drop a resent one (a car sends one trip at a time).
SEEN_TRIPS = 64


def _zone(hass: HomeAssistant, place: Any) -> tuple[str, str] | None:
    """(zone entity id, zone name) of a ``{"latitude", "longitude"}`` place, or None."""
    if not isinstance(place, Mapping):
        return None
    lat, lon = as_float(place.get("latitude")), as_float(place.get("longitude"))
    if lat is None or lon is None:
        return None
    zone = async_active_zone(hass, lat, lon, 0)
    if zone is None:
        return None
    return zone.entity_id, str(zone.attributes.get("friendly_name") or zone.name)


class TripTracker:
    """Per car: enrich ``trip_end``, drop a resent one, keep the last trip."""

    def __init__(self, hass: HomeAssistant, state: VehicleState) -> None:
        """Track the trips of the car whose state is *state*."""
        self._hass = hass
        self._state = state
        self._seen: deque[tuple[Any, Any]] = deque(maxlen=SEEN_TRIPS)

    @callback
    def trip_end(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The event data to fire for a ``trip_end``, or None for a trip already fired."""
        key = (data.get("trip"), data.get("start_ts"))
        if key[0] is not None and key in self._seen:
            return None
        self._seen.append(key)
        trip = dict(data)
        for end in ("start", "end"):
            if (zone := _zone(self._hass, trip.get(end))) is not None:
                trip[f"{end}_zone"], trip[f"{end}_zone_name"] = zone
        self._state.last_trip = trip
        return trip
