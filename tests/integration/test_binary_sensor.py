"""Binary sensors: link, engine, motion, doors, lock (inverted), seatbelt, check-engine."""

from __future__ import annotations

from unittest.mock import patch

import pytest
from homeassistant.const import STATE_OFF, STATE_ON, Platform
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    mock_restore_cache,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from bridge.protocol import MessageType

from .conftest import PEER, connect_car, hub, message, signals_body, unload_all


@pytest.fixture(autouse=True)
def only_binary_sensors():
    """Load only the binary sensor platform."""
    with patch("custom_components.carhub.PLATFORMS", [Platform.BINARY_SENSOR]):
        yield


async def test_binary_sensors_snapshot(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every binary sensor the car declares, after its snapshot."""
    await connect_car(hass)
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_lock_means_unlocked_when_on(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """device_class lock: on = unlocked. The car reports IsLocked, so it is inverted."""
    await connect_car(hass)
    lock = "binary_sensor.volkswagen_golf_lock"
    assert hass.states.get(lock).state == STATE_OFF  # IsLocked true -> locked -> off
    await hub(hass).on_message(
        PEER,
        message(
            MessageType.STATE,
            signals_body({"Vehicle.Cabin.Door.Row1.DriverSide.IsLocked": False}),
        ),
    )
    await hass.async_block_till_done()
    assert hass.states.get(lock).state == STATE_ON


async def test_connected_and_moving(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """connected follows the link; moving follows speed; values stay when the car leaves."""
    connected = "binary_sensor.volkswagen_golf_connected"
    moving = "binary_sensor.volkswagen_golf_moving"
    assert hass.states.get(connected).state == STATE_OFF
    await connect_car(hass)
    assert hass.states.get(connected).state == STATE_ON
    assert hass.states.get(moving).state == STATE_ON
    await hub(hass).on_message(PEER, message(MessageType.STATE, signals_body({"Vehicle.Speed": 0})))
    await hass.async_block_till_done()
    assert hass.states.get(moving).state == STATE_OFF
    await hub(hass).on_disconnect(PEER)
    await hass.async_block_till_done()
    assert hass.states.get(connected).state == STATE_OFF
    # Last known values are kept while the car is away.
    assert hass.states.get("binary_sensor.volkswagen_golf_front_passenger_door").state == STATE_ON


async def test_new_signals_add_entities(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A car that starts declaring more signals gets the new entities without a reload;
    signals it no longer declares lose theirs."""
    from .conftest import SIGNALS, hello

    assert hass.states.get("binary_sensor.volkswagen_golf_rear_door_driver_side") is None
    signals = {
        **SIGNALS,
        "Vehicle.Cabin.Door.Row2.DriverSide.IsOpen": {"unit": None, "datatype": "bool"},
    }
    del signals["Vehicle.Body.Trunk.Rear.IsOpen"]
    await hub(hass).on_connect(PEER, hello(signals))
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.volkswagen_golf_rear_door_driver_side") is not None
    assert hass.states.get("binary_sensor.volkswagen_golf_trunk") is None
    assert "Vehicle.Cabin.Door.Row2.DriverSide.IsOpen" in init_integration.data["signals"]


async def test_restored_state(
    hass: HomeAssistant, socket_enabled: None, mock_config_entry: MockConfigEntry, car_identity
) -> None:
    """Binary sensors restore their last state; connected never does."""
    mock_restore_cache(
        hass,
        [
            State("binary_sensor.volkswagen_golf_trunk", STATE_ON),
            State("binary_sensor.volkswagen_golf_connected", STATE_ON),
        ],
    )
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.volkswagen_golf_trunk").state == STATE_ON
    assert hass.states.get("binary_sensor.volkswagen_golf_connected").state == STATE_OFF
    await unload_all(hass)
