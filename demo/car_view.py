"""The car as Home Assistant sees it: its device, its entities, and what they should show."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo.expected import SignalValues
from demo.ha_client import HAClient, HAWebSocket
from demo.paths import GPS_TRACK

DOMAIN = "carhub"
_UNSET = frozenset({"unknown", "unavailable"})


@dataclass(frozen=True, kw_only=True)
class CarEntity:
    """One entity of the car (from the entity registry)."""

    entity_id: str
    key: str  # the integration's entity description key
    platform_domain: str  # sensor, binary_sensor, device_tracker, event


@dataclass(frozen=True, kw_only=True)
class CarDevice:
    """The car's device in Home Assistant and its entities."""

    device_id: str
    name: str
    entities: tuple[CarEntity, ...]

    @property
    def entity_ids(self) -> list[str]:
        """All the car's entity ids."""
        return [e.entity_id for e in self.entities]


async def find_car(ws: HAWebSocket, entry_id: str) -> CarDevice | None:
    """The device and entities the car's config entry created (None before they exist)."""
    devices = [
        d
        for d in await ws.command("config/device_registry/list")
        if entry_id in d["config_entries"]
    ]
    if not devices:
        return None
    device = devices[0]
    vehicle_ids = [i[1] for i in device.get("identifiers", []) if i[0] == DOMAIN]
    prefix = f"{vehicle_ids[0]}_" if vehicle_ids else ""
    entities = []
    for e in await ws.command("config/entity_registry/list"):
        if e.get("config_entry_id") != entry_id or e.get("disabled_by"):
            continue
        unique_id = str(e.get("unique_id", ""))
        key = unique_id.removeprefix(prefix)
        entities.append(
            CarEntity(
                entity_id=e["entity_id"], key=key, platform_domain=e["entity_id"].split(".")[0]
            )
        )
    name = device.get("name_by_user") or device.get("name") or "car"
    return CarDevice(device_id=device["id"], name=name, entities=tuple(entities))


async def wait_for_values(
    api: HAClient,
    entity_ids: Iterable[str],
    *,
    timeout_s: float,
    ready: Callable[[dict[str, dict[str, Any]]], bool],
) -> dict[str, dict[str, Any]]:
    """Poll ``/api/states`` until ``ready(states_by_id)``; return the last states seen."""
    wanted = set(entity_ids)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        states = {s["entity_id"]: s for s in await api.states() if s["entity_id"] in wanted}
        if ready(states) or loop.time() >= deadline:
            return states
        await asyncio.sleep(0.5)


def has_value(state: dict[str, Any] | None) -> bool:
    """True when an entity state carries a real value (not unknown/unavailable)."""
    return state is not None and state.get("state") not in _UNSET


def _descriptions() -> dict[str, Callable[[Any], Any]]:
    """The integration's own value functions, by entity description key.

    Using them turns a decoded signal value into exactly what the entity
    should show (for example the lock sensor is "on" when the car is
    unlocked), without the check re-implementing that mapping.
    """
    from custom_components.carhub import binary_sensor, sensor

    fns: dict[str, Callable[[Any], Any]] = {}
    for d in sensor.SENSORS:
        fns[d.key] = d.value_fn
    for b in binary_sensor.BINARY_SENSORS:
        fns[b.key] = b.is_on_fn
    return fns


def expected_states(
    decoded: dict[str, SignalValues], keys: Iterable[str]
) -> dict[str, SignalValues]:
    """For each entity key fed by the log: every state it may show, given the decoded values."""
    from custom_components.carhub.models import SignalValue, VehicleState

    fns = _descriptions()
    out: dict[str, SignalValues] = {}
    for key in keys:
        fn = fns.get(key)
        # Entities not fed by signals (link state, last seen, ...) show something
        # even for a car that sent nothing: they are not compared with the log.
        if fn is None or fn(VehicleState()) is not None:
            continue
        shown = SignalValues()
        for path, values in decoded.items():
            for value in values.values:
                result = fn(VehicleState(signals={path: SignalValue(value=value, ts=0.0)}))
                if result is not None:
                    shown.add(result)
        if shown.count:
            out[key] = shown
    return out


def track_bounds(track: Path = GPS_TRACK) -> tuple[float, float, float, float] | None:
    """(min lat, max lat, min lon, max lon) of the GPS track, or None without one."""
    try:
        text = track.read_text(encoding="utf-8")
    except OSError:
        return None
    points = [
        (float(lat), float(lon))
        for lat, lon in re.findall(r'lat="(-?[\d.]+)"\s+lon="(-?[\d.]+)"', text)
    ]
    if not points:
        return None
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    return min(lats), max(lats), min(lons), max(lons)
