"""Diagnostics download: VIN, location, addresses and certificates redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant

from .const import CONF_EXTERNAL_URL, CONF_VIN
from .models import CarHubConfigEntry
from .signals import SENSITIVE_PATHS

TO_REDACT = {
    CONF_VIN,
    CONF_HOST,
    CONF_EXTERNAL_URL,
    "vin",
    "certificate",
    "certificate_pem",
    "ca_cert_pem",
    "latitude",
    "longitude",
    "unique_id",
    "vehicle_id",
    "title",
    *SENSITIVE_PATHS,
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: CarHubConfigEntry
) -> dict[str, Any]:
    """What support needs to see, without personal data or secrets."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    state = coordinator.data
    expiry = await hass.async_add_executor_job(
        runtime.hub.ca.certificate_expiry, coordinator.vehicle_id
    )
    return async_redact_data(
        {
            "entry": {
                "title": entry.title,
                "unique_id": entry.unique_id,
                "data": dict(entry.data),
                "options": dict(entry.options),
            },
            "link": {
                "connected": state.connected,
                "last_seen": state.last_seen.isoformat() if state.last_seen else None,
                "round_trip_ms": state.rtt_ms,
                "listen_port": runtime.hub.listen_port,
                "duplicates_dropped": runtime.hub.duplicates,
                "certificate_expiry": expiry.isoformat() if expiry else None,
            },
            "signals": {
                path: {"value": item.value, "ts": item.ts} for path, item in state.signals.items()
            },
        },
        TO_REDACT,
    )
