"""Actions: notify the car, ask it for a snapshot, clear its trouble codes.

Registered once in ``async_setup``; each call names a car by its device.
Messages are durable: the hub keeps them in the car's outbox until the car
acknowledges them; ``expires_at`` tells the car to drop what is too old.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr

from bridge.errors import BridgeError
from bridge.protocol import MessageType

from .compat import device_config_entry_ids
from .const import COMMAND_TTL, DOMAIN, NOTIFY_DEFAULT_TTL
from .models import CarHubConfigEntry

SERVICE_NOTIFY_VEHICLE = "notify_vehicle"
SERVICE_REQUEST_SNAPSHOT = "request_snapshot"
SERVICE_CLEAR_DTCS = "clear_dtcs"

ATTR_MESSAGE = "message"
ATTR_PRIORITY = "priority"
ATTR_TTL = "ttl"
ATTR_CONFIRM = "confirm"
PRIORITIES = ("low", "normal", "high")

NOTIFY_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): cv.string,
        vol.Required(ATTR_MESSAGE): vol.All(cv.string, vol.Length(min=1, max=1000)),
        vol.Optional(ATTR_PRIORITY, default="normal"): vol.In(PRIORITIES),
        vol.Optional(ATTR_TTL, default=NOTIFY_DEFAULT_TTL): vol.All(
            cv.time_period, vol.Range(min=timedelta(seconds=1), max=timedelta(days=7))
        ),
    }
)
SNAPSHOT_SCHEMA = vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string})
CLEAR_DTCS_SCHEMA = vol.Schema(
    {vol.Required(ATTR_DEVICE_ID): cv.string, vol.Required(ATTR_CONFIRM): cv.boolean}
)


@callback
def _entry_for_device(hass: HomeAssistant, device_id: str) -> CarHubConfigEntry:
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_device",
            translation_placeholders={"device_id": device_id},
        )
    for entry_id in sorted(device_config_entry_ids(device)):
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            continue
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"name": entry.title},
            )
        return entry
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="invalid_device",
        translation_placeholders={"device_id": device_id},
    )


async def _async_send(entry: CarHubConfigEntry, type_: MessageType, body: dict[str, Any]) -> None:
    runtime = entry.runtime_data
    try:
        await runtime.hub.async_send(runtime.coordinator.vehicle_id, type_, body)
    except BridgeError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="send_failed",
            translation_placeholders={"name": entry.title, "error": str(err)},
        ) from err


async def _async_notify_vehicle(call: ServiceCall) -> None:
    entry = _entry_for_device(call.hass, call.data[ATTR_DEVICE_ID])
    ttl: timedelta = call.data[ATTR_TTL]
    await _async_send(
        entry,
        MessageType.NOTIFY,
        {
            "message": call.data[ATTR_MESSAGE],
            "priority": call.data[ATTR_PRIORITY],
            "expires_at": time.time() + ttl.total_seconds(),
        },
    )


async def _async_request_snapshot(call: ServiceCall) -> None:
    entry = _entry_for_device(call.hass, call.data[ATTR_DEVICE_ID])
    await _async_send(
        entry,
        MessageType.COMMAND,
        {
            "command": "snapshot",
            "args": {},
            "expires_at": time.time() + COMMAND_TTL.total_seconds(),
        },
    )


async def _async_clear_dtcs(call: ServiceCall) -> None:
    if not call.data[ATTR_CONFIRM]:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="confirmation_required"
        )
    entry = _entry_for_device(call.hass, call.data[ATTR_DEVICE_ID])
    await _async_send(
        entry,
        MessageType.COMMAND,
        {
            "command": "clear_dtcs",
            "args": {},
            "expires_at": time.time() + COMMAND_TTL.total_seconds(),
        },
    )


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    hass.services.async_register(
        DOMAIN, SERVICE_NOTIFY_VEHICLE, _async_notify_vehicle, schema=NOTIFY_SCHEMA
    )
    hass.services.async_register(
        DOMAIN, SERVICE_REQUEST_SNAPSHOT, _async_request_snapshot, schema=SNAPSHOT_SCHEMA
    )
    hass.services.async_register(
        DOMAIN, SERVICE_CLEAR_DTCS, _async_clear_dtcs, schema=CLEAR_DTCS_SCHEMA
    )
