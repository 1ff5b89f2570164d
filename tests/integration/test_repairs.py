"""Repairs: certificate about to expire, car not seen for a week."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bridge.client import CarLink
from bridge.pki import CarIdentity, HomeCA
from bridge.protocol import Envelope
from bridge.renewal import RenewalEvent
from custom_components.carhub.const import DOMAIN
from custom_components.carhub.health import async_check_health, cert_issue_id, not_seen_issue_id

from .conftest import PEER, VEHICLE_ID, connect_car, hub


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


async def test_renewal_over_the_link_clears_the_issue_at_once(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    car_identity: CarIdentity,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A real car renews its certificate over the link: the listener's on_renewal hook
    removes the expiring-certificate issue right away (no hourly check needed)."""
    issue_id = cert_issue_id(init_integration)
    soon = dt_util.utcnow() + timedelta(days=10)
    with patch.object(HomeCA, "certificate_expiry", return_value=soon):
        await async_check_health(hass, init_integration)
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None

    async def on_message(env: Envelope) -> None:
        pass

    link = CarLink(
        home_dir=car_identity.directory,
        hello_body={
            "agent_version": "0.1.0",
            "vehicle": {"vehicle_id": VEHICLE_ID, "vin": "", "make": "VW", "model": "Golf"},
            "capabilities": [],
            "signals": {},
        },
        on_message=on_message,
        snapshot=dict,
        url=f"wss://127.0.0.1:{hub(hass).listen_port}",
        backoff_min_s=0.05,
        backoff_max_s=0.5,
    )
    await link.start()
    try:
        assert await link.wait_connected(10)
        assert await link.request_renewal(force=True) == (True, "renewal requested")
        deadline = time.monotonic() + 10
        while issue_registry.async_get_issue(DOMAIN, issue_id) is not None:
            assert time.monotonic() < deadline, "the issue was not cleared"
            await asyncio.sleep(0.05)
        # The hub clears the issue as it sends the certificate; the car installs it
        # a moment later (a race this test lost once in CI when it asserted at once).
        while link.renewals == 0:
            assert time.monotonic() < deadline, "the car did not install the new certificate"
            await asyncio.sleep(0.05)
        assert link.renewals == 1
    finally:
        await link.stop()


async def test_renewal_hook_judges_the_new_expiry(
    hass: HomeAssistant, init_integration: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """A refused renewal, or one for an unknown car, changes nothing; a new certificate
    that still expires soon keeps (updates) the issue; a long one clears it."""
    issue_id = cert_issue_id(init_integration)
    carhub = hub(hass)
    soon = dt_util.utcnow() + timedelta(days=10)

    def event(vehicle_id: str = VEHICLE_ID, **kw: object) -> RenewalEvent:
        fields: dict[str, object] = {"request_id": "r1", "ok": True, "detail": "renewed"}
        fields.update(kw)
        return RenewalEvent(vehicle_id=vehicle_id, **fields)  # type: ignore[arg-type]

    with patch.object(HomeCA, "certificate_expiry", return_value=soon):
        await async_check_health(hass, init_integration)
    carhub._on_renewal(event(ok=False, detail="bad CSR"))
    carhub._on_renewal(event("stranger-1", not_after=soon + timedelta(days=365)))
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
    carhub._on_renewal(event(not_after=soon + timedelta(days=2)))
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders is not None
    expected = dt_util.as_local(soon + timedelta(days=2)).strftime("%Y-%m-%d")
    assert issue.translation_placeholders["expiry"] == expected
    carhub._on_renewal(event(not_after=dt_util.utcnow() + timedelta(days=365)))
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
