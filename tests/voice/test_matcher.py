"""Phrase-level matching: sound units, edit distances, verification rules."""

from __future__ import annotations

import pytest

from vehicle_agent.voice.matcher import AcceptRule, MatchConfig, Phrase, PhraseMatcher

PHRASES = [
    Phrase(spoken="지금 속도 알려줘", text="지금 속도 알려줘", key="CarSpeed()"),
    Phrase(spoken="현재 속도 알려줘", text="현재 속도 알려줘", key="CarSpeed()"),
    Phrase(spoken="거실 조명 켜줘", text="거실 조명 켜줘", key="On"),
    Phrase(spoken="거실 조명 꺼 줘", text="거실 조명 꺼줘", key="Off"),
    Phrase(
        spoken="거실 조명 켜져 있어", text="거실 조명 켜져 있어", key="HassGetState(name=거실 조명)"
    ),
    Phrase(spoken="거실 조명 꺼 줘 요", text="거실 조명 꺼줘요", key="HassTurnOff(name=거실 조명)"),
]


def test_a_near_sound_costs_less_than_a_different_one() -> None:
    # "도" for "고" (the model's usual slip on espeak's "차고") is nearer than "노".
    m = PhraseMatcher(
        [Phrase(spoken="고", text="고", key="A"), Phrase(spoken="구", text="구", key="B")]
    )
    assert m.distances("도")[0] < m.distances("노")[0] < 1.0
    # A sound no phrase contains ("ㅋ") still counts as near its plain partner.
    assert m.distances("코")[0] < m.distances("노")[0]
    # ...and characters from outside Hangul just cost one edit.
    assert m.distances("x")[0] == 1.0


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
        # Half the passes heard nothing: too little support.
        ([["거실 조명 켜 줘"], ["거실 조명 켜 줘"], [""], [""]], "support"),
        ([[""]] * 4, "nothing"),
        ([], "nothing"),
    ],
)
def test_unsure_results_are_rejected(passes: list[list[str]], reason: str) -> None:
    rule = AcceptRule(max_distance=0.45, min_support=0.6, min_margin=0.05)
    match = PhraseMatcher(PHRASES, MatchConfig(question=rule, action=rule)).match(passes)
    assert not match.accepted
    assert reason in match.reason


def test_lower_alternatives_add_support_by_their_score_share() -> None:
    m = PhraseMatcher(PHRASES)
    top_only = m.match([[("거실 조명 켜 줘", 10.0), ("속도 어 야", 0.0)]] * 4)
    second = m.match([[("속도 어 야", 10.0), ("거실 조명 켜 줘", 9.0)]] * 4)
    assert top_only.phrase is not None and second.phrase is not None
    assert top_only.phrase.key == second.phrase.key == "On"
    assert top_only.support > 0.99 and 0.2 < second.support < 0.3  # e^-1 / (1 + e^-1)


def test_home_actions_need_more_than_questions() -> None:
    rule_q = AcceptRule(max_distance=0.5, min_support=0.3, min_margin=0.0)
    rule_a = AcceptRule(max_distance=0.5, min_support=0.7, min_margin=0.0)
    m = PhraseMatcher(PHRASES, MatchConfig(question=rule_q, action=rule_a))
    half = [[("속도 어 야", 10.0), ("{}", 10.0)]] * 4  # half the evidence for the phrase
    question = m.match(
        [[(t if t != "{}" else "거실 조명 켜져 있어", s) for t, s in p] for p in half]
    )
    action = m.match([[(t if t != "{}" else "거실 조명 꺼 줘 요", s) for t, s in p] for p in half])
    assert question.accepted and not question.action
    assert question.phrase is not None and question.phrase.key.startswith("HassGetState")
    assert not action.accepted and action.action and "support" in action.reason
    assert action.phrase is not None and action.phrase.key.startswith("HassTurnOff")


def test_one_stray_pass_does_not_sink_the_right_phrase() -> None:
    m = PhraseMatcher(PHRASES, MatchConfig(min_agree=3))
    match = m.match([["거실 조명 켜줘"], ["거실 조명 켜줘"], ["거실 조명 켜줘"], ["속도 어 야"]])
    assert match.accepted and match.phrase is not None and match.phrase.key == "On"


def test_no_phrases_is_an_error() -> None:
    with pytest.raises(ValueError):
        PhraseMatcher([])
