"""Diagnostics download with personal data and secrets redacted."""

from __future__ import annotations

import json

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.carhub.diagnostics import async_get_config_entry_diagnostics

from .conftest import SNAPSHOT_VALUES, VIN, connect_car


async def test_diagnostics_redacted(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """VIN, location, addresses and ids never appear; the useful rest does."""
    await connect_car(
        hass,
        {
            **SNAPSHOT_VALUES,
            "Vehicle.CurrentLocation.Altitude": 487.25,
            "Vehicle.CurrentLocation.Speed": 57.75,
        },
    )
    diag = await async_get_config_entry_diagnostics(hass, init_integration)
    text = json.dumps(diag, default=str)
    assert VIN not in text
    assert "52.52" not in text and "13.405" not in text
    assert "golf-1" not in text
    assert "BEGIN CERTIFICATE" not in text
    assert diag["entry"]["data"]["vin"] == "**REDACTED**"
    assert diag["entry"]["data"]["host"] == "**REDACTED**"
    assert "487.25" not in text and "57.75" not in text
    for path in (
        "Vehicle.CurrentLocation.Latitude",
        "Vehicle.CurrentLocation.Altitude",
        "Vehicle.CurrentLocation.Speed",
    ):
        assert diag["signals"][path] == "**REDACTED**"
    assert diag["signals"]["Vehicle.Speed"]["value"] == 42.5
    assert diag["link"]["connected"] is True
    assert diag["link"]["certificate_expiry"] is not None
    assert diag["link"]["duplicates_dropped"] == 0
