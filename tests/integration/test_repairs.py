"""Repairs: certificate about to expire, car not seen for a week."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bridge.pki import HomeCA
from custom_components.carhub.const import DOMAIN
from custom_components.carhub.health import async_check_health, cert_issue_id, not_seen_issue_id

from .conftest import PEER, connect_car, hub


async def test_certificate_expiring(
    hass: HomeAssistant, init_integration: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """An issue appears within 14 days of expiry and goes away after renewal."""
    issue_id = cert_issue_id(init_integration)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    soon = dt_util.utcnow() + timedelta(days=10)
    with patch.object(HomeCA, "certificate_expiry", return_value=soon):
        await async_check_health(hass, init_integration)
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "certificate_expiring"
    await async_check_health(hass, init_integration)  # a year left again
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_not_seen(
    hass: HomeAssistant, init_integration: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """A car away for 7 days raises an issue; its next connection clears it."""
    coordinator = init_integration.runtime_data.coordinator
    coordinator.data.last_seen = dt_util.utcnow() - timedelta(days=8)
    await async_check_health(hass, init_integration)
    issue_id = not_seen_issue_id(init_integration)
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders["days"] == "8"
    await connect_car(hass)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_last_seen_persists(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """The last contact is remembered across a reload (for the not-seen repair)."""
    await connect_car(hass)
    await hub(hass).on_disconnect(PEER)
    seen = init_integration.runtime_data.coordinator.data.last_seen
    assert seen is not None
    await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.runtime_data.coordinator.data.last_seen == seen
