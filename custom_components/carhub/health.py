"""Repairs: a car certificate about to expire, and a car not seen for a long time.

Checked at setup and then hourly (a local check, nothing is polled from the
car). An issue is deleted again as soon as its cause is gone. Cars renew their
certificates over the link by themselves (the bridge answers their renewal
requests), so an expiring certificate means the car has not connected in its
renewal window (about the last month); a renewal clears the issue at once
(``async_certificate_renewed``, from the listener's ``on_renewal`` hook). A certificate
that expired (or was revoked elsewhere) while the entry is loaded starts the
reauth flow (pair the car again).
"""

from __future__ import annotations

from datetime import datetime

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util import dt as dt_util

from bridge.errors import BridgeError

from .const import CERT_EXPIRY_WARNING, DOMAIN, HEALTH_CHECK_INTERVAL, LOGGER, NOT_SEEN_WARNING
from .models import CarHubConfigEntry


def cert_issue_id(entry: CarHubConfigEntry) -> str:
    """Issue id of the expiring-certificate repair."""
    return f"certificate_expiring_{entry.entry_id}"


def not_seen_issue_id(entry: CarHubConfigEntry) -> str:
    """Issue id of the car-not-seen repair."""
    return f"not_seen_{entry.entry_id}"


async def async_check_health(hass: HomeAssistant, entry: CarHubConfigEntry) -> None:
    """Create or delete this car's repair issues."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    now = dt_util.utcnow()
    try:
        expiry = await hass.async_add_executor_job(
            runtime.hub.ca.certificate_expiry, coordinator.vehicle_id
        )
    except (BridgeError, OSError) as err:
        LOGGER.warning("Cannot read certificate expiry of %s: %s", entry.title, err)
    else:
        if expiry is None or expiry <= now:
            # Expired (or revoked elsewhere) while loaded: the car cannot
            # connect any more, so ask to pair it again now, not at the next
            # restart. The reauth flow replaces the expiring-soon warning.
            LOGGER.warning("The certificate of %s is no longer valid", entry.title)
            ir.async_delete_issue(hass, DOMAIN, cert_issue_id(entry))
            entry.async_start_reauth(hass)
        else:
            _check_expiring(hass, entry, expiry, now)
    last_seen: datetime | None = coordinator.data.last_seen
    if (
        not coordinator.data.connected
        and last_seen is not None
        and now - last_seen >= NOT_SEEN_WARNING
    ):
        ir.async_create_issue(
            hass,
            DOMAIN,
            not_seen_issue_id(entry),
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="not_seen",
            translation_placeholders={
                "name": entry.title,
                "days": str((now - last_seen).days),
            },
        )
    else:
        ir.async_delete_issue(hass, DOMAIN, not_seen_issue_id(entry))


@callback
def _check_expiring(
    hass: HomeAssistant, entry: CarHubConfigEntry, expiry: datetime, now: datetime
) -> None:
    """Warn within CERT_EXPIRY_WARNING of expiry; clear the warning otherwise."""
    if expiry - now <= CERT_EXPIRY_WARNING:
        ir.async_create_issue(
            hass,
            DOMAIN,
            cert_issue_id(entry),
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="certificate_expiring",
            translation_placeholders={
                "name": entry.title,
                "expiry": dt_util.as_local(expiry).strftime("%Y-%m-%d"),
            },
        )
    else:
        ir.async_delete_issue(hass, DOMAIN, cert_issue_id(entry))


@callback
def async_certificate_renewed(
    hass: HomeAssistant, entry: CarHubConfigEntry, not_after: datetime
) -> None:
    """The car renewed its certificate over the link: judge the warning by the new one.

    Called from the listener's renewal hook, so the expiring-certificate issue
    goes away at once rather than at the next hourly check.
    """
    _check_expiring(hass, entry, not_after, dt_util.utcnow())


@callback
def async_setup_health_checks(hass: HomeAssistant, entry: CarHubConfigEntry) -> None:
    """Check now (in the background) and then every hour while the entry is loaded."""

    async def _check(_now: datetime | None = None) -> None:
        await async_check_health(hass, entry)

    entry.async_create_background_task(hass, _check(), f"{DOMAIN} health {entry.entry_id}")
    entry.async_on_unload(
        async_track_time_interval(
            hass,
            _check,
            HEALTH_CHECK_INTERVAL,
            name=f"{DOMAIN} health {entry.entry_id}",
            cancel_on_shutdown=True,
        )
    )
    # A connection clears the not-seen issue right away.
    entry.async_on_unload(
        entry.runtime_data.coordinator.async_add_listener(lambda: _clear_not_seen(hass, entry))
    )


@callback
def _clear_not_seen(hass: HomeAssistant, entry: CarHubConfigEntry) -> None:
    if entry.runtime_data.coordinator.data.connected:
        ir.async_delete_issue(hass, DOMAIN, not_seen_issue_id(entry))


@callback
def async_remove_issues(hass: HomeAssistant, entry: CarHubConfigEntry) -> None:
    """Drop this car's issues (entry removed)."""
    ir.async_delete_issue(hass, DOMAIN, cert_issue_id(entry))
    ir.async_delete_issue(hass, DOMAIN, not_seen_issue_id(entry))
