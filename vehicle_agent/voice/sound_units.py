"""Text as the sounds a recogniser hears, and how alike two sounds are.

The matcher compares what vosk wrote with what the grammar says by edit
distance. Comparing spellings punishes differences nobody can hear, and
treating every different letter as equally different ignores how the model
errs. Korean spelling makes both matter:

* An initial ㅇ is silent: "아" starts with the vowel.
* A final consonant before a vowel is pronounced as the next syllable's
  initial (liaison): "닫아" sounds like "다다", and vosk's words split
  wherever its lexicon does ("닫 아", "다 다"). So a final is written as the
  same sound as the initial consonant; only the final ㅇ (ng) is a sound of
  its own ("ŋ"). A double final is the consonant that is pronounced, or
  both of its consonants before a vowel ("없어" sounds like "업서"); a final
  ㅎ before a vowel is silent ("좋아" sounds like "조아").
* Plain, tense and aspirated consonants of one place (ㄱ ㄲ ㅋ, ㄷ ㄸ ㅌ,
  ㅂ ㅃ ㅍ, ㅈ ㅉ ㅊ, ㅅ ㅆ) and vowels that differ by lip rounding or height
  only (ㅓ ㅗ, ㅐ ㅔ, ㅡ ㅜ...) are the small model's usual confusions (in the
  benchmark "차고" comes back as "도", "닫아" as "다"). Swapping within such a
  group costs :data:`NEAR_COST` instead of 1; the plain stops ㄱ ㄷ ㅂ
  among themselves cost a little more.

benchmarks/voice.py rows decoded whole (192 utterances, accept rules re-tuned
for each variant): right meaning ranked first 136/168 with letter jamo, 144
with liaison units, 147 with liaison units and near costs; accepted and right
at no false accept on the 24 out-of-grammar utterances 91 -> 108.

Text in other scripts passes through as lower-case characters, every
difference costing 1.
"""

from __future__ import annotations

from functools import cache

_HANGUL_BASE = 0xAC00
_HANGUL_COUNT = 11172
_INITIALS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
_FINALS = (
    "", "ㄱ", "ㄲ", "ㄳ", "ㄴ", "ㄵ", "ㄶ", "ㄷ", "ㄹ", "ㄺ", "ㄻ", "ㄼ", "ㄽ", "ㄾ",
    "ㄿ", "ㅀ", "ㅁ", "ㅂ", "ㅄ", "ㅅ", "ㅆ", "ㅇ", "ㅈ", "ㅊ", "ㅋ", "ㅌ", "ㅍ", "ㅎ",
)  # fmt: skip
# Before a consonant or at the end, a double final is pronounced as one of
# its consonants; final ㅇ is "ng".
_FINAL_SOUND = {
    "ㄳ": "ㄱ", "ㄵ": "ㄴ", "ㄶ": "ㄴ", "ㄺ": "ㄱ", "ㄻ": "ㅁ", "ㄼ": "ㄹ", "ㄽ": "ㄹ",
    "ㄾ": "ㄹ", "ㄿ": "ㅂ", "ㅀ": "ㄹ", "ㅄ": "ㅂ", "ㅇ": "ŋ",
}  # fmt: skip
# Before a vowel, both consonants of a double final are heard (the second one
# starts the next syllable), and ㅎ is not.
_FINAL_BEFORE_VOWEL = {
    "ㄳ": "ㄱㅅ", "ㄵ": "ㄴㅈ", "ㄶ": "ㄴ", "ㄺ": "ㄹㄱ", "ㄻ": "ㄹㅁ", "ㄼ": "ㄹㅂ",
    "ㄽ": "ㄹㅅ", "ㄾ": "ㄹㅌ", "ㄿ": "ㄹㅍ", "ㅀ": "ㄹ", "ㅄ": "ㅂㅅ", "ㅎ": "",
}  # fmt: skip

NEAR_COST = 0.3  # swap within a group below (0.2-0.4 all gave 146-148 of 168 ranked first)
_NEAR_GROUPS = (
    "ㄱㄲㅋ", "ㄷㄸㅌ", "ㅂㅃㅍ", "ㅈㅉㅊ", "ㅅㅆ",
    "ㅓㅗ", "ㅐㅔㅒㅖ", "ㅡㅜ", "ㅕㅛ", "ㅏㅘ", "ㅓㅝ", "ㅐㅙㅚㅞ", "ㅣㅟㅢ",
)  # fmt: skip
_PLAIN_STOPS = "ㄱㄷㅂ"
PLAIN_STOP_COST = 0.45  # ㄱ / ㄷ / ㅂ: same manner, different place

# Every unit Hangul text can produce, so that a matcher can give each one a
# code up front (a recogniser may write sounds no grammar phrase contains).
HANGUL_UNITS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [c for c in _INITIALS if c != "ㅇ"]
        + list(_VOWELS)
        + [_FINAL_SOUND.get(f, f) for f in _FINALS if f]
    )
)


def sound_units(text: str) -> list[str]:
    """*text* as a list of sounds (see the module docstring); spaces are dropped
    because word boundaries are not audible."""
    chars = [ch for ch in text if not ch.isspace()]
    units: list[str] = []
    for i, ch in enumerate(chars):
        offset = ord(ch) - _HANGUL_BASE
        if not 0 <= offset < _HANGUL_COUNT:
            units.append(ch.lower())
            continue
        initial = _INITIALS[offset // 588]
        if initial != "ㅇ":  # silent before a vowel
            units.append(initial)
        units.append(_VOWELS[(offset % 588) // 28])
        final = _FINALS[offset % 28]
        if not final:
            continue
        if final in _FINAL_BEFORE_VOWEL and _starts_with_vowel(chars[i + 1 : i + 2]):
            units.extend(_FINAL_BEFORE_VOWEL[final])
        else:
            units.append(_FINAL_SOUND.get(final, final))
    return units


def _starts_with_vowel(rest: list[str]) -> bool:
    """Is the next syllable one with a silent initial ㅇ?"""
    if not rest:
        return False
    offset = ord(rest[0]) - _HANGUL_BASE
    return 0 <= offset < _HANGUL_COUNT and offset // 588 == _INITIALS.index("ㅇ")


@cache
def substitution_cost(a: str, b: str) -> float:
    """What hearing *b* where *a* was said costs in an edit distance (0..1)."""
    if a == b:
        return 0.0
    if any(a in group and b in group for group in _NEAR_GROUPS):
        return NEAR_COST
    if a in _PLAIN_STOPS and b in _PLAIN_STOPS:
        return PLAIN_STOP_COST
    return 1.0
