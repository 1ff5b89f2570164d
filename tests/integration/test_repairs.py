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


async def test_expired_certificate_starts_reauth(
    hass: HomeAssistant, init_integration: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """A certificate that expires while the entry is loaded asks to pair the car again
    at the next check (once), and the expiring-soon warning goes away."""
    issue_id = cert_issue_id(init_integration)
    with patch.object(
        HomeCA, "certificate_expiry", return_value=dt_util.utcnow() + timedelta(days=1)
    ):
        await async_check_health(hass, init_integration)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
    expired = dt_util.utcnow() - timedelta(seconds=1)
    with patch.object(HomeCA, "certificate_expiry", return_value=expired):
        await async_check_health(hass, init_integration)
        await async_check_health(hass, init_integration)
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress()
    assert [(f["context"]["source"], f["context"]["entry_id"]) for f in flows] == [
        ("reauth", init_integration.entry_id)
    ]
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_revoked_elsewhere_starts_reauth(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """No valid certificate left (revoked with carhub-bridge revoke): pair again."""
    with patch.object(HomeCA, "certificate_expiry", return_value=None):
        await async_check_health(hass, init_integration)
    await hass.async_block_till_done()
    assert [f["context"]["source"] for f in hass.config_entries.flow.async_progress()] == ["reauth"]


async def test_unreadable_expiry_changes_nothing(
    hass: HomeAssistant, init_integration: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """A CA read error is logged; no reauth and no issue from it."""
    with patch.object(HomeCA, "certificate_expiry", side_effect=OSError("disk")):
        await async_check_health(hass, init_integration)
    await hass.async_block_till_done()
    assert hass.config_entries.flow.async_progress() == []
    assert issue_registry.async_get_issue(DOMAIN, cert_issue_id(init_integration)) is None


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
