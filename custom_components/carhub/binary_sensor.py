"""Binary sensors of a car: link, engine, motion, doors, lock, seatbelt, check-engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import STATE_OFF, STATE_ON, EntityCategory, Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from . import signals as vss
from .const import MOVING_THRESHOLD_KMH
from .coordinator import CarHubCoordinator
from .entity import CarHubEntity, always, async_setup_dynamic_entities, declares
from .models import CarHubConfigEntry, VehicleState, as_bool, as_float

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class CarHubBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A car binary sensor: how its state is derived and when the car has it."""

    is_on_fn: Callable[[VehicleState], bool | None]
    exists_fn: Callable[[Mapping[str, Any]], bool]
    restore: bool = True


def _flag(path: str, *, invert: bool = False) -> Callable[[VehicleState], bool | None]:
    def _is_on(state: VehicleState) -> bool | None:
        value = as_bool(state.value(path))
        if value is None:
            return None
        return not value if invert else value

    return _is_on


def _moving(state: VehicleState) -> bool | None:
    speed = as_float(state.value(vss.SPEED))
    return None if speed is None else abs(speed) >= MOVING_THRESHOLD_KMH


_DOORS = (
    ("door_front_driver", 1, "DriverSide"),
    ("door_front_passenger", 1, "PassengerSide"),
    ("door_rear_driver", 2, "DriverSide"),
    ("door_rear_passenger", 2, "PassengerSide"),
)

BINARY_SENSORS: tuple[CarHubBinarySensorEntityDescription, ...] = (
    CarHubBinarySensorEntityDescription(
        key="connected",
        translation_key="connected",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        is_on_fn=lambda state: state.connected,
        exists_fn=always,
        restore=False,
    ),
    CarHubBinarySensorEntityDescription(
        key="engine_running",
        translation_key="engine_running",
        device_class=BinarySensorDeviceClass.RUNNING,
        is_on_fn=_flag(vss.ENGINE_RUNNING),
        exists_fn=declares(vss.ENGINE_RUNNING),
    ),
    CarHubBinarySensorEntityDescription(
        key="moving",
        translation_key="moving",
        device_class=BinarySensorDeviceClass.MOVING,
        is_on_fn=_moving,
        exists_fn=declares(vss.SPEED),
    ),
    *(
        CarHubBinarySensorEntityDescription(
            key=key,
            translation_key=key,
            device_class=BinarySensorDeviceClass.DOOR,
            is_on_fn=_flag(vss.door_open(row, side)),
            exists_fn=declares(vss.door_open(row, side)),
        )
        for key, row, side in _DOORS
    ),
    CarHubBinarySensorEntityDescription(
        key="trunk",
        translation_key="trunk",
        device_class=BinarySensorDeviceClass.OPENING,
        is_on_fn=_flag(vss.TRUNK_OPEN),
        exists_fn=declares(vss.TRUNK_OPEN),
    ),
    # device_class lock: "on" means unlocked, so the car's IsLocked is inverted.
    CarHubBinarySensorEntityDescription(
        key="lock",
        translation_key="lock",
        device_class=BinarySensorDeviceClass.LOCK,
        is_on_fn=_flag(vss.LOCKED, invert=True),
        exists_fn=declares(vss.LOCKED),
    ),
    CarHubBinarySensorEntityDescription(
        key="driver_seatbelt",
        translation_key="driver_seatbelt",
        is_on_fn=_flag(vss.DRIVER_BELTED),
        exists_fn=declares(vss.DRIVER_BELTED),
    ),
    CarHubBinarySensorEntityDescription(
        key="check_engine",
        translation_key="check_engine",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on_fn=_flag(vss.CHECK_ENGINE),
        exists_fn=declares(vss.CHECK_ENGINE),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CarHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Create the car's binary sensors from its declared signals."""
    async_setup_dynamic_entities(
        hass,
        entry,
        Platform.BINARY_SENSOR,
        BINARY_SENSORS,
        CarHubBinarySensor,
        async_add_entities,
    )


class CarHubBinarySensor(CarHubEntity, BinarySensorEntity, RestoreEntity):
    """A binary sensor fed by the car; keeps its last state while the car is away."""

    entity_description: CarHubBinarySensorEntityDescription

    def __init__(
        self,
        coordinator: CarHubCoordinator,
        description: CarHubBinarySensorEntityDescription,
    ) -> None:
        """Create the binary sensor."""
        super().__init__(coordinator, description)
        self._attr_is_on = None

    async def async_added_to_hass(self) -> None:
        """Restore the last state, then take the car's current one if known."""
        await super().async_added_to_hass()
        if (
            self.entity_description.restore
            and (last := await self.async_get_last_state()) is not None
        ) and last.state in (STATE_ON, STATE_OFF):
            self._attr_is_on = last.state == STATE_ON
        self._update_from_state()

    @callback
    def _handle_coordinator_update(self) -> None:
        self._update_from_state()
        super()._handle_coordinator_update()

    def _update_from_state(self) -> None:
        value = self.entity_description.is_on_fn(self.coordinator.data)
        if value is not None or not self.entity_description.restore:
            self._attr_is_on = value
