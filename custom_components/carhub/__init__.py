"""CarHub: the car as a Home Assistant device, and the home at the driver's voice.

One config entry per paired car. All cars share one mTLS listener (the bridge's
``HubServer``) that runs inside Home Assistant: it is started with the first
entry and stopped with the last. The integration holds no protocol code; it
maps bridge errors to Home Assistant's setup exceptions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from bridge.errors import BridgeError, CertificateError

from .const import CONF_EXTERNAL_URL, CONF_LISTEN_PORT, DEFAULT_LISTEN_PORT, DOMAIN, LOGGER
from .coordinator import CarHubCoordinator
from .entity import device_info
from .health import async_remove_issues, async_setup_health_checks
from .hub import (
    DATA_HUB,
    async_acquire_hub,
    async_get_home_ca,
    async_release_hub,
)
from .link_view import CarHubLinkView
from .models import CarHubConfigEntry, CarHubRuntimeData
from .services import async_setup_services

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.DEVICE_TRACKER,
    Platform.EVENT,
    Platform.SENSOR,
]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions and the cars' tunnel view (once, not per entry)."""
    async_setup_services(hass)
    hass.http.register_view(CarHubLinkView(hass))
    return True


async def async_setup_entry(hass: HomeAssistant, entry: CarHubConfigEntry) -> bool:
    """Set up one car: check its certificate, join the shared hub, forward platforms."""
    assert entry.unique_id is not None
    vehicle_id = entry.unique_id
    try:
        ca = await async_get_home_ca(hass)
        expiry = await hass.async_add_executor_job(ca.certificate_expiry, vehicle_id)
    except (BridgeError, OSError) as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="ca_unavailable",
            translation_placeholders={"error": str(err)},
        ) from err
    if expiry is None or expiry <= datetime.now(UTC):
        # Revoked or expired: the car cannot connect until it is paired again.
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN,
            translation_key="certificate_invalid",
            translation_placeholders={"name": entry.title},
        )

    port = int(entry.data.get(CONF_LISTEN_PORT, DEFAULT_LISTEN_PORT))
    external_url = entry.data.get(CONF_EXTERNAL_URL) or None
    try:
        hub = await async_acquire_hub(hass, port, external_url)
    except (BridgeError, OSError) as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="listener_failed",
            translation_placeholders={"port": str(port), "error": str(err)},
        ) from err

    coordinator = CarHubCoordinator(hass, entry, hub)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, **device_info(entry)
    )
    coordinator.device_id = device.id
    _remove_stale_devices(hass, entry, device.id)
    entry.runtime_data = CarHubRuntimeData(hub=hub, coordinator=coordinator)
    hub.async_register(coordinator)
    coordinator.async_start()

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if hub.connected(vehicle_id):
        # Loaded (or reloaded) while the car stayed connected to the shared
        # listener: what it sent meanwhile was not ours to keep, so ask it for
        # everything it knows.
        await coordinator.async_on_link_resumed()
    async_setup_health_checks(hass, entry)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: CarHubConfigEntry) -> bool:
    """Unload one car; the hub stops with the last car."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        # Unregister before the hub checks whether anyone still uses it.
        entry.runtime_data.hub.async_unregister(entry.runtime_data.coordinator)
        await async_release_hub(hass)
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: CarHubConfigEntry) -> None:
    """Removing a car revokes its certificate: it can never connect again."""
    assert entry.unique_id is not None
    hub = hass.data.get(DATA_HUB)
    try:
        if hub is not None:
            await hub.async_revoke(entry.unique_id)
        else:
            ca = await async_get_home_ca(hass)
            await hass.async_add_executor_job(ca.revoke, entry.unique_id)
    except CertificateError as err:
        LOGGER.debug("No certificate to revoke for %s: %s", entry.unique_id, err)
    except (BridgeError, OSError) as err:
        LOGGER.error("Could not revoke the certificate of %s: %s", entry.title, err)
    async_remove_issues(hass, entry)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: CarHubConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Allow deleting a device that is not this entry's car (a stale one)."""
    return (DOMAIN, entry.unique_id) not in device.identifiers


def _remove_stale_devices(hass: HomeAssistant, entry: CarHubConfigEntry, keep: str) -> None:
    dev_reg = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(dev_reg, entry.entry_id):
        if device.id != keep:
            # The stale device is this entry's alone; removing it outright also
            # avoids remove_config_entry_id, deprecated since 2026.x.
            dev_reg.async_remove_device(device.id)
