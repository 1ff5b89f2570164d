"""Answer a driver's spoken request with Home Assistant's conversation API.

Every request gets a ``voice_reply``: the agent's own speech, or a
spoken-style refusal or apology from this integration's translations (in the
request's language where we have it). Never silence.

Which agent runs: the one chosen in the options, except while the car is
restricted (the default) and that agent is not Home Assistant's built-in one.
An LLM agent cannot be limited per request in Home Assistant 2025.4 (its tools
see every exposed entity), so then only what the per-car check understood and
allowed is carried out, and it is carried out by the built-in agent, which
acts on exactly the intent that was checked. Anything else is refused.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from homeassistant.components import conversation
from homeassistant.components.conversation.const import HOME_ASSISTANT_AGENT
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent, translation

from bridge.errors import BridgeError
from bridge.protocol import MessageType

from .compat import LEGACY_HOME_ASSISTANT_AGENT, resolve_agent_id
from .const import CONF_AGENT_ID, DEFAULT_AGENT_ID, DOMAIN, LOGGER
from .restrictions import TargetPolicy, Verdict, async_check_request

if TYPE_CHECKING:
    from .coordinator import CarHubCoordinator

# A request older than this (replayed after the link was down) is not
# carried out: the driver has long moved on, and acting late is surprising.
VOICE_MAX_AGE_S = 60.0

FALLBACK_MESSAGES = {
    "voice_not_allowed": "Sorry, {targets} can't be controlled from the car.",
    "voice_failed": "Sorry, something went wrong at home.",
    "voice_too_old": "Sorry, that request reached home too late, so I did nothing.",
    "voice_done": "Done.",
    "voice_unchecked": "Sorry, I couldn't check what that would touch, so I did nothing.",
    "voice_unavailable": "Sorry, this car can't use the home right now.",
    "voice_not_found": "Sorry, I couldn't find {target}, so I did nothing.",
}
BUILTIN_AGENT_IDS = frozenset({HOME_ASSISTANT_AGENT, LEGACY_HOME_ASSISTANT_AGENT})


async def async_message(hass: HomeAssistant, language: str, key: str, **placeholders: str) -> str:
    """A reply sentence from the integration's translations (English fallback)."""
    text: str | None = None
    for lang in dict.fromkeys((language, language.split("-")[0], "en")):
        strings = await translation.async_get_translations(hass, lang, "exceptions", {DOMAIN})
        text = strings.get(f"component.{DOMAIN}.exceptions.{key}.message")
        if text:
            break
    template = text or FALLBACK_MESSAGES[key]
    try:
        return template.format(**placeholders)
    except (KeyError, IndexError, ValueError):
        return FALLBACK_MESSAGES[key].format(**placeholders)


def _join(names: list[str]) -> str:
    unique = list(dict.fromkeys(names))
    if len(unique) <= 1:
        return "".join(unique)
    return ", ".join(unique[:-1]) + " & " + unique[-1]


async def async_process_voice_request(
    hass: HomeAssistant,
    coordinator: CarHubCoordinator,
    *,
    text: str,
    language: str,
    sent_at: float,
) -> tuple[str, bool]:
    """Run one request through the per-car checks and the conversation agent."""
    if time.time() - sent_at > VOICE_MAX_AGE_S:
        return await async_message(hass, language, "voice_too_old"), False
    options = coordinator.config_entry.options
    agent_id = options.get(CONF_AGENT_ID) or DEFAULT_AGENT_ID
    policy = TargetPolicy.from_options(options)
    context = Context()
    check = await async_check_request(
        hass,
        policy,
        text=text,
        language=language,
        context=context,
        device_id=coordinator.device_id,
    )
    title = coordinator.config_entry.title
    if check.verdict is Verdict.REFUSED:
        names = _join([state.name for state in check.refused])
        LOGGER.info("Refused voice request from %s: %s", title, names)
        return await async_message(hass, language, "voice_not_allowed", targets=names), False
    if check.verdict is Verdict.NOT_FOUND:
        LOGGER.info("Refused voice request from %s: no target found", title)
        if check.target:
            return await async_message(
                hass, language, "voice_not_found", target=check.target
            ), False
        return await async_message(hass, language, "voice_unchecked"), False
    if check.verdict is Verdict.UNCHECKED or (
        check.verdict is Verdict.UNRECOGNIZED
        and policy.restricted
        and agent_id not in BUILTIN_AGENT_IDS
    ):
        # Restricted, and what it would touch is unknown: fail closed.
        LOGGER.info("Refused unchecked voice request from %s (%s)", title, check.intent)
        return await async_message(hass, language, "voice_unchecked"), False
    if policy.restricted and agent_id not in BUILTIN_AGENT_IDS:
        # Checked and allowed: run exactly that with the built-in agent, never
        # an LLM that could act on other exposed entities.
        agent_id = HOME_ASSISTANT_AGENT
    result = await conversation.async_converse(
        hass,
        text,
        None,
        context,
        language=language,
        agent_id=resolve_agent_id(agent_id),
        device_id=coordinator.device_id,
    )
    response = result.response
    success = response.response_type != intent.IntentResponseType.ERROR
    speech: Any = response.speech.get("plain", {}).get("speech")
    if not isinstance(speech, str) or not speech.strip():
        speech = await async_message(hass, language, "voice_done" if success else "voice_failed")
    return speech, success


async def async_answer_voice_request(
    hass: HomeAssistant,
    coordinator: CarHubCoordinator,
    *,
    request_id: str,
    text: str,
    language: str | None,
    sent_at: float,
) -> None:
    """Process a voice request and send the car its ``voice_reply``."""
    lang = language or hass.config.language
    try:
        reply, success = await async_process_voice_request(
            hass, coordinator, text=text, language=lang, sent_at=sent_at
        )
    except HomeAssistantError as err:
        LOGGER.warning("Voice request from %s failed: %s", coordinator.config_entry.title, err)
        reply, success = await async_message(hass, lang, "voice_failed"), False
    except Exception:
        # An agent bug must still produce a spoken answer in the car.
        LOGGER.exception("Voice request from %s failed", coordinator.config_entry.title)
        reply, success = await async_message(hass, lang, "voice_failed"), False
    try:
        await coordinator.hub.async_send(
            coordinator.vehicle_id,
            MessageType.VOICE_REPLY,
            {"request_id": request_id, "text": reply, "success": success},
        )
    except BridgeError as err:
        LOGGER.warning("Could not queue the voice reply for %s: %s", coordinator.vehicle_id, err)
