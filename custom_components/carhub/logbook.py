"""Logbook lines for a car's events (trips, home, charging, trouble codes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.components.logbook.const import LOGBOOK_ENTRY_MESSAGE, LOGBOOK_ENTRY_NAME
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import DOMAIN, EVENT_VEHICLE
from .models import as_float


def _trip_end(data: Mapping[str, Any]) -> str:
    km = as_float(data.get("distance_km"))
    seconds = as_float(data.get("duration_s"))
    text = "finished a trip"
    if km is not None and seconds is not None:
        text += f" of {km:.1f} km in {round(seconds / 60)} min"
    start, end = data.get("start_zone_name"), data.get("end_zone_name")
    if isinstance(start, str):
        text += f" from {start}"
    if isinstance(end, str):
        text += f" to {end}"
    return text


def _approaching(data: Mapping[str, Any]) -> str:
    minutes = as_float(data.get("eta_min"))
    if minutes is None:
        return "is approaching home"
    return f"is approaching home (about {round(minutes)} min away)"


def _code(verb: str) -> Callable[[Mapping[str, Any]], str]:
    def _text(data: Mapping[str, Any]) -> str:
        return f"{verb} trouble code {data.get('code', '?')}"

    return _text


def _charged(data: Mapping[str, Any]) -> str:
    kwh = as_float(data.get("energy_added_kwh"))
    seconds = as_float(data.get("duration_s"))
    text = "finished charging"
    if kwh is not None:
        text += f": {kwh:.1f} kWh added"
    if seconds is not None:
        text += f" in {round(seconds / 60)} min"
    return text


MESSAGES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "trip_start": lambda _data: "started a trip",
    "trip_end": _trip_end,
    "arrived_home": lambda _data: "arrived home",
    "left_home": lambda _data: "left home",
    "approaching_home": _approaching,
    "charging_start": lambda _data: "started charging",
    "charging_end": _charged,
    "dtc_appeared": _code("reported"),
    "dtc_cleared": _code("cleared"),
}


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, str]]], None],
) -> None:
    """Describe ``carhub_vehicle_event`` for the logbook."""

    @callback
    def describe(event: Event) -> dict[str, str]:
        data = event.data
        device_id = data.get("device_id")
        device = dr.async_get(hass).async_get(device_id) if isinstance(device_id, str) else None
        name = (device.name_by_user or device.name) if device is not None else None
        details = data.get("data")
        kind = str(data.get("type"))
        describe_kind = MESSAGES.get(kind)
        details_map: Mapping[str, Any] = details if isinstance(details, Mapping) else {}
        text = describe_kind(details_map) if describe_kind else kind.replace("_", " ")
        return {
            LOGBOOK_ENTRY_NAME: name or str(data.get("vehicle_id") or "Car"),
            LOGBOOK_ENTRY_MESSAGE: text,
        }

    async_describe_event(DOMAIN, EVENT_VEHICLE, describe)
