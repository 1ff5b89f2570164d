"""A "Car" dashboard in Home Assistant, made through the same WebSocket API the UI uses."""

from __future__ import annotations

from typing import Any

from demo.car_view import CarDevice
from demo.ha_client import HAError, HAWebSocket
from demo.ha_config import DEMO_ENTITIES

URL_PATH = "carhub-demo"
_GAUGES = (("speed", 200, "Speed"), ("engine_speed", 7000, "Engine"))
#: Short labels for the cards (the entities' own names start with the car's name).
_LABELS = {
    "engine_running": "Engine",
    "moving": "Moving",
    "lock": "Lock",
    "driver_seatbelt": "Seatbelt",
    "door_front_driver": "Driver",
    "door_front_passenger": "Passenger",
    "door_rear_driver": "Rear left",
    "door_rear_passenger": "Rear right",
    "trunk": "Trunk",
    "check_engine": "Check engine",
    "location": "Location",
}
_GLANCE_KEYS = tuple(k for k in _LABELS if k != "location")
#: The last trip and the way home, in a card of their own (docs/home-assistant.md).
_TRIP_KEYS = (
    "last_trip",
    "last_trip_distance",
    "last_trip_duration",
    "last_trip_average_speed",
    "time_to_home",
    "distance_to_home",
)


def _label(key: str) -> str:
    return _LABELS.get(key) or key.replace("_", " ").capitalize()


def dashboard_config(car: CarDevice) -> dict[str, Any]:
    """The Lovelace configuration: gauges, the car's state, its sensors, and the home."""
    by_key = {e.key: e.entity_id for e in car.entities}
    cards: list[dict[str, Any]] = []
    gauges = [
        {"type": "gauge", "entity": by_key[key], "name": name, "min": 0, "max": top}
        for key, top, name in _GAUGES
        if key in by_key
    ]
    if gauges:
        cards.append({"type": "horizontal-stack", "cards": gauges})
    glance = [{"entity": by_key[k], "name": _label(k)} for k in _GLANCE_KEYS if k in by_key]
    if glance:
        cards.append({"type": "glance", "title": car.name, "entities": glance, "columns": 5})
    trip = [{"entity": by_key[k], "name": _label(k)} for k in _TRIP_KEYS if k in by_key]
    if trip:
        cards.append({"type": "entities", "title": "Trips and the way home", "entities": trip})
    shown = {
        *(g["entity"] for g in glance),
        *(g["entity"] for g in gauges),
        *(t["entity"] for t in trip),
    }
    rest = sorted(
        (e for e in car.entities if e.entity_id not in shown),
        key=lambda e: (e.platform_domain != "device_tracker", e.key),
    )
    rows = [
        {"entity": e.entity_id, "name": _label(e.key)}
        for e in rest
        if e.platform_domain in {"sensor", "device_tracker"}
    ]
    if rows:
        cards.append({"type": "entities", "title": "Car details", "entities": rows})
    cards.append(
        {
            "type": "grid",
            "columns": 2,
            "square": False,
            "cards": [{"type": "tile", "entity": e.entity_id} for e in DEMO_ENTITIES],
        }
    )
    return {
        "title": "CarHub",
        "views": [{"title": "Car", "path": "car", "icon": "mdi:car", "cards": cards}],
    }


async def create_dashboard(ws: HAWebSocket, car: CarDevice) -> str:
    """Create (or refresh) the "Car" dashboard; return its URL path."""
    existing = {d["url_path"] for d in await ws.command("lovelace/dashboards/list")}
    if URL_PATH not in existing:
        try:
            await ws.command(
                "lovelace/dashboards/create",
                url_path=URL_PATH,
                title="Car",
                icon="mdi:car-connected",
                show_in_sidebar=True,
                require_admin=False,
                mode="storage",
            )
        except HAError as err:
            raise HAError(f"cannot create the Car dashboard: {err}") from err
    await ws.command("lovelace/config/save", url_path=URL_PATH, config=dashboard_config(car))
    return f"/{URL_PATH}/car"
