"""The Assist vocabulary sent to cars: names of exposed entities and of areas.

The car's offline recognizer builds its grammar from these names. They are
sent after every hello and again (debounced) whenever the entity registry, the
area registry, the set of entities exposed to Assist or an entity's name
changes. Only changed vocabularies are resent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.conversation import DOMAIN as CONVERSATION_DOMAIN
from homeassistant.components.homeassistant.exposed_entities import (
    async_listen_entity_updates,
    async_should_expose,
)
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.debounce import Debouncer

from bridge.errors import BridgeError
from bridge.protocol import MessageType

from .const import LOGGER, VOCABULARY_DEBOUNCE

if TYPE_CHECKING:
    from .hub import CarHub


@callback
def async_build_vocabulary(hass: HomeAssistant) -> dict[str, Any]:
    """The vocabulary message body for the current state of Home Assistant."""
    ent_reg = er.async_get(hass)
    names: set[str] = set()
    for state in hass.states.async_all():
        if not async_should_expose(hass, CONVERSATION_DOMAIN, state.entity_id):
            continue
        names.add(state.name)
        if (entry := ent_reg.async_get(state.entity_id)) is not None:
            # Since 2026.3 aliases may hold a COMPUTED_NAME marker standing
            # for the entity's own name, which state.name already gives.
            names.update(alias for alias in entry.aliases if isinstance(alias, str) and alias)
    areas: set[str] = set()
    for area in ar.async_get(hass).async_list_areas():
        areas.add(area.name)
        areas.update(alias for alias in area.aliases if isinstance(alias, str) and alias)
    return {
        "language": hass.config.language,
        "entities": sorted(name for name in names if name),
        "areas": sorted(areas),
    }


@callback
def _name_changed(event_data: EventStateChangedData) -> bool:
    """Only additions, removals and renames matter, not every state change."""
    old, new = event_data["old_state"], event_data["new_state"]
    if old is None or new is None:
        return True
    return old.name != new.name


class VocabularySync:
    """Keeps every connected car's vocabulary current."""

    def __init__(self, hass: HomeAssistant, hub: CarHub) -> None:
        """Prepare the sync; ``async_start`` subscribes to changes."""
        self.hass = hass
        self._hub = hub
        self._last_sent: dict[str, dict[str, Any]] = {}
        self._unsubs: list[CALLBACK_TYPE] = []
        self._debouncer: Debouncer[Any] | None = None

    @callback
    def async_start(self) -> None:
        """Listen to everything that changes the vocabulary."""
        self._debouncer = Debouncer(
            self.hass,
            LOGGER,
            cooldown=VOCABULARY_DEBOUNCE,
            immediate=False,
            function=self._async_send_changed,
        )
        self._unsubs = [
            self.hass.bus.async_listen(er.EVENT_ENTITY_REGISTRY_UPDATED, self._async_changed),
            self.hass.bus.async_listen(ar.EVENT_AREA_REGISTRY_UPDATED, self._async_changed),
            self.hass.bus.async_listen(
                EVENT_STATE_CHANGED, self._async_changed, event_filter=_name_changed
            ),
            async_listen_entity_updates(self.hass, CONVERSATION_DOMAIN, self._async_exposure),
        ]

    @callback
    def async_stop(self) -> None:
        """Stop listening and drop a pending send."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs = []
        if self._debouncer is not None:
            self._debouncer.async_shutdown()
            self._debouncer = None
        self._last_sent.clear()

    @callback
    def _async_changed(self, _event: Event[Any]) -> None:
        if self._debouncer is not None:
            self._debouncer.async_schedule_call()

    @callback
    def _async_exposure(self) -> None:
        if self._debouncer is not None:
            self._debouncer.async_schedule_call()

    async def _async_send_changed(self) -> None:
        body = async_build_vocabulary(self.hass)
        for coordinator in self._hub.coordinators():
            vehicle_id = coordinator.vehicle_id
            if self._hub.connected(vehicle_id) and self._last_sent.get(vehicle_id) != body:
                await self._async_send(vehicle_id, body)

    async def async_send_to(self, vehicle_id: str) -> None:
        """Send the vocabulary to one car (after its hello)."""
        await self._async_send(vehicle_id, async_build_vocabulary(self.hass))

    async def _async_send(self, vehicle_id: str, body: dict[str, Any]) -> None:
        try:
            await self._hub.async_send(vehicle_id, MessageType.VOCABULARY, body)
        except BridgeError as err:
            LOGGER.warning("Could not send the vocabulary to %s: %s", vehicle_id, err)
            return
        self._last_sent[vehicle_id] = body
