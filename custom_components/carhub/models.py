"""Typed runtime models of the CarHub integration."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .coordinator import CarHubCoordinator
    from .hub import CarHub


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalValue:
    """The newest value of one VSS signal and the car's timestamp for it."""

    value: Any
    ts: float


@dataclass(kw_only=True)
class VehicleState:
    """Everything known about one car; entities read from it."""

    declared: dict[str, dict[str, Any]] = field(default_factory=dict)
    signals: dict[str, SignalValue] = field(default_factory=dict)
    connected: bool = False
    last_seen: datetime | None = None
    rtt_ms: float | None = None
    last_trip: dict[str, Any] | None = None
    """The summary of the car's last finished trip (custom_components/carhub/trips.py)."""
    last_charge: dict[str, Any] | None = None
    """The car's last finished charging session (``charging_end`` data)."""
    route: str | None = None
    """How the car's link came in, as the car says: "home_network" or "remote"."""

    def value(self, path: str) -> Any:
        """The current value of a signal, or None when none arrived in this run."""
        item = self.signals.get(path)
        return None if item is None else item.value


@dataclass(kw_only=True)
class CarHubRuntimeData:
    """What a loaded config entry holds: the shared hub and its car's coordinator."""

    hub: CarHub
    coordinator: CarHubCoordinator


type CarHubConfigEntry = ConfigEntry[CarHubRuntimeData]


def as_float(value: Any) -> float | None:
    """A finite float from a wire value, or None (bools and garbage are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def as_bool(value: Any) -> bool | None:
    """A bool from a wire value, or None when it is not a bool."""
    return value if isinstance(value, bool) else None


def parse_declared_signals(raw: Any) -> dict[str, dict[str, Any]]:
    """Validate the hello ``signals`` map; invalid items are dropped, never raised."""
    result: dict[str, dict[str, Any]] = {}
    if not isinstance(raw, Mapping):
        return result
    for path, meta in raw.items():
        if not isinstance(path, str) or not path.startswith("Vehicle.") or len(path) > 200:
            continue
        meta_map = meta if isinstance(meta, Mapping) else {}
        unit = meta_map.get("unit")
        datatype = meta_map.get("datatype")
        result[path] = {
            "unit": unit if isinstance(unit, str) else None,
            "datatype": datatype if isinstance(datatype, str) else None,
        }
    return result
