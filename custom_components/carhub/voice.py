"""Answer a driver's spoken request with Home Assistant's conversation API.

Every request gets a ``voice_reply``: the agent's own speech, or a
spoken-style refusal or apology from this integration's translations (in the
request's language where we have it). Never silence.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent, translation

from bridge.errors import BridgeError
from bridge.protocol import MessageType

from .const import CONF_AGENT_ID, DEFAULT_AGENT_ID, DOMAIN, LOGGER
from .restrictions import TargetPolicy, async_disallowed_targets

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
}


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
    context = Context()
    refused = await async_disallowed_targets(
        hass,
        TargetPolicy.from_options(options),
        text=text,
        language=language,
        context=context,
        device_id=coordinator.device_id,
    )
    if refused:
        names = _join([state.name for state in refused])
        LOGGER.info("Refused voice request from %s: %s", coordinator.config_entry.title, names)
        return await async_message(hass, language, "voice_not_allowed", targets=names), False
    result = await conversation.async_converse(
        hass,
        text,
        None,
        context,
        language=language,
        agent_id=agent_id,
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
