"""The car's position from its GPS, as a device tracker."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# 2026.x deprecates the config_entry path; 2025.4 re-exports TrackerEntity
# here without listing it in __all__, hence the ignore for mypy on 2025.4.
from homeassistant.components.device_tracker import TrackerEntity  # type: ignore[attr-defined,unused-ignore]
from homeassistant.components.device_tracker.const import SourceType
from homeassistant.const import ATTR_GPS_ACCURACY, ATTR_LATITUDE, ATTR_LONGITUDE, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from . import signals as vss
from .coordinator import CarHubCoordinator
from .entity import CarHubEntity, async_setup_dynamic_entities, declares
from .models import CarHubConfigEntry, as_float

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class CarHubTrackerEntityDescription(EntityDescription):
    """The car's position: exists when the car has latitude and longitude."""

    exists_fn: Callable[[Mapping[str, Any]], bool]


LOCATION = CarHubTrackerEntityDescription(
    key="location",
    translation_key="location",
    name=None,
    exists_fn=declares(vss.LATITUDE, vss.LONGITUDE),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CarHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Create the tracker once the car declares (or sends) a position."""
    async_setup_dynamic_entities(
        hass, entry, Platform.DEVICE_TRACKER, (LOCATION,), CarHubTracker, async_add_entities
    )


class CarHubTracker(CarHubEntity, TrackerEntity, RestoreEntity):
    """Where the car is (or was last seen)."""

    _attr_source_type = SourceType.GPS
    _attr_name = None

    def __init__(
        self, coordinator: CarHubCoordinator, description: CarHubTrackerEntityDescription
    ) -> None:
        """Create the tracker."""
        super().__init__(coordinator, description)
        self._attr_latitude = None
        self._attr_longitude = None
        self._attr_location_accuracy = 0

    async def async_added_to_hass(self) -> None:
        """Restore the last position, then take the car's current one if known."""
        await super().async_added_to_hass()
        if (last := await self.async_get_last_state()) is not None:
            lat = as_float(last.attributes.get(ATTR_LATITUDE))
            lon = as_float(last.attributes.get(ATTR_LONGITUDE))
            if lat is not None and lon is not None:
                self._attr_latitude, self._attr_longitude = lat, lon
                accuracy = as_float(last.attributes.get(ATTR_GPS_ACCURACY))
                self._attr_location_accuracy = round(accuracy) if accuracy else 0
        self._update_from_state()

    @callback
    def _handle_coordinator_update(self) -> None:
        self._update_from_state()
        super()._handle_coordinator_update()

    def _update_from_state(self) -> None:
        state = self.coordinator.data
        lat = as_float(state.value(vss.LATITUDE))
        lon = as_float(state.value(vss.LONGITUDE))
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return
        self._attr_latitude, self._attr_longitude = lat, lon
        accuracy = as_float(state.value(vss.LOCATION_ACCURACY))
        if accuracy is not None and accuracy >= 0:
            self._attr_location_accuracy = round(accuracy)
