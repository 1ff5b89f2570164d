"""Device triggers for the car's events."""

from __future__ import annotations

import time

from homeassistant.components import automation
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_get_device_automations,
    async_mock_service,
)

from bridge.protocol import MessageType
from custom_components.carhub.const import DOMAIN, VEHICLE_EVENT_TYPES

from .conftest import PEER, car_device_entry, hub, message


async def test_get_triggers(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Every car offers a trigger per event type."""
    device = car_device_entry(hass)
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device.id)
    ours = {t["type"] for t in triggers if t["domain"] == DOMAIN}
    assert ours == set(VEHICLE_EVENT_TYPES)


async def test_trigger_fires(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """An automation on dtc_appeared runs when the car reports a new trouble code."""
    device = car_device_entry(hass)
    calls: list[ServiceCall] = async_mock_service(hass, "test", "automation")
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                {
                    "trigger": {
                        "platform": "device",
                        "domain": DOMAIN,
                        "device_id": device.id,
                        "type": "dtc_appeared",
                    },
                    "action": {
                        "service": "test.automation",
                        "data_template": {"code": "{{ trigger.event.data.data.code }}"},
                    },
                }
            ]
        },
    )
    await hub(hass).on_message(
        PEER,
        message(
            MessageType.EVENT,
            {"kind": "trip_start", "ts": time.time(), "data": {}},
        ),
    )
    await hub(hass).on_message(
        PEER,
        message(
            MessageType.EVENT,
            {"kind": "dtc_appeared", "ts": time.time(), "data": {"code": "P0301"}},
        ),
    )
    await hass.async_block_till_done()
    assert [c.data["code"] for c in calls] == ["P0301"]
