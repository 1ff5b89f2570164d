"""Pronunciations for words the English dictionary lacks (a home's "Roomba", "WLED").

Tried in order:

1. espeak-ng's own letter-to-sound rules (``espeak-ng -x``, already installed
   for the car's speech output), its phoneme mnemonics mapped onto the
   dictionary's ARPAbet phones;
2. the word spelled out letter by letter from the dictionary's entries for
   single letters ("TV" -> "T IY V IY"), the way people say short names.

A word that neither yields is left out with its phrases, and logged.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable

_LOGGER = logging.getLogger(__name__)

Lookup = Callable[[str], str | None]

# espeak-ng's English phoneme mnemonics (docs/phonemes.md of espeak-ng) -> ARPAbet.
# Longest mnemonics are tried first.
_ESPEAK_TO_ARPABET: dict[str, str] = {
    "aI@": "AY ER", "aU@": "AW ER", "i@3": "IY ER",
    "3:": "ER", "A:": "AA", "A@": "AA R", "O:": "AO", "O@": "AO R", "o@": "AO R",
    "e@": "EH R", "i@": "IY AH", "I@": "IH R", "U@": "UH R", "u:": "UW", "i:": "IY",
    "eI": "EY", "aI": "AY", "aU": "AW", "oU": "OW", "OI": "OY", "@L": "AH L",
    "@5": "AH L", "tS": "CH", "dZ": "JH", "aa": "AE", "a#": "AH", "I#": "IH", "I2": "IH",
    "@2": "AH", "i": "IY", "3": "ER", "@": "AH", "a": "AE", "A": "AA", "E": "EH",
    "I": "IH", "0": "AA", "O": "AO", "V": "AH", "U": "UH", "u": "UW", "e": "EH", "o": "OW",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "f": "F", "v": "V",
    "T": "TH", "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "h": "HH", "m": "M",
    "n": "N", "N": "NG", "l": "L", "L": "L", "r": "R", "w": "W", "j": "Y", "x": "K",
}  # fmt: skip
_KEYS = sorted(_ESPEAK_TO_ARPABET, key=len, reverse=True)
# Stress, syllable and length marks, and the glottal stop: no ARPAbet phone.
_IGNORED = set("'`,%=_:!?;|^#-") | {"\u02d0"}


def espeak_phones(word: str) -> str | None:
    """ARPAbet phones for *word* from espeak-ng's rules, or None (no espeak-ng, unmapped)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "-q", "-v", "en-us", "-x", word],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        _LOGGER.debug("espeak-ng could not spell %r: %s", word, exc)
        return None
    return mnemonics_to_arpabet(out)


def mnemonics_to_arpabet(mnemonics: str) -> str | None:
    """espeak-ng ``-x`` output -> space-separated ARPAbet; None if a symbol is unknown."""
    phones: list[str] = []
    text = "".join(mnemonics.split())
    i = 0
    while i < len(text):
        key = next((k for k in _KEYS if text.startswith(k, i)), None)
        if key is not None:
            phones.append(_ESPEAK_TO_ARPABET[key])
            i += len(key)
        elif text[i] in _IGNORED:
            i += 1
        else:
            return None
    return " ".join(phones) or None


def spelled_phones(word: str, lookup: Lookup) -> str | None:
    """*word* said letter by letter, from the dictionary's single-letter entries."""
    letters = [c for c in word.lower() if c.isalnum()]
    phones = [lookup(c) for c in letters]
    if not letters or any(p is None for p in phones):
        return None
    return " ".join(p for p in phones if p)


def guess_phones(word: str, lookup: Lookup) -> str | None:
    """A pronunciation for an unknown *word* (see the module docstring)."""
    if len(word) <= 3 and word.isalpha():  # "tv", "ac": people spell short names
        return spelled_phones(word, lookup) or espeak_phones(word)
    return espeak_phones(word) or spelled_phones(word, lookup)
