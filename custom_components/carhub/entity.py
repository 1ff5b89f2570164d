"""Base entity of the CarHub integration and dynamic entity creation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import CONF_AGENT_VERSION, CONF_MAKE, CONF_MODEL, CONF_PROFILE, CONF_VIN, DOMAIN
from .coordinator import CarHubCoordinator
from .models import CarHubConfigEntry


@callback
def device_info(entry: CarHubConfigEntry) -> DeviceInfo:
    """The car as a Home Assistant device."""
    assert entry.unique_id is not None
    data = entry.data
    return DeviceInfo(
        identifiers={(DOMAIN, entry.unique_id)},
        manufacturer=data.get(CONF_MAKE) or None,
        model=data.get(CONF_MODEL) or None,
        model_id=data.get(CONF_PROFILE) or None,
        name=entry.title,
        serial_number=data.get(CONF_VIN) or None,
        sw_version=data.get(CONF_AGENT_VERSION) or None,
    )


class CarHubEntity(CoordinatorEntity[CarHubCoordinator]):
    """Common base: device info, entity naming and unique id from the description key."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: CarHubCoordinator, description: EntityDescription) -> None:
        """Attach the entity to its car."""
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = f"{coordinator.vehicle_id}_{description.key}"
        self._attr_device_info = device_info(coordinator.config_entry)


class _Described(Protocol):
    key: str

    @property
    def exists_fn(self) -> Callable[[Mapping[str, Any]], bool]: ...


def async_setup_dynamic_entities[D: _Described](
    hass: HomeAssistant,
    entry: CarHubConfigEntry,
    platform: Platform,
    descriptions: Sequence[D],
    factory: Callable[[CarHubCoordinator, D], Entity],
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Create the entities the car declares now, and again when its declaration changes.

    Entities for signals the car no longer declares are removed from the
    entity registry, so the device shows only what the car really has.
    """
    coordinator = entry.runtime_data.coordinator
    added: set[str] = set()

    @callback
    def _sync() -> None:
        declared = coordinator.data.declared
        new: list[Entity] = []
        gone: list[str] = []
        for description in descriptions:
            exists = description.exists_fn(declared)
            if exists and description.key not in added:
                added.add(description.key)
                new.append(factory(coordinator, description))
            elif not exists and description.key in added:
                added.discard(description.key)
                gone.append(description.key)
        _remove_entities(hass, platform, coordinator.vehicle_id, gone)
        if new:
            async_add_entities(new)

    _sync()
    entry.async_on_unload(coordinator.async_add_signals_listener(_sync))


def _remove_entities(
    hass: HomeAssistant, platform: Platform, vehicle_id: str, keys: Iterable[str]
) -> None:
    ent_reg = er.async_get(hass)
    for key in keys:
        entity_id = ent_reg.async_get_entity_id(platform, DOMAIN, f"{vehicle_id}_{key}")
        if entity_id is not None:
            ent_reg.async_remove(entity_id)


def declares(*paths: str) -> Callable[[Mapping[str, Any]], bool]:
    """An ``exists_fn`` true when the car declares every one of ``paths``."""

    def _exists(declared: Mapping[str, Any]) -> bool:
        return all(path in declared for path in paths)

    return _exists


def always(_declared: Mapping[str, Any]) -> bool:
    """An ``exists_fn`` for entities every car has."""
    return True
