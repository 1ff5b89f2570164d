"""The home's vocabulary (entity and area names), kept on disk across restarts.

Home Assistant sends the names when the link comes up. Without a copy on
disk a car that restarts out of reach of home would not know "거실 조명" at
all and answer "sorry, I did not catch that" instead of "home is not
reachable". The file is replaced atomically (write, fsync, rename) so a power
cut leaves either the old or the new vocabulary, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

FILE_NAME = "voice-vocabulary.json"


class VocabularyError(ValueError):
    """A vocabulary message or file that is not ``{language, entities, areas}``."""


def validate(body: object) -> dict[str, Any]:
    """The vocabulary as ``{"language": str, "entities": [str], "areas": [str]}``."""
    if not isinstance(body, dict):
        raise VocabularyError("vocabulary must be an object")
    out: dict[str, Any] = {}
    language = body.get("language")
    if language is not None and not isinstance(language, str):
        raise VocabularyError("vocabulary 'language' must be a string")
    out["language"] = language
    for key in ("entities", "areas"):
        names = body.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise VocabularyError(f"vocabulary {key!r} must be a list of names")
        out[key] = names
    return out


class VocabularyFile:
    """Load and save the last vocabulary a home sent."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME

    def load(self) -> dict[str, Any] | None:
        """The saved vocabulary, or None (missing, unreadable or damaged: logged)."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            _LOGGER.error("cannot read the saved home vocabulary %s: %s", self.path, exc)
            return None
        try:
            return validate(json.loads(raw))
        except (ValueError, VocabularyError) as exc:
            _LOGGER.error(
                "ignoring the saved home vocabulary %s (%s); it is replaced when a home connects",
                self.path,
                exc,
            )
            return None

    def save(self, vocabulary: dict[str, Any]) -> None:
        """Replace the saved vocabulary atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps(validate(vocabulary), ensure_ascii=False, indent=1)
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
