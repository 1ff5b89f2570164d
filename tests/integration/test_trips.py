"""Finished trips at home: zone names, last-trip sensors, once only, and the logbook."""

from __future__ import annotations

import time
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from bridge.protocol import MessageType
from custom_components.carhub.const import EVENT_VEHICLE

from .conftest import PEER, connect_car, hub, message

SENSOR = "sensor.volkswagen_golf_last_trip"


@pytest.fixture
def mock_recorder_before_hass(async_setup_recorder_instance: Any) -> None:
    """The recorder (for the logbook test) needs its database set up before hass."""


def trip(hass: HomeAssistant, **changes: Any) -> dict[str, Any]:
    """A trip from home (the zone's centre) to a point 12 km north."""
    end_ts = time.time() - 60
    data = {
        "trip": 7,
        "reason": "stopped",
        "start_ts": end_ts - 1500,
        "end_ts": end_ts,
        "duration_s": 1500.0,
        "distance_km": 14.2,
        "distance_source": "odometer",
        "distance_speed_km": 14.1,
        "average_speed_kmh": 34.1,
        "max_speed_kmh": 81.0,
        "start": {"latitude": hass.config.latitude, "longitude": hass.config.longitude},
        "end": {"latitude": hass.config.latitude + 0.11, "longitude": hass.config.longitude},
        "fuel_used_percent": 2.0,
    }
    data.update(changes)
    return data


async def send_trip(hass: HomeAssistant, data: dict[str, Any]) -> None:
    body = {"kind": "trip_end", "ts": data["end_ts"], "data": data}
    await hub(hass).on_message(PEER, message(MessageType.EVENT, body, ts=data["end_ts"]))
    await hass.async_block_till_done()


async def test_trip_end_event_sensors_and_resend(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The trip reaches the bus once with zone names, and the last-trip sensors show it."""
    assert await async_setup_component(hass, "zone", {})
    await connect_car(hass)
    events = async_capture_events(hass, EVENT_VEHICLE)
    data = trip(hass)
    await send_trip(hass, data)
    await send_trip(hass, data)  # the car resent it (crash before it recorded the hand-over)
    assert len(events) == 1
    fired = events[0].data
    assert fired["type"] == "trip_end" and fired["ts"] == data["end_ts"]
    assert fired["data"]["start_zone"] == "zone.home"
    assert fired["data"]["start_zone_name"] == hass.config.location_name
    assert "end_zone" not in fired["data"]  # 12 km away: in no zone
    assert fired["data"]["distance_km"] == 14.2

    assert float(hass.states.get(f"{SENSOR}_distance").state) == 14.2
    assert float(hass.states.get(f"{SENSOR}_duration").state) == 25.0  # minutes
    assert float(hass.states.get(f"{SENSOR}_average_speed").state) == 34.1
    assert float(hass.states.get(f"{SENSOR}_top_speed").state) == 81.0
    last = hass.states.get(SENSOR)
    assert last.state.startswith(time.strftime("%Y-%m-%d", time.gmtime(data["end_ts"])))
    assert last.attributes["trip"] == 7 and last.attributes["start_zone_name"]
    assert last.attributes["fuel_used_percent"] == 2.0

    # The next trip replaces it.
    await send_trip(hass, trip(hass, trip=8, distance_km=3.0, start_ts=data["start_ts"] + 9000))
    assert len(events) == 2
    assert float(hass.states.get(f"{SENSOR}_distance").state) == 3.0
    assert hass.states.get(SENSOR).attributes["trip"] == 8


async def test_trip_end_in_the_logbook(
    hass: HomeAssistant,
    recorder_mock: Any,
    init_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """The logbook shows the finished trip with its distance, time and zones."""
    assert await async_setup_component(hass, "zone", {})
    assert await async_setup_component(hass, "logbook", {})
    await connect_car(hass)
    data = trip(hass)
    await send_trip(hass, data)
    await async_wait_recording_done(hass)
    client = await hass_ws_client()
    await client.send_json_auto_id(
        {"type": "logbook/get_events", "start_time": "2000-01-01T00:00:00+00:00"}
    )
    response = await client.receive_json()
    assert response["success"], response
    [entry] = [e for e in response["result"] if e.get("domain") == "carhub"]
    assert entry["name"] == "Volkswagen Golf"
    assert entry["message"] == (
        f"finished a trip of 14.2 km in 25 min from {hass.config.location_name}"
    )
