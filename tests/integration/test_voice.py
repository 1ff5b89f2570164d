"""Voice requests from the car: allowed, refused by exposure, refused per car, failures."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any, Literal
from unittest.mock import AsyncMock, patch

import pytest
from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import floor_registry as fr
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
from custom_components.carhub.restrictions import CheckResult, Verdict

from .conftest import PEER, car_device_entry, hub, message


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
        "custom_components.carhub.voice.async_check_request",
        return_value=CheckResult(
            verdict=Verdict.REFUSED, refused=[hass.states.get("cover.garage_door")]
        ),
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


def _add_entity(
    hass: HomeAssistant, domain: str, key: str, name: str, area_id: str, state: str, **attrs: Any
) -> str:
    """An exposed entity in an area."""
    ents = er.async_get(hass)
    entry = ents.async_get_or_create(
        domain, "test", key, suggested_object_id=key, original_name=name
    )
    ents.async_update_entity(entry.entity_id, area_id=area_id)
    hass.states.async_set(entry.entity_id, state, {"friendly_name": name, **attrs})
    async_expose_entity(hass, "conversation", entry.entity_id, True)
    return entry.entity_id


def _area_id(hass: HomeAssistant, name: str) -> str:
    area = ar.async_get(hass).async_get_area_by_name(name)
    assert area is not None
    return area.id


def _put_car_in(hass: HomeAssistant, area_id: str | None) -> None:
    device = car_device_entry(hass)
    assert device is not None
    dr.async_get(hass).async_update_device(device.id, area_id=area_id)


async def test_no_target_intent_checked(
    hass: HomeAssistant, init_integration: MockConfigEntry, home: dict[str, list], sent: AsyncMock
) -> None:
    """A request without a target slot is checked against what the handler would pick."""
    assert await async_setup_component(hass, "climate", {})
    await hass.async_block_till_done()
    _add_entity(
        hass,
        "climate",
        "thermostat",
        "Thermostat",
        _area_id(hass, "Bedroom"),
        "heat",
        supported_features=1,
        temperature=20,
    )
    set_temp = async_mock_service(hass, "climate", "set_temperature")
    hass.config_entries.async_update_entry(
        init_integration, options={CONF_ALLOWED_AREAS: [_area_id(hass, "Kitchen")]}
    )
    # Since 2026.x a request without a target means the device's own area,
    # so the car sits where the thermostat is (2025.4 picks it either way).
    _put_car_in(hass, _area_id(hass, "Bedroom"))
    await ask(hass, "set the temperature to 25 degrees")
    assert set_temp == []
    assert replies(sent)[-1] == {
        "request_id": "r-set the temperature to 25 degrees",
        "text": "Sorry, Thermostat can't be controlled from the car.",
        "success": False,
    }
    # Without the area limit (the default ban on locks etc. still applies) it runs.
    hass.config_entries.async_update_entry(init_integration, options={})
    await ask(hass, "set the temperature to 25 degrees")
    assert [c.data["temperature"] for c in set_temp] == [25]
    assert replies(sent)[-1]["success"] is True


async def test_target_that_cannot_be_resolved_is_refused(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock
) -> None:
    """A recognized intent whose targets cannot be determined is refused (fail closed)."""
    with patch(
        "custom_components.carhub.restrictions.intent.async_get", return_value=[]
    ):  # no handler known for the intent: its targets are unknown
        await ask(hass, "turn on the kitchen light")
    assert home["light_on"] == []
    assert replies(sent)[-1]["text"] == (
        "Sorry, I couldn't check what that would touch, so I did nothing."
    )


async def test_duplicate_names_car_in_area(
    hass: HomeAssistant, init_integration: MockConfigEntry, home: dict[str, list], sent: AsyncMock
) -> None:
    """A name two entities share resolves to the one in the car's area, as the agent does."""
    kitchen, bedroom = _area_id(hass, "Kitchen"), _area_id(hass, "Bedroom")
    _add_entity(hass, "light", "reading_kitchen", "Reading light", kitchen, "off")
    _add_entity(hass, "light", "reading_bedroom", "Reading light", bedroom, "off")
    hass.config_entries.async_update_entry(
        init_integration, options={CONF_ALLOWED_AREAS: [kitchen]}
    )
    # The car's device sits in the bedroom: the agent would pick the bedroom's one.
    _put_car_in(hass, bedroom)
    await ask(hass, "turn on the reading light")
    assert home["light_on"] == []
    assert replies(sent)[-1]["text"] == "Sorry, Reading light can't be controlled from the car."
    _put_car_in(hass, kitchen)
    await ask(hass, "turn on the reading light")
    assert [c.data["entity_id"] for c in home["light_on"]] == [["light.reading_kitchen"]]
    assert replies(sent)[-1]["success"] is True


async def test_two_targets_one_refused(
    hass: HomeAssistant, init_integration: MockConfigEntry, home: dict[str, list], sent: AsyncMock
) -> None:
    """A sentence touching two entities is refused as a whole if one is not allowed."""
    kitchen, bedroom = _area_id(hass, "Kitchen"), _area_id(hass, "Bedroom")
    # A floor spans both areas: since 2026.x "all the lights" with no area or
    # floor means the device's area only, so the floor names the two.
    floor = fr.async_get(hass).async_create("Ground floor")
    for area_id in (kitchen, bedroom):
        ar.async_get(hass).async_update(area_id, floor_id=floor.floor_id)
    hass.config_entries.async_update_entry(
        init_integration, options={CONF_ALLOWED_AREAS: [kitchen]}
    )
    await ask(hass, "turn on all the lights on the ground floor")
    assert home["light_on"] == []
    assert replies(sent)[-1]["text"] == "Sorry, Bedroom lamp can't be controlled from the car."


class FakeLLMAgent(conversation.AbstractConversationAgent):
    """A stand-in for an LLM agent: records what it is asked, acts on nothing."""

    def __init__(self) -> None:
        """No requests yet."""
        self.texts: list[str] = []

    @property
    def supported_languages(self) -> Literal["*"]:
        """Every language."""
        return "*"

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Answer without doing anything."""
        self.texts.append(user_input.text)
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_speech("LLM answer")
        return conversation.ConversationResult(response=response)


@pytest.fixture
def llm_agent(hass: HomeAssistant, init_integration: MockConfigEntry) -> FakeLLMAgent:
    """A non-default agent chosen for the car."""
    agent_entry = MockConfigEntry(domain="test_llm")
    agent_entry.add_to_hass(hass)
    agent = FakeLLMAgent()
    conversation.async_set_agent(hass, agent_entry, agent)
    hass.config_entries.async_update_entry(
        init_integration, options={"agent_id": agent_entry.entry_id}
    )
    return agent


async def test_llm_agent_restricted(
    hass: HomeAssistant, home: dict[str, list], sent: AsyncMock, llm_agent: FakeLLMAgent
) -> None:
    """With restrictions (the default), an LLM agent never gets the request: unchecked
    free text is refused, sensitive targets are refused, checked ones run built-in."""
    await ask(hass, "make it cosy and unlock the front door")
    assert replies(sent)[-1] == {
        "request_id": "r-make it cosy and unlock the front door",
        "text": "Sorry, I couldn't check what that would touch, so I did nothing.",
        "success": False,
    }
    await ask(hass, "open the garage door")
    assert home["cover_open"] == []
    assert replies(sent)[-1]["success"] is False
    await ask(hass, "turn on the kitchen light")
    assert [c.data["entity_id"] for c in home["light_on"]] == [["light.kitchen_light"]]
    assert replies(sent)[-1]["success"] is True
    assert llm_agent.texts == []


async def test_llm_agent_unrestricted(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    home: dict[str, list],
    sent: AsyncMock,
    llm_agent: FakeLLMAgent,
) -> None:
    """With every limit lifted by the owner, the chosen LLM agent answers freely."""
    hass.config_entries.async_update_entry(
        init_integration,
        options={
            **init_integration.options,
            CONF_ALLOWED_SENSITIVE: ["lock", "alarm_control_panel", "garage_door"],
        },
    )
    await ask(hass, "make it cosy")
    assert llm_agent.texts == ["make it cosy"]
    assert replies(sent)[-1] == {
        "request_id": "r-make it cosy",
        "text": "LLM answer",
        "success": True,
    }
