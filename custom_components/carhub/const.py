"""Constants of the CarHub integration."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

DOMAIN: Final = "carhub"
LOGGER = logging.getLogger(__package__)

# Config entry data keys.
CONF_VEHICLE_ID: Final = "vehicle_id"
CONF_VIN: Final = "vin"
CONF_MAKE: Final = "make"
CONF_MODEL: Final = "model"
CONF_PROFILE: Final = "profile"
CONF_AGENT_VERSION: Final = "agent_version"
CONF_CODE: Final = "code"
CONF_SIGNALS: Final = "signals"
# Signals the car sent without declaring them in its hello (kept across hellos).
CONF_SENT_SIGNALS: Final = "sent_signals"
CONF_LISTEN_PORT: Final = "listen_port"
CONF_EXTERNAL_URL: Final = "external_url"

# Options keys.
CONF_AGENT_ID: Final = "agent_id"
CONF_ALLOWED_DOMAINS: Final = "allowed_domains"
CONF_ALLOWED_AREAS: Final = "allowed_areas"
CONF_ALLOWED_SENSITIVE: Final = "allowed_sensitive"
# Minutes to home at which approaching_home fires; km within which the ETA is shown.
CONF_APPROACH_MINUTES: Final = "approach_minutes"
CONF_ETA_MAX_KM: Final = "eta_max_km"

DEFAULT_PAIRING_PORT: Final = 8767
DEFAULT_LISTEN_PORT: Final = 8766
# The listener accepts cars on every IPv4 interface and, where the machine can
# listen on IPv6, on every IPv6 one too (see hub.CarHub.async_start); tests
# narrow both to loopback.
DEFAULT_LISTEN_HOST: Final = "0.0.0.0"  # noqa: S104
DEFAULT_LISTEN_HOST_V6: Final = "::"
DEFAULT_AGENT_ID: Final = "conversation.home_assistant"

# Targets a car may not touch unless the owner allows them in the options.
SENSITIVE_LOCK: Final = "lock"
SENSITIVE_ALARM: Final = "alarm_control_panel"
SENSITIVE_GARAGE: Final = "garage_door"
SENSITIVE_CHOICES: Final = (SENSITIVE_LOCK, SENSITIVE_ALARM, SENSITIVE_GARAGE)

# Home Assistant bus event fired for automations, and its kinds.
EVENT_VEHICLE: Final = "carhub_vehicle_event"
EVENT_DTC_APPEARED: Final = "dtc_appeared"
EVENT_DTC_CLEARED: Final = "dtc_cleared"
EVENT_TRIP_START: Final = "trip_start"
EVENT_TRIP_END: Final = "trip_end"
EVENT_ARRIVED_HOME: Final = "arrived_home"
EVENT_LEFT_HOME: Final = "left_home"
EVENT_APPROACHING_HOME: Final = "approaching_home"
EVENT_CHARGING_START: Final = "charging_start"
EVENT_CHARGING_END: Final = "charging_end"
VEHICLE_EVENT_TYPES: Final = (
    EVENT_DTC_APPEARED,
    EVENT_DTC_CLEARED,
    EVENT_TRIP_START,
    EVENT_TRIP_END,
    EVENT_ARRIVED_HOME,
    EVENT_LEFT_HOME,
    EVENT_APPROACHING_HOME,
    EVENT_CHARGING_START,
    EVENT_CHARGING_END,
)

# Messages whose envelope is older than this (by the car's clock, corrected by
# the offset seen in its hello) are backlog replayed from the car's outbox:
# their state is applied but entity writes wait until the backlog ends, that is
# until the first newer message, or until nothing arrives for BACKLOG_QUIET_S.
BACKLOG_AGE: Final = timedelta(seconds=30)
BACKLOG_QUIET_S: Final = 3.0
# Distinct signals held per car (only the newest value of each is kept, also
# while a backlog is coalesced): a car sending ever new paths cannot grow memory
# or its config entry without bound.
MAX_SIGNALS: Final = 1000

CERT_EXPIRY_WARNING: Final = timedelta(days=14)
NOT_SEEN_WARNING: Final = timedelta(days=7)
HEALTH_CHECK_INTERVAL: Final = timedelta(hours=1)
RTT_REFRESH_INTERVAL: Final = timedelta(seconds=30)
VOCABULARY_DEBOUNCE: Final = 2.0

NOTIFY_DEFAULT_TTL: Final = timedelta(hours=1)
COMMAND_TTL: Final = timedelta(minutes=5)

# Speed above which the car counts as moving (km/h): filters sensor noise.
MOVING_THRESHOLD_KMH: Final = 1.0

CONNECTION_ROUTES: Final = ("home_network", "remote")
"""How a car can be connected (its hello's ``route``; the diagnostic sensor's states)."""
