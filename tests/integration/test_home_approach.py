"""Leaving and approaching home on a recorded errand, with the ETA checked against the track.

The car replays vehicle_agent/data/home_loop_track.gpx (scripts/make_home_track.py:
leaves home, drives about 8 km to a shop, comes back another way) as GPS state
messages. Home Assistant's home zone is where the track starts. The real
arrival time is taken from the track itself (first fix inside the zone).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from bridge.protocol import MessageType
from custom_components.carhub.const import CONF_APPROACH_MINUTES, EVENT_VEHICLE
from vehicle_agent.gps import load_track

from .conftest import PEER, connect_car, hub, message, signals_body

TRACK = Path(__file__).resolve().parents[2] / "vehicle_agent" / "data" / "home_loop_track.gpx"
HOME_LAT, HOME_LON, RADIUS_M = 52.08123, 5.01244, 100.0
ETA = "sensor.volkswagen_golf_time_to_home"
DISTANCE = "sensor.volkswagen_golf_distance_to_home"
# The documented error (docs/home-assistant.md, Leaving and approaching home).
MAX_ERROR_MIN = 2.5


@pytest.fixture(autouse=True)
def only_sensors():
    """Load only the sensor platform (the ETA sensors)."""
    with patch("custom_components.carhub.PLATFORMS", [Platform.SENSOR]):
        yield


def inside_home(lat: float, lon: float) -> bool:
    """Equirectangular distance to the zone centre (independent of the code under test)."""
    dx = math.radians(lon - HOME_LON) * math.cos(math.radians(HOME_LAT))
    dy = math.radians(lat - HOME_LAT)
    return 6_371_008.8 * math.hypot(dx, dy) <= RADIUS_M


async def test_errand_left_approaching_arrived_and_eta(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    hass.config.latitude, hass.config.longitude = HOME_LAT, HOME_LON
    assert await async_setup_component(hass, "zone", {})
    hass.config_entries.async_update_entry(init_integration, options={CONF_APPROACH_MINUTES: 10})
    fixes = load_track(TRACK).fixes
    shift = time.time() - fixes[-1].time  # the errand just happened
    arrival = next(
        f.time + shift for f in fixes if f.time > fixes[0].time + 300 and inside_home(f.lat, f.lon)
    )
    farthest_fix = max(fixes, key=lambda f: math.hypot(f.lat - HOME_LAT, f.lon - HOME_LON))
    farthest = farthest_fix.time + shift
    first = fixes[0]
    await connect_car(
        hass,
        {
            "Vehicle.CurrentLocation.Latitude": first.lat,
            "Vehicle.CurrentLocation.Longitude": first.lon,
        },
        ts=first.time + shift,
    )
    events = async_capture_events(hass, EVENT_VEHICLE)
    coordinator = init_integration.runtime_data.coordinator
    etas: list[tuple[float, float]] = []  # (car time, predicted minutes)
    eta_states: set[str] = set()
    for fix in fixes[1::2]:  # a fix every 2 s
        values: dict[str, Any] = {
            "Vehicle.CurrentLocation.Latitude": round(fix.lat, 7),
            "Vehicle.CurrentLocation.Longitude": round(fix.lon, 7),
            "Vehicle.CurrentLocation.Speed": round(fix.speed_kmh or 0.0, 1),
        }
        if fix.track_deg is not None:
            values["Vehicle.CurrentLocation.Heading"] = round(fix.track_deg, 1)
        ts = fix.time + shift
        await hub(hass).on_message(PEER, message(MessageType.STATE, signals_body(values, ts)))
        if coordinator.home.eta_min is not None:
            etas.append((ts, coordinator.home.eta_min))
            eta_states.add(hass.states.get(ETA).state)
    await hass.async_block_till_done()

    kinds = [e.data["type"] for e in events]
    assert kinds == ["left_home", "approaching_home", "arrived_home"], kinds
    assert events[0].data["ts"] < farthest < events[1].data["ts"] < arrival
    assert events[2].data["ts"] == pytest.approx(arrival, abs=2.5)  # a fix every 2 s
    # Fired once, when the ETA first reached the 10-minute option.
    approaching = events[1].data
    assert approaching["data"]["eta_min"] <= 10
    assert 7 <= (arrival - approaching["ts"]) / 60 <= 13
    # An ETA only on the way back, for the whole way back, and within the documented error.
    assert etas and etas[0][0] > farthest
    assert (arrival - etas[0][0]) / 60 > 9
    worst = max(abs(eta - (arrival - ts) / 60) for ts, eta in etas if ts < arrival)
    assert worst <= MAX_ERROR_MIN, worst
    assert all(float(state) >= 0 for state in eta_states)
    # Home again: no ETA, distance 0.
    assert hass.states.get(ETA).state == "unknown"
    assert float(hass.states.get(DISTANCE).state) == 0.0
