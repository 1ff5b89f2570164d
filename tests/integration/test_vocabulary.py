"""The Assist vocabulary sent to the car, and resent when it changes."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from unittest.mock import AsyncMock, patch

import pytest
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from bridge.protocol import MessageType
from custom_components.carhub.hub import CarHub
from custom_components.carhub.vocabulary import async_build_vocabulary

from .conftest import PEER, hello, hub


@pytest.fixture
def sent() -> Generator[AsyncMock]:
    """What the hub queues for the car."""
    with patch.object(CarHub, "async_send", autospec=True, return_value=1) as mock:
        yield mock


def vocabularies(sent: AsyncMock) -> list[dict]:
    """The vocabulary bodies sent so far."""
    return [c.args[3] for c in sent.call_args_list if c.args[2] == MessageType.VOCABULARY]


async def test_vocabulary_content(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Exposed names and aliases, and every area; unexposed entities are left out."""
    ents = er.async_get(hass)
    lamp = ents.async_get_or_create("light", "test", "lamp", original_name="Desk lamp")
    ents.async_update_entity(lamp.entity_id, aliases={"Reading light"})
    hass.states.async_set(lamp.entity_id, "off", {"friendly_name": "Desk lamp"})
    hass.states.async_set("light.secret", "off", {"friendly_name": "Secret light"})
    async_expose_entity(hass, "conversation", "light.secret", False)
    ar.async_get(hass).async_create("Kitchen", aliases={"Cookery"})
    vocab = async_build_vocabulary(hass)
    assert vocab["language"] == "en"
    assert {"Desk lamp", "Reading light"} <= set(vocab["entities"])
    assert "Secret light" not in vocab["entities"]
    assert {"Kitchen", "Cookery"} <= set(vocab["areas"])


async def test_sent_after_hello_and_on_change(
    hass: HomeAssistant, init_integration: MockConfigEntry, sent: AsyncMock
) -> None:
    """Sent after hello; a new area is sent (debounced) to connected cars only when changed."""
    await hub(hass).on_connect(PEER, hello())
    await hass.async_block_till_done()
    assert len(vocabularies(sent)) == 1
    with patch.object(CarHub, "connected", return_value=True):
        ar.async_get(hass).async_create("Garage")
        ar.async_get(hass).async_create("Attic")
        await hass.async_block_till_done()
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=5))
        await hass.async_block_till_done()
        sent_now = vocabularies(sent)
        assert len(sent_now) == 2  # two changes, one debounced send
        assert {"Garage", "Attic"} <= set(sent_now[-1]["areas"])
        # A state change that is not a rename sends nothing.
        hass.states.async_set("light.any", "on")
        await hass.async_block_till_done()
        hass.states.async_set("light.any", "off")
        await hass.async_block_till_done()
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=10))
        await hass.async_block_till_done()
        assert len(vocabularies(sent)) == 3  # light.any appeared (new name) ...
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=20))
        await hass.async_block_till_done()
        assert len(vocabularies(sent)) == 3  # ... but on/off changes send nothing more
