"""Intent recognition with hassil over sentence templates in Home Assistant's format.

Templates live in ``vehicle_agent/sentences/<language>/*.yaml``. Intents whose
name starts with ``Car`` are answered in the car; the others (``Hass*``) are
home requests sent to Home Assistant. ``{name}`` and ``{area}`` are filled
with the home's exposed entity and area names (the ``vocabulary`` message).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hassil.intents import Intents, TextSlotList
from hassil.recognize import recognize
from hassil.sample import sample_intents
from hassil.util import merge_dict

from vehicle_agent.voice.errors import GrammarError

_LOGGER = logging.getLogger(__name__)

SENTENCES_DIR = Path(__file__).resolve().parent.parent / "sentences"
LANGUAGES: tuple[str, ...] = ("en", "ko", "zh")
CAR_PREFIX = "Car"
_PLACEHOLDER = "\u2205"


@dataclass(frozen=True, kw_only=True)
class IntentMatch:
    """A recognised intent with its slot values."""

    name: str
    slots: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def is_car(self) -> bool:
        """Answered in the car (not a home request)."""
        return self.name.startswith(CAR_PREFIX)

    @property
    def key(self) -> str:
        """Identity of the meaning: intent plus sorted slot values."""
        slots = ",".join(f"{k}={self.slots[k]}" for k in sorted(self.slots))
        return f"{self.name}({slots})"


def base_language(language: str) -> str:
    """``zh-cn`` -> ``zh``, ``en_US`` -> ``en``."""
    return language.replace("_", "-").split("-")[0].lower()


class SentenceSet:
    """The car's sentence templates for one language plus the home's names."""

    def __init__(self, language: str, directory: Path | None = None) -> None:
        self.language = base_language(language)
        folder = (directory or SENTENCES_DIR) / self.language
        files = sorted(folder.glob("*.yaml"))
        if not files:
            raise GrammarError(f"no sentence templates for language {language!r} in {folder}")
        merged: dict[str, Any] = {}
        for path in files:
            try:
                with path.open(encoding="utf-8") as fh:
                    merge_dict(merged, yaml.safe_load(fh) or {})  # type: ignore[no-untyped-call]
            except (OSError, yaml.YAMLError) as exc:
                raise GrammarError(f"cannot read {path}: {exc}") from exc
        try:
            self._intents = Intents.from_dict(merged)
        except Exception as exc:  # hassil raises plain exceptions on template errors
            raise GrammarError(f"invalid sentence templates in {folder}: {exc}") from exc
        self.entities: list[str] = []
        self.areas: list[str] = []
        self._slot_lists: dict[str, Any] = {}
        self.set_vocabulary([], [])

    @property
    def intent_names(self) -> list[str]:
        """Every intent the templates define."""
        return sorted(self._intents.intents)

    def set_vocabulary(self, entities: Sequence[object], areas: Sequence[object]) -> None:
        """Use the home's exposed entity and area names for ``{name}`` / ``{area}``."""
        self.entities = _clean_names(entities)
        self.areas = _clean_names(areas)
        self._slot_lists = {
            "name": TextSlotList.from_strings(self.entities or [_PLACEHOLDER]),
            "area": TextSlotList.from_strings(self.areas or [_PLACEHOLDER]),
        }

    def recognize(self, text: str) -> IntentMatch | None:
        """The intent *text* expresses, or None."""
        result = recognize(text, self._intents, slot_lists=self._slot_lists, language=self.language)
        if result is None:
            return None
        slots = {name: _plain(entity.value) for name, entity in result.entities.items()}
        return IntentMatch(name=result.intent.name, slots=slots, text=text)

    def sample(self, max_per_intent: int = 400) -> Iterable[tuple[str, str]]:
        """Every sentence the templates can produce: ``(intent, text)``."""
        for intent, text in sample_intents(
            self._intents,
            slot_lists=self._slot_lists,
            max_sentences_per_intent=max_per_intent,
            language=self.language,
        ):
            # "-" stands in for an empty name/area list: such sentences need the home's names.
            if _PLACEHOLDER in text:
                continue
            yield intent, text


def _plain(value: object) -> object:
    # hassil gives 50.0 for "50" but 50 for "오십": one meaning, one value.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _clean_names(names: Iterable[object]) -> list[str]:
    out: list[str] = []
    for name in names:
        if not isinstance(name, str):
            _LOGGER.warning("ignoring a non-text vocabulary entry: %r", name)
            continue
        cleaned = " ".join(name.split())
        if cleaned and cleaned not in out:
            out.append(cleaned)
    return out
