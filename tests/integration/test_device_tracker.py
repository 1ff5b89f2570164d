"""The GPS position as a device tracker, and the arrived-home event."""

from __future__ import annotations

from unittest.mock import patch

import pytest
from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    mock_restore_cache,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from bridge.protocol import MessageType
from custom_components.carhub.const import EVENT_VEHICLE

from .conftest import PEER, SIGNALS, connect_car, hello, hub, message, signals_body, unload_all

HOME = (52.3731, 4.8922)


@pytest.fixture(autouse=True)
def only_tracker():
    """Load only the device tracker platform."""
    with patch("custom_components.carhub.PLATFORMS", [Platform.DEVICE_TRACKER]):
        yield


async def test_tracker_snapshot(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """The car's position."""
    await connect_car(hass)
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_arrived_home(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Entering the home zone fires carhub_vehicle_event arrived_home once."""
    assert await async_setup_component(hass, "zone", {})
    await hass.config.async_update(latitude=HOME[0], longitude=HOME[1])
    await hass.async_block_till_done()
    events: list[Event] = []

    @callback
    def record(event: Event) -> None:
        events.append(event)

    hass.bus.async_listen(EVENT_VEHICLE, record)
    await connect_car(hass)  # Berlin: away
    carhub = hub(hass)
    for _ in range(2):  # arriving, then still home: one event only
        await carhub.on_message(
            PEER,
            message(
                MessageType.STATE,
                signals_body(
                    {
                        "Vehicle.CurrentLocation.Latitude": HOME[0],
                        "Vehicle.CurrentLocation.Longitude": HOME[1],
                    }
                ),
            ),
        )
    await hass.async_block_till_done()
    assert hass.states.get("device_tracker.volkswagen_golf").state == "home"
    assert [e.data["type"] for e in events] == ["arrived_home"]
    assert events[0].data["device_id"] == init_integration.runtime_data.coordinator.device_id


async def test_tracker_restored(
    hass: HomeAssistant, socket_enabled: None, mock_config_entry: MockConfigEntry, car_identity
) -> None:
    """The last position survives a restart until the car reports again."""
    mock_restore_cache(
        hass,
        [
            State(
                "device_tracker.volkswagen_golf",
                "not_home",
                {"latitude": 48.1, "longitude": 11.5, "gps_accuracy": 12},
            )
        ],
    )
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    state = hass.states.get("device_tracker.volkswagen_golf")
    assert state.attributes["latitude"] == 48.1
    assert state.attributes["gps_accuracy"] == 12
    await unload_all(hass)


async def test_undeclared_position_creates_tracker(
    hass: HomeAssistant, socket_enabled: None, mock_config_entry: MockConfigEntry, car_identity
) -> None:
    """A car that sends GPS without declaring it still gets its tracker, kept across hellos;
    a car that stops declaring a signal it never sent loses that entity."""
    signals = {k: v for k, v in SIGNALS.items() if not k.startswith("Vehicle.CurrentLocation")}
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, data={**mock_config_entry.data, "signals": signals}
    )
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    carhub = hub(hass)
    await carhub.on_connect(PEER, hello(signals))
    await hass.async_block_till_done()
    assert hass.states.get("device_tracker.volkswagen_golf") is None
    await carhub.on_message(
        PEER,
        message(
            MessageType.STATE,
            signals_body(
                {
                    "Vehicle.CurrentLocation.Latitude": 48.1,
                    "Vehicle.CurrentLocation.Longitude": 11.5,
                }
            ),
        ),
    )
    await hass.async_block_till_done()
    assert hass.states.get("device_tracker.volkswagen_golf").attributes["latitude"] == 48.1
    assert "Vehicle.CurrentLocation.Latitude" in mock_config_entry.data["sent_signals"]
    # The next hello again leaves the position out: the tracker stays.
    await carhub.on_connect(PEER, hello(signals))
    await hass.async_block_till_done()
    assert hass.states.get("device_tracker.volkswagen_golf") is not None
    await unload_all(hass)
