"""The few places where the Home Assistant releases this integration supports differ.

Supported: 2025.4 (the oldest, ``hacs.json``) to the newest tested release
(2026.10). Each helper names the release that changed the API it papers
over, so it can be deleted once the oldest supported release has the new one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.components.conversation import ConversationInput
from homeassistant.components.conversation.const import HOME_ASSISTANT_AGENT
from homeassistant.helpers import device_registry as dr

#: The built-in agent's id before 2025.8 removed it (``OLD_HOME_ASSISTANT_AGENT``).
#: Options saved by older versions may still hold it; it is read as
#: :data:`HOME_ASSISTANT_AGENT`, which every supported release resolves.
LEGACY_HOME_ASSISTANT_AGENT = "homeassistant"

_CONVERSATION_INPUT_FIELDS = frozenset(f.name for f in dataclasses.fields(ConversationInput))


def resolve_agent_id(agent_id: str) -> str:
    """The agent id to pass to the conversation API for a configured one."""
    return HOME_ASSISTANT_AGENT if agent_id == LEGACY_HOME_ASSISTANT_AGENT else agent_id


def conversation_input(**fields: Any) -> ConversationInput:
    """A ``ConversationInput`` on any supported release.

    2025.10 added the required field ``satellite_id``; a car's text request
    comes from no satellite, so it is ``None`` where the field exists.
    """
    if "satellite_id" in _CONVERSATION_INPUT_FIELDS:
        fields.setdefault("satellite_id", None)
    return ConversationInput(**fields)


def device_config_entry_ids(device: dr.DeviceEntry) -> set[str]:
    """The config entries a device belongs to.

    Since 2026.x a device belongs to exactly one entry (``config_entry_id``)
    and reading ``config_entries`` logs a deprecation; 2025.4 has only the set.
    """
    entry_id = getattr(device, "config_entry_id", None)
    if isinstance(entry_id, str):
        return {entry_id}
    return set(device.config_entries)
