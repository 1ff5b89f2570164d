"""Spoken confirmation before the car opens, closes, locks or unlocks anything at home.

A recognizer can hear "unlock the front door" as "lock the front door", or
"is the garage door open" as "open the garage door", with full confidence
(benchmarks/voice.py measured both on English speech). For lights that
costs a light; for doors and locks it costs the house. So a home action on
an entity whose name says door, gate or lock is not carried out at once:
the car asks ("Unlock the front door?") and acts only on "yes" within
:data:`CONFIRM_WINDOW_S`. "no", silence, anything else or a timeout cancel it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from vehicle_agent.voice.intents import IntentMatch, base_language

CONFIRM_WINDOW_S = 10.0
CONFIRM_INTENTS: tuple[str, ...] = ("HassTurnOn", "HassTurnOff")
YES_KEY = "Confirm(yes)"
NO_KEY = "Confirm(no)"

# Words in an entity's name that make its actions need a "yes".
_GUARDED_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("door", "gate", "lock", "garage"),
    "ko": ("문", "차고", "잠금", "도어"),
    "zh": ("门", "锁", "车库"),
}
# Phrases added to the grammar: (key, text).
ANSWERS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": ((YES_KEY, "yes"), (YES_KEY, "yes please"), (NO_KEY, "no"), (NO_KEY, "cancel")),
    "ko": ((YES_KEY, "네"), (YES_KEY, "응"), (NO_KEY, "아니"), (NO_KEY, "취소")),
    "zh": ((YES_KEY, "是"), (YES_KEY, "好的"), (NO_KEY, "不"), (NO_KEY, "取消")),
}


def needs_confirmation(intent: IntentMatch, language: str) -> bool:
    """Whether carrying out *intent* waits for a spoken "yes"."""
    if not intent.name.startswith(CONFIRM_INTENTS):
        return False
    name = str(intent.slots.get("name", "")).lower()
    return any(word in name for word in _GUARDED_WORDS.get(base_language(language), ()))


@dataclass
class PendingAction:
    """A home action waiting for "yes"."""

    intent: IntentMatch
    asked_at: float

    def expired(self, now: float | None = None) -> bool:
        """Past the confirmation window?"""
        return (time.monotonic() if now is None else now) - self.asked_at > CONFIRM_WINDOW_S
