"""Sensors of a car's last trip (distance, duration, speeds, end) and last charging session."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntityDescription,
)
from homeassistant.const import (
    PERCENTAGE,
    UnitOfEnergy,
    UnitOfLength,
    UnitOfSpeed,
    UnitOfTime,
)
from homeassistant.core import callback
from homeassistant.util import dt as dt_util

from .coordinator import CarHubCoordinator
from .entity import CarHubEntity, always, declares
from .models import as_float


@dataclass(frozen=True, kw_only=True)
class TripSensorDescription(SensorEntityDescription):
    """A sensor showing one value of the car's last trip."""

    value_fn: Callable[[Mapping[str, Any]], float | datetime | None]
    source: str = "last_trip"
    """The VehicleState field holding the summary (last_trip, last_charge)."""
    exists_fn: Callable[[Mapping[str, Any]], bool] = always


def _number(key: str, scale: float = 1.0) -> Callable[[Mapping[str, Any]], float | None]:
    def _value(trip: Mapping[str, Any]) -> float | None:
        value = as_float(trip.get(key))
        return None if value is None else value * scale

    return _value


def _ended(trip: Mapping[str, Any]) -> datetime | None:
    ts = as_float(trip.get("end_ts"))
    return None if ts is None else dt_util.utc_from_timestamp(ts)


# Keys of the last trip shown as attributes of the "last trip" sensor.
TRIP_ATTRIBUTES = (
    "trip",
    "reason",
    "distance_source",
    "start",
    "end",
    "start_zone",
    "start_zone_name",
    "end_zone",
    "end_zone_name",
    "fuel_used_percent",
    "energy_used_percent",
)

TRIP_SENSORS: tuple[TripSensorDescription, ...] = (
    TripSensorDescription(
        key="last_trip",
        translation_key="last_trip",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=_ended,
    ),
    TripSensorDescription(
        key="last_trip_distance",
        translation_key="last_trip_distance",
        device_class=SensorDeviceClass.DISTANCE,
        native_unit_of_measurement=UnitOfLength.KILOMETERS,
        suggested_display_precision=1,
        value_fn=_number("distance_km"),
    ),
    TripSensorDescription(
        key="last_trip_duration",
        translation_key="last_trip_duration",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        value_fn=_number("duration_s", 1 / 60),
    ),
    TripSensorDescription(
        key="last_trip_average_speed",
        translation_key="last_trip_average_speed",
        device_class=SensorDeviceClass.SPEED,
        native_unit_of_measurement=UnitOfSpeed.KILOMETERS_PER_HOUR,
        suggested_display_precision=0,
        value_fn=_number("average_speed_kmh"),
    ),
    TripSensorDescription(
        key="last_trip_max_speed",
        translation_key="last_trip_max_speed",
        device_class=SensorDeviceClass.SPEED,
        native_unit_of_measurement=UnitOfSpeed.KILOMETERS_PER_HOUR,
        suggested_display_precision=0,
        value_fn=_number("max_speed_kmh"),
    ),
)


CHARGING = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"

CHARGE_SENSORS: tuple[TripSensorDescription, ...] = (
    TripSensorDescription(
        key="last_charge_energy",
        translation_key="last_charge_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=1,
        value_fn=_number("energy_added_kwh"),
        source="last_charge",
        exists_fn=declares(CHARGING),
    ),
    TripSensorDescription(
        key="last_charge_duration",
        translation_key="last_charge_duration",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        value_fn=_number("duration_s", 1 / 60),
        source="last_charge",
        exists_fn=declares(CHARGING),
    ),
    TripSensorDescription(
        key="last_charge_added",
        translation_key="last_charge_added",
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        value_fn=_number("soc_added_percent"),
        source="last_charge",
        exists_fn=declares(CHARGING),
    ),
)


def trip_sensors(coordinator: CarHubCoordinator) -> list[TripSensor]:
    """The last-trip sensors every car has."""
    return [TripSensor(coordinator, description) for description in TRIP_SENSORS]


class TripSensor(CarHubEntity, RestoreSensor):
    """One value of the car's last trip; keeps it across restarts until the next trip."""

    entity_description: TripSensorDescription

    async def async_added_to_hass(self) -> None:
        """Restore the last trip's value (the car sends each trip once)."""
        await super().async_added_to_hass()
        if (last := await self.async_get_last_sensor_data()) is not None:
            self._attr_native_value = last.native_value
        if self.entity_description.key == "last_trip" and (
            state := await self.async_get_last_state()
        ):
            self._attr_extra_state_attributes = {
                k: v for k, v in state.attributes.items() if k in TRIP_ATTRIBUTES
            }
        self._update_from_trip()

    @callback
    def _handle_coordinator_update(self) -> None:
        self._update_from_trip()
        super()._handle_coordinator_update()

    def _update_from_trip(self) -> None:
        trip: Mapping[str, Any] | None = getattr(
            self.coordinator.data, self.entity_description.source
        )
        if trip is None:
            return
        self._attr_native_value = self.entity_description.value_fn(trip)
        if self.entity_description.key == "last_trip":
            self._attr_extra_state_attributes = {
                k: trip[k] for k in TRIP_ATTRIBUTES if trip.get(k) is not None
            }
