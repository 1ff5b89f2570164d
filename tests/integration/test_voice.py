"""Voice requests from the car: allowed, refused by exposure, refused per car, failures."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import intent
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_mock_service

from bridge.protocol import MessageType
from custom_components.carhub.const import (
    CONF_ALLOWED_AREAS,
    CONF_ALLOWED_DOMAINS,
    CONF_ALLOWED_SENSITIVE,
)
from custom_components.carhub.hub import CarHub

from .conftest import PEER, hub, message


@pytest.fixture
def sent() -> Generator[AsyncMock]:
    """Every message the hub queues for the car."""
    with patch.object(CarHub, "async_send", autospec=True, return_value=1) as mock:
        yield mock


def replies(sent: AsyncMock) -> list[dict[str, Any]]:
    """The voice_reply bodies queued so far."""
    return [c.args[3] for c in sent.call_args_list if c.args[2] == MessageType.VOICE_REPLY]


@pytest.fixture
async def home(hass: HomeAssistant, init_integration: MockConfigEntry) -> dict[str, list]:
    """A small home: lights in two areas, a garage door and a front door lock."""
    areas = ar.async_get(hass)
    ents = er.async_get(hass)
    kitchen = areas.async_create("Kitchen")
    bedroom = areas.async_create("Bedroom")
    garage = areas.async_create("Garage")

    def add(domain: str, key: str, name: str, area: str, state: str, **attrs: Any) -> str:
        entry = ents.async_get_or_create(
            domain,
            "test",
            key,
            suggested_object_id=key,
            original_name=name,
            original_device_class=attrs.get("device_class"),
        )
        ents.async_update_entity(entry.entity_id, area_id=area)
        hass.states.async_set(entry.entity_id, state, {"friendly_name": name, **attrs})
        return entry.entity_id

    add("light", "kitchen_light", "Kitchen light", kitchen.id, "off")
    add("light", "bedroom_lamp", "Bedroom lamp", bedroom.id, "off")
    add("light", "porch_light", "Porch light", kitchen.id, "off")
    add(
        "cover",
        "garage_door",
        "Garage door",
        garage.id,
        "closed",
        device_class="garage",
        supported_features=3,
    )
    add("lock", "front_door", "Front door", kitchen.id, "locked")
    async_expose_entity(hass, "conversation", "lock.front_door", True)
    async_expose_entity(hass, "conversation", "light.porch_light", False)
    await hass.async_block_till_done()
    return {
        "light_on": async_mock_service(hass, "light", "turn_on"),
        "cover_open": async_mock_service(hass, "cover", "open_cover"),
        "unlock": async_mock_service(hass, "lock", "unlock"),
    }


async def ask(hass: HomeAssistant, text: str, *, age: float = 0.0) -> None:
    """The car sends a voice request; wait for it to be answered."""
    env = message(
        MessageType.VOICE_REQUEST,
        {"request_id": f"r-{text}", "text": text, "language": "en"},
        ts=time.time() - age,
    )
    await hub(hass).on_message(PEER, env)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_allowed_request(hass: HomeAssistant, home: dict[str, list], sent: AsyncMock) -> None:
    """An exposed light is switched on and the agent's answer goes back to the car."""
    await ask(hass, "turn on the kitchen light")
    assert len(home["light_on"]) == 1
    assert home["light_on"][0].data["entity_id"] == ["light.kitchen_light"]
    [reply] = replies(sent)
    assert reply["request_id"] == "r-turn on the kitchen light"
    assert reply["success"] is True
    assert reply["text"]


async def test_refused_by_exposure(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """An entity not exposed to Assist cannot be touched; the car still gets an answer."""
    await ask(hass, "turn on the porch light")
    assert home["light_on"] == []
    [reply] = replies(sent)
    assert reply["success"] is False
    assert "porch light" in reply["text"].lower()


async def test_garage_door_refused_by_default(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """Garage doors are off limits for cars unless the owner allows them."""
    await ask(hass, "open the garage door")
    assert home["cover_open"] == []
    [reply] = replies(sent)
    assert reply == {
        "request_id": "r-open the garage door",
        "text": "Sorry, Garage door can't be controlled from the car.",
        "success": False,
    }


async def test_garage_door_allowed_by_owner(
    hass: HomeAssistant, init_integration: MockConfigEntry, home: dict[str, list], sent: AsyncMock
) -> None:
    """With garage doors allowed in the options the same request works."""
    hass.config_entries.async_update_entry(
        init_integration, options={CONF_ALLOWED_SENSITIVE: ["garage_door"]}
    )
    await ask(hass, "open the garage door")
    assert len(home["cover_open"]) == 1
    assert replies(sent)[0]["success"] is True


async def test_lock_refused_by_default(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """Locks are off limits by default, even when exposed."""
    await ask(hass, "unlock the front door")
    assert home["unlock"] == []
    [reply] = replies(sent)
    assert reply["success"] is False
    assert "Front door" in reply["text"]


async def test_refused_by_area_restriction(
    hass: HomeAssistant, init_integration: MockConfigEntry, home: dict[str, list], sent: AsyncMock
) -> None:
    """A car restricted to the kitchen cannot switch the bedroom lamp."""
    kitchen = ar.async_get(hass).async_get_area_by_name("Kitchen")
    hass.config_entries.async_update_entry(
        init_integration, options={CONF_ALLOWED_AREAS: [kitchen.id]}
    )
    await ask(hass, "turn on the bedroom lamp")
    assert home["light_on"] == []
    assert replies(sent)[0]["text"] == "Sorry, Bedroom lamp can't be controlled from the car."
    await ask(hass, "turn on the kitchen light")
    assert len(home["light_on"]) == 1


async def test_refused_by_domain_restriction(
    hass: HomeAssistant, init_integration: MockConfigEntry, home: dict[str, list], sent: AsyncMock
) -> None:
    """A car restricted to covers cannot switch lights, even with garage doors allowed."""
    hass.config_entries.async_update_entry(
        init_integration,
        options={CONF_ALLOWED_DOMAINS: ["cover"], CONF_ALLOWED_SENSITIVE: ["garage_door"]},
    )
    await ask(hass, "turn on the kitchen light")
    assert home["light_on"] == []
    assert replies(sent)[0]["success"] is False
    await ask(hass, "open the garage door")
    assert len(home["cover_open"]) == 1


async def test_read_only_question_allowed(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """Asking about a sensitive entity is not restricted: nothing is touched."""
    await ask(hass, "is the garage door open")
    [reply] = replies(sent)
    assert reply["success"] is True
    assert "can't be controlled" not in reply["text"]


async def test_stale_request_not_executed(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """A request replayed long after it was spoken is answered, not carried out."""
    await ask(hass, "turn on the kitchen light", age=600)
    assert home["light_on"] == []
    [reply] = replies(sent)
    assert reply["success"] is False
    assert "too late" in reply["text"]


async def test_agent_failure_still_answers(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """An exception in the agent becomes a spoken apology, never silence."""
    with patch(
        "custom_components.carhub.voice.conversation.async_converse",
        side_effect=intent.IntentHandleError("agent down"),
    ):
        await ask(hass, "turn on the kitchen light")
    [reply] = replies(sent)
    assert reply == {
        "request_id": "r-turn on the kitchen light",
        "text": "Sorry, something went wrong at home.",
        "success": False,
    }


async def test_unexpected_agent_error_still_answers(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """Even a bug in an agent produces a reply."""
    with patch(
        "custom_components.carhub.voice.conversation.async_converse",
        side_effect=ValueError("bug"),
    ):
        await ask(hass, "what time is it")
    assert replies(sent)[0]["success"] is False


async def test_reply_in_request_language(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """Refusals use the integration's translations for the request's language."""
    env = message(
        MessageType.VOICE_REQUEST,
        {"request_id": "de-1", "text": "öffne das Garage door", "language": "de"},
    )
    with patch(
        "custom_components.carhub.voice.async_disallowed_targets",
        return_value=[hass.states.get("cover.garage_door")],
    ):
        await hub(hass).on_message(PEER, env)
        await hass.async_block_till_done(wait_background_tasks=True)
    [reply] = replies(sent)
    assert reply["text"] == "Entschuldigung, Garage door kann nicht vom Auto aus gesteuert werden."


async def test_malformed_request_ignored(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """A voice request without text is dropped with a log line, nothing crashes."""
    await hub(hass).on_message(PEER, message(MessageType.VOICE_REQUEST, {"request_id": 5}))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert replies(sent) == []


async def test_owner_sentence_trigger_not_restricted(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """An automation with a conversation trigger is the owner's choice: it runs."""
    calls = async_mock_service(hass, "test", "garage")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "trigger": {"platform": "conversation", "command": "open the garage door"},
                "action": {"service": "test.garage"},
            }
        },
    )
    await ask(hass, "open the garage door")
    assert len(calls) == 1
    assert replies(sent)[0]["success"] is True


async def test_korean_request(
    hass: HomeAssistant, init_integration: MockConfigEntry, sent: AsyncMock
) -> None:
    """A request in the car's language (Korean, as the demo's vosk model) is carried out."""
    living = ar.async_get(hass).async_create("거실")
    entry = er.async_get(hass).async_get_or_create(
        "light", "test", "living", suggested_object_id="living_room_light", original_name="조명"
    )
    er.async_get(hass).async_update_entity(entry.entity_id, area_id=living.id)
    hass.states.async_set(entry.entity_id, "off", {"friendly_name": "조명"})
    calls = async_mock_service(hass, "light", "turn_on")
    env = message(
        MessageType.VOICE_REQUEST, {"request_id": "ko-1", "text": "거실 조명 켜", "language": "ko"}
    )
    await hub(hass).on_message(PEER, env)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert [c.data["entity_id"] for c in calls] == [[entry.entity_id]]
    [reply] = replies(sent)
    assert reply["success"] is True
