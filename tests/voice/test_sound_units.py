"""Korean text as heard: silent ㅇ, liaison, near sounds."""

from __future__ import annotations

import pytest

from vehicle_agent.voice.sound_units import (
    HANGUL_UNITS,
    NEAR_COST,
    PLAIN_STOP_COST,
    sound_units,
    substitution_cost,
)


def test_syllables_become_initial_vowel_final_and_spaces_vanish() -> None:
    assert sound_units("각 a") == ["ㄱ", "ㅏ", "ㄱ", "a"]
    assert sound_units("꺼 줘") == sound_units("꺼줘")


@pytest.mark.parametrize(
    ("spelled", "heard"),
    [
        ("닫아", "다다"),  # a final before a vowel starts the next syllable
        ("열어 줘", "여러 줘"),
        ("있어", "이써"),
        ("없어", "업서"),  # both consonants of a double final before a vowel
        ("없 어", "업서"),  # also across vosk's word boundary
        ("좋아", "조아"),  # a final ㅎ before a vowel is silent
        ("없다", "업다"),  # before a consonant: the pronounced one only
    ],
)
def test_spellings_that_sound_alike_give_the_same_units(spelled: str, heard: str) -> None:
    assert sound_units(spelled) == sound_units(heard)


def test_final_ng_is_its_own_sound_and_initial_ieung_is_silent() -> None:
    assert sound_units("강") == ["ㄱ", "ㅏ", "ŋ"]
    assert sound_units("아") == ["ㅏ"]
    assert sound_units("강아") != sound_units("가나")


def test_every_hangul_syllable_maps_into_the_declared_units() -> None:
    units = set(HANGUL_UNITS)
    for code in range(0xAC00, 0xAC00 + 11172, 7):  # a spread over all syllables
        assert set(sound_units(chr(code))) <= units


@pytest.mark.parametrize(
    ("a", "b", "cost"),
    [
        ("ㄱ", "ㄱ", 0.0),
        ("ㄱ", "ㅋ", NEAR_COST),  # plain / aspirated, same place
        ("ㅈ", "ㅊ", NEAR_COST),
        ("ㅓ", "ㅗ", NEAR_COST),  # rounding only
        ("ㄱ", "ㄷ", PLAIN_STOP_COST),  # plain stops, different place
        ("ㄱ", "ㄴ", 1.0),
        ("ㅏ", "ㄱ", 1.0),
        ("a", "b", 1.0),
    ],
)
def test_substitution_costs(a: str, b: str, cost: float) -> None:
    assert substitution_cost(a, b) == cost
    assert substitution_cost(b, a) == cost
