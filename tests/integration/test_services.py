"""Actions: notify_vehicle, request_snapshot, clear_dtcs."""

from __future__ import annotations

import time
from collections.abc import Generator
from unittest.mock import AsyncMock, patch

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bridge.errors import OutboxFullError
from bridge.outbox import Outbox
from bridge.protocol import MessageType
from custom_components.carhub.const import DOMAIN
from custom_components.carhub.hub import CarHub, storage_dir

from .conftest import VEHICLE_ID, car_device_entry


@pytest.fixture
def sent() -> Generator[AsyncMock]:
    """What the hub queues for the car."""
    with patch.object(CarHub, "async_send", autospec=True, return_value=7) as mock:
        yield mock


def car_device(hass: HomeAssistant) -> str:
    """The car's device id."""
    device = car_device_entry(hass)
    assert device is not None
    return device.id


async def test_services_registered(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """The three actions exist."""
    assert set(hass.services.async_services_for_domain(DOMAIN)) == {
        "notify_vehicle",
        "request_snapshot",
        "clear_dtcs",
    }


async def test_notify_vehicle(
    hass: HomeAssistant, init_integration: MockConfigEntry, sent: AsyncMock
) -> None:
    """A notification is queued durably with its priority and expiry."""
    before = time.time()
    await hass.services.async_call(
        DOMAIN,
        "notify_vehicle",
        {
            "device_id": car_device(hass),
            "message": "The garage door is open",
            "priority": "high",
            "ttl": {"minutes": 10},
        },
        blocking=True,
    )
    _, vehicle_id, type_, body = sent.call_args.args
    assert vehicle_id == VEHICLE_ID
    assert type_ == MessageType.NOTIFY
    assert body["message"] == "The garage door is open"
    assert body["priority"] == "high"
    assert before + 600 <= body["expires_at"] <= time.time() + 600


async def test_notify_real_outbox(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Without a patch, the message lands in the hub's durable per-car outbox (the car
    is offline): it is still there after the listener stopped, with its expiry."""
    before = time.time()
    await hass.services.async_call(
        DOMAIN,
        "notify_vehicle",
        {"device_id": car_device(hass), "message": "Hello"},
        blocking=True,
    )
    await hass.services.async_call(
        DOMAIN, "request_snapshot", {"device_id": car_device(hass)}, blocking=True
    )
    after = time.time()
    await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    # The listener keeps each car's outbox at hub/cars/<vehicle id>/outbox.db.
    outbox = Outbox(storage_dir(hass) / "hub" / "cars" / VEHICLE_ID / "outbox.db")
    await outbox.open()
    try:
        items = [item.envelope() for item in await outbox.pending()]
    finally:
        await outbox.close()
    assert [env.type for env in items] == [MessageType.NOTIFY, MessageType.COMMAND]
    notify = items[0].body
    assert notify["message"] == "Hello"
    assert notify["priority"] == "normal"
    # The default time to live is an hour.
    assert before + 3600 <= notify["expires_at"] <= after + 3600
    assert items[1].body["command"] == "snapshot"
    assert items[1].body["expires_at"] > after


async def test_request_snapshot_and_clear_dtcs(
    hass: HomeAssistant, init_integration: MockConfigEntry, sent: AsyncMock
) -> None:
    """Commands carry an expiry; clearing DTCs needs confirmation."""
    device_id = car_device(hass)
    await hass.services.async_call(
        DOMAIN, "request_snapshot", {"device_id": device_id}, blocking=True
    )
    assert sent.call_args.args[2] == MessageType.COMMAND
    assert sent.call_args.args[3]["command"] == "snapshot"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "clear_dtcs", {"device_id": device_id, "confirm": False}, blocking=True
        )
    assert err.value.translation_key == "confirmation_required"
    await hass.services.async_call(
        DOMAIN, "clear_dtcs", {"device_id": device_id, "confirm": True}, blocking=True
    )
    assert sent.call_args.args[3]["command"] == "clear_dtcs"
    assert sent.call_args.args[3]["expires_at"] > time.time()


async def test_invalid_device(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """A device that is not a car is a validation error with a translation key."""
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "request_snapshot", {"device_id": "nope"}, blocking=True
        )
    assert err.value.translation_key == "invalid_device"
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other", "x")}
    )
    with pytest.raises(ServiceValidationError):
        await hass.services.async_call(
            DOMAIN, "request_snapshot", {"device_id": device.id}, blocking=True
        )


async def test_entry_not_loaded(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """A car whose entry is unloaded cannot be reached."""
    device_id = car_device(hass)
    await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "request_snapshot", {"device_id": device_id}, blocking=True
        )
    assert err.value.translation_key == "entry_not_loaded"


async def test_send_failure(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """A full outbox is reported as a translated HomeAssistantError."""
    with (
        patch.object(CarHub, "async_send", side_effect=OutboxFullError("full")),
        pytest.raises(HomeAssistantError) as err,
    ):
        await hass.services.async_call(
            DOMAIN,
            "notify_vehicle",
            {"device_id": car_device(hass), "message": "x"},
            blocking=True,
        )
    assert err.value.translation_key == "send_failed"
