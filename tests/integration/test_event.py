"""The event entity (voice requests, alerts) and carhub_vehicle_event with original timestamps."""

from __future__ import annotations

import time
from unittest.mock import patch

import pytest
from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from syrupy.assertion import SnapshotAssertion

from bridge.protocol import MessageType
from custom_components.carhub.const import EVENT_VEHICLE

from .conftest import PEER, connect_car, hub, message

EVENT_ENTITY = "event.volkswagen_golf_car_event"


@pytest.fixture(autouse=True)
def only_events():
    """Load only the event platform."""
    with patch("custom_components.carhub.PLATFORMS", [Platform.EVENT]):
        yield


async def test_event_entity_snapshot(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """The event entity before anything happened."""
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_alert_and_backlogged_trip_events(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Alerts reach the event entity; trip events go to the bus with the car's timestamp."""
    await connect_car(hass)
    events: list[Event] = []

    @callback
    def record(event: Event) -> None:
        events.append(event)

    hass.bus.async_listen(EVENT_VEHICLE, record)
    carhub = hub(hass)
    old = time.time() - 7200
    await carhub.on_message(
        PEER,
        message(
            MessageType.EVENT,
            {"kind": "trip_start", "ts": old, "data": {"odometer": 123000}},
            ts=old,
        ),
    )
    await carhub.on_message(
        PEER,
        message(
            MessageType.EVENT,
            {"kind": "alert", "ts": old + 60, "data": {"message": "Low tyre pressure"}},
            ts=old + 60,
        ),
    )
    await carhub.on_message(PEER, message(MessageType.EVENT, {"kind": 42}))  # malformed
    await hass.async_block_till_done()
    assert [e.data["type"] for e in events] == ["trip_start"]
    assert events[0].data["ts"] == old
    assert events[0].data["data"] == {"odometer": 123000}
    state = hass.states.get(EVENT_ENTITY)
    assert state.attributes["event_type"] == "alert"
    assert state.attributes["message"] == "Low tyre pressure"
    assert state.attributes["ts"] == old + 60


async def test_voice_request_event(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """A voice request shows up on the event entity with its text."""
    with patch("custom_components.carhub.voice.async_answer_voice_request"):
        await hub(hass).on_message(
            PEER,
            message(
                MessageType.VOICE_REQUEST,
                {"request_id": "r1", "text": "turn on the porch light", "language": "en"},
            ),
        )
        await hass.async_block_till_done()
    state = hass.states.get(EVENT_ENTITY)
    assert state.attributes["event_type"] == "voice_request"
    assert state.attributes["text"] == "turn on the porch light"
