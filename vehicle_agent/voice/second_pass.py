"""A second look before a home action: the chosen phrase against its rivals.

The first pass searches the whole grammar with a beam, and a beam can drop
the right path early: in benchmarks/voice.py pocketsphinx carried out "turn
off the porch light" as "turn on ..." for voices it was not tuned on, while
the same audio scored against just the two phrases always preferred the one
that was said. So before an action is carried out, the engine decodes the
utterance again twice: once forced onto the chosen phrase, once onto its
rivals only. The rivals of a phrase are the same sentence with the opposite
verb (on/off, open/close, lock/unlock) and, for a command with a number, the
same sentence with every other value. When the best rival fits at least as
well (per frame, within :data:`MIN_MARGIN`), the car refuses instead of
guessing.
"""

from __future__ import annotations

from collections.abc import Sequence

from vehicle_agent.voice.matcher import Phrase
from vehicle_agent.voice.numeric_split import family_key

# Whole words swapped to make the opposite action, per language.
OPPOSITES: dict[str, dict[str, str]] = {
    "en": {
        "on": "off",
        "off": "on",
        "open": "close",
        "close": "open",
        "lock": "unlock",
        "unlock": "lock",
    },
}
# Chosen-phrase score minus best-rival score, per frame (natural-log units of
# the decoder): at or below this the utterance is refused. Forced scores of the
# phrase said against its opposite ranged 0.1e-4 to 5e-4 on 36 utterances.
MIN_MARGIN = 0.2e-4


def rivals(chosen: Phrase, phrases: Sequence[Phrase], language: str) -> list[str]:
    """Spoken forms of the phrases that would do the opposite or set another value."""
    swap = OPPOSITES.get(language, {})
    words = chosen.spoken.split()
    opposite = " ".join(swap.get(w, w) for w in words)
    family = family_key(chosen.key)
    out: set[str] = set()
    for p in phrases:
        if p.key == chosen.key:
            continue
        if p.spoken == opposite or (family is not None and family_key(p.key) == family):
            out.add(p.spoken)
    return sorted(out)
