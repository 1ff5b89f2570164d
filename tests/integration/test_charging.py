"""Charging sessions at home: events on the bus, last-charge sensors for cars that charge."""

from __future__ import annotations

import time
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from bridge.protocol import MessageType
from custom_components.carhub.const import EVENT_VEHICLE
from custom_components.carhub.logbook import MESSAGES

from .conftest import PEER, SIGNALS, connect_car, hello, hub, message

CHARGING = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"
EV_SIGNALS: dict[str, Any] = {
    **SIGNALS,
    CHARGING: {"unit": None, "datatype": "bool"},
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed": {
        "unit": "percent",
        "datatype": "float",
    },
}
ENERGY = "sensor.volkswagen_golf_last_charge_energy"


@pytest.fixture(autouse=True)
def only_sensors():
    with patch("custom_components.carhub.PLATFORMS", [Platform.SENSOR]):
        yield


async def test_charge_sensors_only_for_cars_that_charge(
    hass: HomeAssistant, init_integration: MockConfigEntry, entity_registry: er.EntityRegistry
) -> None:
    await connect_car(hass)  # a petrol car
    assert entity_registry.async_get(ENERGY) is None
    await hub(hass).on_connect(PEER, hello(EV_SIGNALS))
    await hass.async_block_till_done()
    assert entity_registry.async_get(ENERGY) is not None


async def test_charging_session_events_and_sensors(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await connect_car(hass)
    await hub(hass).on_connect(PEER, hello(EV_SIGNALS))  # an electric car's hello
    await hass.async_block_till_done()
    events = async_capture_events(hass, EVENT_VEHICLE)
    end = time.time() - 30
    session = {
        "start_ts": end - 2400,
        "end_ts": end,
        "duration_s": 2400.0,
        "soc_start_percent": 31.5,
        "soc_end_percent": 71.5,
        "soc_added_percent": 40.0,
        "energy_added_kwh": 24.5,
    }
    for kind, ts, data in (
        ("charging_start", end - 2400, {"start_ts": end - 2400, "soc_percent": 31.5}),
        ("charging_end", end, session),
    ):
        body = {"kind": kind, "ts": ts, "data": data}
        await hub(hass).on_message(PEER, message(MessageType.EVENT, body))
    await hass.async_block_till_done()
    assert [e.data["type"] for e in events] == ["charging_start", "charging_end"]
    assert events[1].data["data"]["energy_added_kwh"] == 24.5
    assert float(hass.states.get(ENERGY).state) == 24.5
    assert float(hass.states.get("sensor.volkswagen_golf_last_charge_duration").state) == 40.0
    assert float(hass.states.get("sensor.volkswagen_golf_last_charge_added").state) == 40.0
    assert MESSAGES["charging_end"](session) == "finished charging: 24.5 kWh added in 40 min"
