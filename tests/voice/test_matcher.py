"""Phrase-level matching: sound units, edit distances, verification rules."""

from __future__ import annotations

import pytest

from vehicle_agent.voice.matcher import MatchConfig, Phrase, PhraseMatcher, sound_units

PHRASES = [
    Phrase(spoken="지금 속도 알려줘", text="지금 속도 알려줘", key="CarSpeed()"),
    Phrase(spoken="현재 속도 알려줘", text="현재 속도 알려줘", key="CarSpeed()"),
    Phrase(spoken="거실 조명 켜줘", text="거실 조명 켜줘", key="On"),
    Phrase(spoken="거실 조명 꺼 줘", text="거실 조명 꺼줘", key="Off"),
]


def test_sound_units_split_hangul_into_jamo_and_ignore_spaces() -> None:
    assert sound_units("강 a") == ["ᄀ", "ᅡ", "ᆼ", "a"]
    assert sound_units("꺼 줘") == sound_units("꺼줘")


def test_distances_are_edits_per_phrase_unit() -> None:
    m = PhraseMatcher(PHRASES)
    d = m.distances("지금 속도 알려줘")
    assert d[0] == 0.0
    assert 0 < d[1] < d[2]
    assert m.distances("")[0] == 1.0  # everything deleted


def test_exact_agreement_is_accepted() -> None:
    m = PhraseMatcher(PHRASES)
    match = m.match([["거실 조명 꺼 줘"]] * 4)
    assert match.accepted and match.phrase is not None and match.phrase.key == "Off"
    assert match.agree == 4 and match.distance == 0.0


def test_same_meaning_is_not_a_competitor() -> None:
    # "지금" vs "현재" share the key: the margin is measured against "On"/"Off".
    m = PhraseMatcher(PHRASES)
    match = m.match([["지금 속도 알려줘"], ["현재 속도 알려줘"], ["지금 속도 알려줘"]])
    assert match.accepted and match.phrase is not None and match.phrase.key == "CarSpeed()"
    assert match.runner_up is not None and match.runner_up.key in {"On", "Off"}


@pytest.mark.parametrize(
    ("passes", "reason"),
    [
        ([["오늘 날씨 어때"]] * 4, "distance"),
        (
            [["거실 조명 켜 줘"], ["거실 조명 꺼 줘"], ["거실 조명 켜줘"], ["거실 조명 꺼줘"]],
            "margin",
        ),
        ([[""]] * 4, "nothing"),
        ([], "nothing"),
    ],
)
def test_unsure_results_are_rejected(passes: list[list[str]], reason: str) -> None:
    match = PhraseMatcher(PHRASES, MatchConfig(min_margin=0.05)).match(passes)
    assert not match.accepted
    assert reason in match.reason


def test_one_stray_pass_does_not_sink_the_right_phrase() -> None:
    m = PhraseMatcher(PHRASES, MatchConfig(min_agree=3))
    match = m.match([["거실 조명 켜줘"], ["거실 조명 켜줘"], ["거실 조명 켜줘"], ["속도 어 야"]])
    assert match.accepted and match.phrase is not None and match.phrase.key == "On"


def test_no_phrases_is_an_error() -> None:
    with pytest.raises(ValueError):
        PhraseMatcher([])
