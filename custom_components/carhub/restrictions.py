"""Per-car limits on what a spoken request may touch at home.

Assist exposure is the outer limit: Home Assistant's conversation agents only
see exposed entities. Inside it, each car can be narrowed in the options flow
to chosen domains and areas, and locks, alarm panels and garage doors are off
limits unless the owner allows them.

How it is enforced: before a request is handed to the conversation agent, it
is recognized with Home Assistant's own default agent (the same hassil
sentences Assist uses) and its targets are resolved with Home Assistant's own
matcher (``intent.async_match_targets``, exposure included). If any target is
outside the car's allowed set the request is refused and nothing runs.
Read-only intents (``HassGet*``) are not restricted: asking whether the garage
door is open is harmless. Sentences of the owner's own automations (conversation
triggers) are not restricted either: they run instead of an intent. A request
the default agent does not understand has no known target; with the default
agent it then fails anyway, with an LLM agent it is handed over and that agent
is bounded by Assist exposure only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.components.conversation import (
    DOMAIN as CONVERSATION_DOMAIN,
)
from homeassistant.components.conversation import (
    ConversationInput,
)
from homeassistant.components.conversation.agent_manager import async_get_agent
from homeassistant.components.conversation.const import HOME_ASSISTANT_AGENT
from homeassistant.components.conversation.default_agent import DefaultAgent
from homeassistant.components.cover import CoverDeviceClass
from homeassistant.const import ATTR_DEVICE_CLASS
from homeassistant.core import Context, HomeAssistant, State, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import intent

from .const import (
    CONF_ALLOWED_AREAS,
    CONF_ALLOWED_DOMAINS,
    CONF_ALLOWED_SENSITIVE,
    SENSITIVE_ALARM,
    SENSITIVE_GARAGE,
    SENSITIVE_LOCK,
)

READ_ONLY_INTENT_PREFIX = "HassGet"
READ_ONLY_INTENTS = frozenset({"HassClimateGetTemperature"})
TARGET_SLOTS = ("name", "area", "floor", "domain", "device_class")


@dataclass(frozen=True, kw_only=True)
class TargetPolicy:
    """What one car may touch, from its config entry options."""

    domains: frozenset[str]
    areas: frozenset[str]
    sensitive: frozenset[str]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TargetPolicy:
        """Build the policy; empty domain/area lists mean "no narrowing"."""
        return cls(
            domains=frozenset(options.get(CONF_ALLOWED_DOMAINS) or ()),
            areas=frozenset(options.get(CONF_ALLOWED_AREAS) or ()),
            sensitive=frozenset(options.get(CONF_ALLOWED_SENSITIVE) or ()),
        )

    @callback
    def allows(self, hass: HomeAssistant, state: State) -> bool:
        """Whether a request from the car may act on this entity."""
        kind = sensitive_kind(hass, state)
        if kind is not None and kind not in self.sensitive:
            return False
        if self.domains and state.domain not in self.domains:
            return False
        return not self.areas or entity_area_id(hass, state.entity_id) in self.areas


@callback
def sensitive_kind(hass: HomeAssistant, state: State) -> str | None:
    """Which sensitive class an entity belongs to, if any."""
    if state.domain == "lock":
        return SENSITIVE_LOCK
    if state.domain == "alarm_control_panel":
        return SENSITIVE_ALARM
    if state.domain == "cover":
        device_class = state.attributes.get(ATTR_DEVICE_CLASS)
        if (entry := er.async_get(hass).async_get(state.entity_id)) is not None:
            device_class = entry.device_class or entry.original_device_class or device_class
        if device_class == CoverDeviceClass.GARAGE:
            return SENSITIVE_GARAGE
    return None


@callback
def entity_area_id(hass: HomeAssistant, entity_id: str) -> str | None:
    """The entity's area, or its device's area."""
    entry = er.async_get(hass).async_get(entity_id)
    if entry is None:
        return None
    if entry.area_id:
        return entry.area_id
    if entry.device_id and (device := dr.async_get(hass).async_get(entry.device_id)):
        return device.area_id
    return None


def _slot_value(slots: Mapping[str, Any], name: str) -> Any:
    slot = slots.get(name)
    return None if slot is None else slot.value


def _as_set(value: Any) -> set[str] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple | set | frozenset):
        return {str(v) for v in value}
    return {str(value)}


async def async_disallowed_targets(
    hass: HomeAssistant,
    policy: TargetPolicy,
    *,
    text: str,
    language: str,
    context: Context,
    device_id: str | None,
) -> list[State]:
    """The exposed entities the request targets that the car may not touch."""
    agent = async_get_agent(hass, HOME_ASSISTANT_AGENT)
    if not isinstance(agent, DefaultAgent):
        return []
    user_input = ConversationInput(
        text=text,
        context=context,
        conversation_id=None,
        device_id=device_id,
        language=language,
        agent_id=HOME_ASSISTANT_AGENT,
    )
    if await agent.async_recognize_sentence_trigger(user_input) is not None:
        # The owner's own automation sentence: it runs instead of any intent.
        return []
    result = await agent.async_recognize_intent(user_input)
    if result is None or result.unmatched_entities:
        return []
    intent_name = result.intent.name
    if intent_name.startswith(READ_ONLY_INTENT_PREFIX) or intent_name in READ_ONLY_INTENTS:
        return []
    slots = result.entities
    if not any(slot in slots for slot in TARGET_SLOTS):
        return []
    name = _slot_value(slots, "name")
    if name == "all":
        name = None
    # The same constraints the intent's own handler will use, so the check
    # sees exactly the entities the request would act on.
    handler = next((h for h in intent.async_get(hass) if h.intent_type == intent_name), None)
    domains = _as_set(_slot_value(slots, "domain"))
    features: int | None = None
    states: set[str] | None = None
    if isinstance(handler, intent.DynamicServiceIntentHandler):
        domains = domains or handler.required_domains
        features = handler.required_features
        states = handler.required_states
    constraints = intent.MatchTargetsConstraints(
        name=name,
        area_name=_slot_value(slots, "area"),
        floor_name=_slot_value(slots, "floor"),
        domains=domains,
        device_classes=_as_set(_slot_value(slots, "device_class")),
        features=features,
        states=states,
        assistant=CONVERSATION_DOMAIN,
    )
    if not constraints.has_constraints:
        return []
    match = intent.async_match_targets(hass, constraints)
    if not match.is_match:
        return []
    return [state for state in match.states if not policy.allows(hass, state)]
