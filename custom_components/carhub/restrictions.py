"""Per-car limits on what a spoken request may touch at home.

Assist exposure is the outer limit: Home Assistant's conversation agents only
see exposed entities. Inside it, each car can be narrowed in the options flow
to chosen domains and areas, and locks, alarm panels and garage doors are off
limits unless the owner allows them.

How it is enforced: before a request is handed to the conversation agent, it
is recognized with Home Assistant's own default agent (the same hassil
sentences Assist uses) and its targets are resolved with Home Assistant's own
matcher (``intent.async_match_targets``, exposure included) with the same
constraints and the same preferences (the car device's area) the intent's
handler will use. If any target is outside the car's allowed set the request
is refused and nothing runs.

Fail closed: while the car is restricted at all (always, unless the owner
allowed every sensitive class and set no domain or area limit), a request
that changes something and whose targets cannot be resolved and checked is
refused too: an intent without a target slot and without a known domain, an
unknown intent, a target that resolves to nothing. Read-only intents
(``HassGet*``) are not restricted: asking whether the garage door is open is
harmless. Sentences of the owner's own automations (conversation triggers) are
not restricted either: they run instead of an intent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from homeassistant.components.conversation import (
    DOMAIN as CONVERSATION_DOMAIN,
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

from .compat import conversation_input
from .const import (
    CONF_ALLOWED_AREAS,
    CONF_ALLOWED_DOMAINS,
    CONF_ALLOWED_SENSITIVE,
    SENSITIVE_ALARM,
    SENSITIVE_CHOICES,
    SENSITIVE_GARAGE,
    SENSITIVE_LOCK,
)

READ_ONLY_INTENT_PREFIX = "HassGet"
READ_ONLY_INTENTS = frozenset({"HassClimateGetTemperature"})
# Intents that touch no entity at all.
HARMLESS_INTENTS = frozenset({"HassNevermind", "HassRespond"})


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

    @property
    def restricted(self) -> bool:
        """Whether the car is narrowed at all inside Assist exposure (true by default)."""
        return bool(self.domains or self.areas) or not self.sensitive >= set(SENSITIVE_CHOICES)

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


def _spoken_target(slots: Mapping[str, Any]) -> str | None:
    """What the driver named (entity, area or floor), as spoken."""
    for name in ("name", "area", "floor"):
        slot = slots.get(name)
        if slot is not None and isinstance(text := slot.text or slot.value, str) and text:
            return text
    return None


class Verdict(StrEnum):
    """Outcome of the per-car check of one request."""

    # Nothing the car may not touch: hand the request to the agent.
    ALLOWED = "allowed"
    # It would touch something outside the car's allowed set (``refused``).
    REFUSED = "refused"
    # It would change something, but what cannot be resolved and checked.
    UNCHECKED = "unchecked"
    # Its targets resolve to nothing (``target``: what was named): refused
    # rather than left to a handler that might resolve them differently.
    NOT_FOUND = "not_found"
    # Home Assistant's sentences do not understand it (or name nothing
    # exposed): the built-in agent cannot act on it, any other agent might.
    UNRECOGNIZED = "unrecognized"


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """What the per-car check found."""

    verdict: Verdict
    refused: list[State] = field(default_factory=list)
    intent: str | None = None
    target: str | None = None


@callback
def car_area_id(hass: HomeAssistant, device_id: str | None) -> str | None:
    """The car device's area: the default agent's preferred area for its requests."""
    if device_id is None or (device := dr.async_get(hass).async_get(device_id)) is None:
        return None
    return device.area_id


def _constraints(
    hass: HomeAssistant, intent_name: str, slots: Mapping[str, Any]
) -> intent.MatchTargetsConstraints | None:
    """The constraints the intent's handler will match with; None when unknown."""
    handler = next((h for h in intent.async_get(hass) if h.intent_type == intent_name), None)
    if handler is None:
        return None
    name = _slot_value(slots, "name")
    if name == "all":
        name = None
    domains = _as_set(_slot_value(slots, "domain"))
    features: int | None = None
    states: set[str] | None = None
    if isinstance(handler, intent.DynamicServiceIntentHandler):
        # Exactly what DynamicServiceIntentHandler.async_handle builds.
        domains = domains or handler.required_domains
        features = handler.required_features
        states = handler.required_states
    elif not domains and handler.platforms:
        # Other handlers (climate's set temperature, ...) match within the
        # domains they serve; without their feature or single-target filters
        # this is a superset of what they pick, so the check errs on refusing.
        domains = set(handler.platforms)
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
    return constraints if constraints.has_constraints else None


async def async_check_request(
    hass: HomeAssistant,
    policy: TargetPolicy,
    *,
    text: str,
    language: str,
    context: Context,
    device_id: str | None,
) -> CheckResult:
    """Check what a spoken request would touch against the car's policy."""
    agent = async_get_agent(hass, HOME_ASSISTANT_AGENT)
    if not isinstance(agent, DefaultAgent):
        # Cannot happen in a working Home Assistant; without the recognizer
        # nothing can be checked.
        return CheckResult(verdict=Verdict.UNCHECKED)
    user_input = conversation_input(
        text=text,
        context=context,
        conversation_id=None,
        device_id=device_id,
        language=language,
        agent_id=HOME_ASSISTANT_AGENT,
    )
    if await agent.async_recognize_sentence_trigger(user_input) is not None:
        # The owner's own automation sentence: it runs instead of any intent.
        return CheckResult(verdict=Verdict.ALLOWED)
    result = await agent.async_recognize_intent(user_input)
    if result is None or result.unmatched_entities:
        return CheckResult(verdict=Verdict.UNRECOGNIZED)
    intent_name = result.intent.name
    if (
        intent_name.startswith(READ_ONLY_INTENT_PREFIX)
        or intent_name in READ_ONLY_INTENTS
        or intent_name in HARMLESS_INTENTS
        or not policy.restricted
    ):
        return CheckResult(verdict=Verdict.ALLOWED, intent=intent_name)
    constraints = _constraints(hass, intent_name, result.entities)
    if constraints is None:
        return CheckResult(verdict=Verdict.UNCHECKED, intent=intent_name)
    # The same preference the default agent passes to the handler: when a
    # name is ambiguous, the one in the car's own area wins.
    preferences = intent.MatchTargetsPreferences(area_id=car_area_id(hass, device_id))
    match = intent.async_match_targets(hass, constraints, preferences)
    if not match.is_match or not match.states:
        return CheckResult(
            verdict=Verdict.NOT_FOUND, intent=intent_name, target=_spoken_target(result.entities)
        )
    refused = [state for state in match.states if not policy.allows(hass, state)]
    if refused:
        return CheckResult(verdict=Verdict.REFUSED, refused=refused, intent=intent_name)
    return CheckResult(verdict=Verdict.ALLOWED, intent=intent_name)
