"""Event entity of a car: driver voice requests and alerts the car raises."""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import CarHubCoordinator, signal_car_event
from .entity import CarHubEntity
from .models import CarHubConfigEntry

PARALLEL_UPDATES = 0

CAR_EVENT = EventEntityDescription(
    key="car_event",
    translation_key="car_event",
    event_types=["alert", "voice_request"],
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CarHubConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Every car has one event entity."""
    async_add_entities([CarHubEventEntity(entry.runtime_data.coordinator, CAR_EVENT)])


class CarHubEventEntity(CarHubEntity, EventEntity):
    """Fires when the driver speaks to the home or the car raises an alert."""

    def __init__(self, coordinator: CarHubCoordinator, description: EventEntityDescription) -> None:
        """Create the event entity."""
        super().__init__(coordinator, description)

    async def async_added_to_hass(self) -> None:
        """Subscribe to the car's events (unsubscribed on removal)."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                signal_car_event(self.coordinator.config_entry.entry_id),
                self._async_car_event,
            )
        )

    @callback
    def _async_car_event(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type not in (self.event_types or []):
            return
        self._trigger_event(event_type, data)
        self.async_write_ha_state()

    @callback
    def _handle_coordinator_update(self) -> None:
        """State updates of the car do not change an event entity."""
