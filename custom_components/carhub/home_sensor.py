"""Sensors of a car heading home: time to home (ETA) and distance to the home zone."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import UnitOfLength, UnitOfTime
from homeassistant.core import callback

from .coordinator import CarHubCoordinator
from .entity import CarHubEntity, declares
from .home_approach import HomeWatch
from .signals import LATITUDE, LONGITUDE

HAS_POSITION = declares(LATITUDE, LONGITUDE)


@dataclass(frozen=True, kw_only=True)
class HomeSensorDescription(SensorEntityDescription):
    """A value of the car's way home (cars with a position only)."""

    value_fn: Callable[[HomeWatch], float | None]
    exists_fn: Callable[[Mapping[str, Any]], bool]


HOME_SENSORS: tuple[HomeSensorDescription, ...] = (
    HomeSensorDescription(
        key="time_to_home",
        translation_key="time_to_home",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        value_fn=lambda home: home.eta_min,
        exists_fn=HAS_POSITION,
    ),
    HomeSensorDescription(
        key="distance_to_home",
        translation_key="distance_to_home",
        device_class=SensorDeviceClass.DISTANCE,
        native_unit_of_measurement=UnitOfLength.KILOMETERS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda home: home.distance_km,
        exists_fn=HAS_POSITION,
    ),
)


class HomeSensor(CarHubEntity, SensorEntity):
    """Time or distance to home; unknown while the car does not head home (time)."""

    entity_description: HomeSensorDescription

    def __init__(self, coordinator: CarHubCoordinator, description: HomeSensorDescription) -> None:
        """Create the sensor."""
        super().__init__(coordinator, description)
        self._attr_native_value = description.value_fn(coordinator.home)

    @callback
    def _handle_coordinator_update(self) -> None:
        self._attr_native_value = self.entity_description.value_fn(self.coordinator.home)
        super()._handle_coordinator_update()
