"""Sensors of a car: what its profile declares, plus link health."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    DOMAIN as SENSOR_DOMAIN,
)
from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.components.sensor.const import UNIT_CONVERTERS
from homeassistant.const import (
    PERCENTAGE,
    REVOLUTIONS_PER_MINUTE,
    EntityCategory,
    Platform,
    UnitOfElectricPotential,
    UnitOfLength,
    UnitOfPressure,
    UnitOfSpeed,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from . import signals as vss
from .const import CONNECTION_ROUTES
from .coordinator import CarHubCoordinator
from .entity import CarHubEntity, always, async_setup_dynamic_entities, declares
from .home_sensor import HOME_SENSORS, HomeSensor
from .models import CarHubConfigEntry, VehicleState, as_float
from .trip_sensor import CHARGE_SENSORS, TripSensor, trip_sensors

# Push updates from one car: no concurrency limit needed.
PARALLEL_UPDATES = 0

GEAR_OPTIONS = ["p", "r", "n", "d", "s", "b", "1", "2", "3", "4", "5", "6", "7", "8"]

# Unit strings a car profile may declare, mapped to Home Assistant units.
UNIT_ALIASES: dict[str, str] = {
    "km/h": UnitOfSpeed.KILOMETERS_PER_HOUR,
    "kph": UnitOfSpeed.KILOMETERS_PER_HOUR,
    "mph": UnitOfSpeed.MILES_PER_HOUR,
    "m/s": UnitOfSpeed.METERS_PER_SECOND,
    "km": UnitOfLength.KILOMETERS,
    "m": UnitOfLength.METERS,
    "mi": UnitOfLength.MILES,
    "celsius": UnitOfTemperature.CELSIUS,
    "°C": UnitOfTemperature.CELSIUS,
    "fahrenheit": UnitOfTemperature.FAHRENHEIT,
    "°F": UnitOfTemperature.FAHRENHEIT,
    "percent": PERCENTAGE,
    "%": PERCENTAGE,
    "V": UnitOfElectricPotential.VOLT,
    "kPa": UnitOfPressure.KPA,
    "bar": UnitOfPressure.BAR,
    "psi": UnitOfPressure.PSI,
    "rpm": REVOLUTIONS_PER_MINUTE,
}


@dataclass(frozen=True, kw_only=True)
class CarHubSensorEntityDescription(SensorEntityDescription):
    """A car sensor: where its value comes from and when the car has it."""

    value_fn: Callable[[VehicleState], StateType | datetime]
    exists_fn: Callable[[Mapping[str, Any]], bool]
    signal: str | None = None
    # Units the car may declare for this signal; the first is the default.
    units: tuple[str, ...] = ()
    attr_fn: Callable[[VehicleState], dict[str, Any] | None] = lambda _state: None
    restore: bool = True


def _number(path: str) -> Callable[[VehicleState], float | None]:
    def _value(state: VehicleState) -> float | None:
        return as_float(state.value(path))

    return _value


def _gear(state: VehicleState) -> str | None:
    value = state.value(vss.GEAR)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    gear = value.strip().lower()
    return gear if gear in GEAR_OPTIONS else None


def _dtc_list(state: VehicleState) -> list[dict[str, str]] | None:
    value = state.value(vss.DTCS)
    if not isinstance(value, list):
        return None
    codes: list[dict[str, str]] = []
    for item in value:
        if isinstance(item, Mapping) and isinstance(item.get("code"), str):
            codes.append(
                {
                    "code": item["code"],
                    "description": str(item.get("description") or ""),
                    "kind": str(item.get("kind") or ""),
                }
            )
    return codes


def _dtc_count(state: VehicleState) -> int | None:
    codes = _dtc_list(state)
    return None if codes is None else len(codes)


def _dtc_attributes(state: VehicleState) -> dict[str, Any] | None:
    codes = _dtc_list(state)
    return None if codes is None else {"codes": codes}


def _measure(
    key: str,
    path: str,
    *,
    device_class: SensorDeviceClass | None,
    units: tuple[str, ...],
    state_class: SensorStateClass = SensorStateClass.MEASUREMENT,
    suggested_unit: str | None = None,
    precision: int | None = None,
    translation_key: str | None = None,
    entity_category: EntityCategory | None = None,
    enabled: bool = True,
) -> CarHubSensorEntityDescription:
    return CarHubSensorEntityDescription(
        key=key,
        translation_key=translation_key or key,
        signal=path,
        device_class=device_class,
        native_unit_of_measurement=units[0],
        units=units,
        suggested_unit_of_measurement=suggested_unit,
        suggested_display_precision=precision,
        state_class=state_class,
        entity_category=entity_category,
        entity_registry_enabled_default=enabled,
        value_fn=_number(path),
        exists_fn=declares(path),
    )


SPEEDS = (
    UnitOfSpeed.KILOMETERS_PER_HOUR,
    UnitOfSpeed.MILES_PER_HOUR,
    UnitOfSpeed.METERS_PER_SECOND,
)
DISTANCES = (UnitOfLength.KILOMETERS, UnitOfLength.MILES, UnitOfLength.METERS)
TEMPERATURES = (UnitOfTemperature.CELSIUS, UnitOfTemperature.FAHRENHEIT)
PRESSURES = (UnitOfPressure.KPA, UnitOfPressure.BAR, UnitOfPressure.PSI)

_TIRES = (
    ("front_left", 1, "Left"),
    ("front_right", 1, "Right"),
    ("rear_left", 2, "Left"),
    ("rear_right", 2, "Right"),
)

SENSORS: tuple[CarHubSensorEntityDescription, ...] = (
    _measure("speed", vss.SPEED, device_class=SensorDeviceClass.SPEED, units=SPEEDS, precision=0),
    _measure(
        "odometer",
        vss.ODOMETER,
        device_class=SensorDeviceClass.DISTANCE,
        units=DISTANCES,
        state_class=SensorStateClass.TOTAL_INCREASING,
        precision=0,
    ),
    _measure("fuel_level", vss.FUEL_LEVEL, device_class=None, units=(PERCENTAGE,), precision=0),
    _measure(
        "fuel_range",
        vss.FUEL_RANGE,
        device_class=SensorDeviceClass.DISTANCE,
        units=DISTANCES,
        suggested_unit=UnitOfLength.KILOMETERS,
        precision=0,
    ),
    _measure(
        "battery_level",
        vss.BATTERY_LEVEL,
        device_class=SensorDeviceClass.BATTERY,
        units=(PERCENTAGE,),
        precision=0,
    ),
    _measure(
        "battery_range",
        vss.BATTERY_RANGE,
        device_class=SensorDeviceClass.DISTANCE,
        units=DISTANCES,
        suggested_unit=UnitOfLength.KILOMETERS,
        precision=0,
    ),
    _measure(
        "engine_speed",
        vss.ENGINE_SPEED,
        device_class=None,
        units=(REVOLUTIONS_PER_MINUTE,),
        precision=0,
    ),
    _measure(
        "coolant_temperature",
        vss.COOLANT_TEMPERATURE,
        device_class=SensorDeviceClass.TEMPERATURE,
        units=TEMPERATURES,
        precision=0,
    ),
    _measure(
        "engine_load",
        vss.ENGINE_LOAD,
        device_class=None,
        units=(PERCENTAGE,),
        precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        enabled=False,
    ),
    _measure(
        "battery_voltage",
        vss.LOW_VOLTAGE_BATTERY,
        device_class=SensorDeviceClass.VOLTAGE,
        units=(UnitOfElectricPotential.VOLT,),
        precision=1,
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
    _measure(
        "outside_temperature",
        vss.OUTSIDE_TEMPERATURE,
        device_class=SensorDeviceClass.TEMPERATURE,
        units=TEMPERATURES,
        precision=1,
    ),
    _measure(
        "intake_temperature",
        vss.INTAKE_TEMPERATURE,
        device_class=SensorDeviceClass.TEMPERATURE,
        units=TEMPERATURES,
        precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        enabled=False,
    ),
    *(
        _measure(
            f"tire_pressure_{name}",
            vss.tire_pressure(row, side),
            device_class=SensorDeviceClass.PRESSURE,
            units=PRESSURES,
            precision=0,
        )
        for name, row, side in _TIRES
    ),
    CarHubSensorEntityDescription(
        key="gear",
        translation_key="gear",
        signal=vss.GEAR,
        device_class=SensorDeviceClass.ENUM,
        options=GEAR_OPTIONS,
        value_fn=_gear,
        exists_fn=declares(vss.GEAR),
    ),
    CarHubSensorEntityDescription(
        key="dtc_count",
        translation_key="dtc_count",
        signal=vss.DTCS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=_dtc_count,
        attr_fn=_dtc_attributes,
        exists_fn=declares(vss.DTCS),
    ),
    CarHubSensorEntityDescription(
        key="last_seen",
        translation_key="last_seen",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.last_seen,
        exists_fn=always,
    ),
    CarHubSensorEntityDescription(
        key="round_trip_time",
        translation_key="round_trip_time",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        units=(UnitOfTime.MILLISECONDS,),
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.rtt_ms if state.connected else None,
        exists_fn=always,
        restore=False,
    ),
    CarHubSensorEntityDescription(
        key="connection_route",
        translation_key="connection_route",
        device_class=SensorDeviceClass.ENUM,
        options=list(CONNECTION_ROUTES),
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.route if state.connected else None,
        exists_fn=always,
        restore=False,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CarHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Create the car's sensors from its declared signals."""
    async_setup_dynamic_entities(
        hass, entry, Platform.SENSOR, SENSORS, CarHubSensor, async_add_entities
    )
    async_add_entities(trip_sensors(entry.runtime_data.coordinator))
    async_setup_dynamic_entities(
        hass, entry, Platform.SENSOR, HOME_SENSORS, HomeSensor, async_add_entities
    )
    async_setup_dynamic_entities(
        hass, entry, Platform.SENSOR, CHARGE_SENSORS, TripSensor, async_add_entities
    )


class CarHubSensor(CarHubEntity, RestoreSensor):
    """A sensor fed by the car; keeps its last value while the car is away."""

    entity_description: CarHubSensorEntityDescription

    def __init__(
        self, coordinator: CarHubCoordinator, description: CarHubSensorEntityDescription
    ) -> None:
        """Create the sensor and pick the unit the car declares for its signal."""
        super().__init__(coordinator, description)
        self._attr_native_unit_of_measurement = self._declared_unit()
        self._attr_native_value = None
        self._attr_extra_state_attributes = {}

    def _declared_unit(self) -> str | None:
        description = self.entity_description
        default = description.native_unit_of_measurement
        if description.signal is None:
            return default
        meta = self.coordinator.data.declared.get(description.signal) or {}
        unit = UNIT_ALIASES.get(str(meta.get("unit")))
        return unit if unit is not None and unit in description.units else default

    async def async_added_to_hass(self) -> None:
        """Restore the last value, then take the car's current one if it has sent it."""
        await super().async_added_to_hass()
        if (
            self.entity_description.restore
            and (last := await self.async_get_last_sensor_data()) is not None
        ):
            self._attr_native_value = last.native_value
            if (state := await self.async_get_last_state()) is not None and (
                codes := state.attributes.get("codes")
            ) is not None:
                self._attr_extra_state_attributes = {"codes": codes}
        self._update_from_state()

    @callback
    def _handle_coordinator_update(self) -> None:
        self._update_unit()
        self._update_from_state()
        super()._handle_coordinator_update()

    def _update_unit(self) -> None:
        """Follow a unit change in the car's hello (a new profile) without a reload.

        The value the sensor holds (restored, or from before the change) was in
        the old unit: it is converted, or dropped when it cannot be. Values
        the car sends from now on are in the new unit.
        """
        unit = self._declared_unit()
        old = self._attr_native_unit_of_measurement
        if unit == old:
            return
        shown = self.unit_of_measurement
        self._attr_native_unit_of_measurement = unit
        converter = UNIT_CONVERTERS.get(self.entity_description.device_class)
        if (
            converter is not None
            and self.registry_entry is not None
            and shown != self.unit_of_measurement
            and shown in converter.VALID_UNITS
            and unit in converter.VALID_UNITS
        ):
            # Keep showing the unit shown so far (history stays comparable),
            # as Home Assistant does when an entity is added with a new native
            # unit: the old one becomes the suggested display unit.
            self.registry_entry = er.async_get(self.hass).async_update_entity_options(
                self.entity_id, f"{SENSOR_DOMAIN}.private", {"suggested_unit_of_measurement": shown}
            )
            self.async_registry_entry_updated()
        value = self._attr_native_value
        if value is None:
            return
        try:
            if converter is None or isinstance(value, bool) or not isinstance(value, int | float):
                raise HomeAssistantError(f"no conversion from {old} to {unit}")
            self._attr_native_value = converter.convert(float(value), old, unit)
        except HomeAssistantError:
            self._attr_native_value = None

    def _update_from_state(self) -> None:
        description = self.entity_description
        state = self.coordinator.data
        value = description.value_fn(state)
        if value is not None or not description.restore:
            self._attr_native_value = value
            if (attributes := description.attr_fn(state)) is not None:
                self._attr_extra_state_attributes = attributes
