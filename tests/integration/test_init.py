"""Setup, unload, reload, removal and the shared listener."""

from __future__ import annotations

from unittest.mock import patch

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.carhub.const import DOMAIN
from custom_components.carhub.hub import DATA_HUB
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from .conftest import VEHICLE_ID, entry_data, hub, issue_car_certificate, unload_all


async def test_setup_and_unload(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """The entry loads, the listener runs; unloading stops it."""
    assert init_integration.state is ConfigEntryState.LOADED
    carhub = hub(hass)
    assert carhub.running
    assert carhub.listen_port
    await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.NOT_LOADED
    assert DATA_HUB not in hass.data
    assert not carhub.running
