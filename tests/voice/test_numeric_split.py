"""Two-stage grammar for numeric commands: the split itself, and both passes on real speech."""

from __future__ import annotations

from vehicle_agent.voice.assistant import OutcomeKind, VoiceAssistant
from vehicle_agent.voice.matcher import MatchConfig, Phrase, PhraseMatcher
from vehicle_agent.voice.numeric_split import family_key, split_numeric, value_rule

from .conftest import synth


def test_family_key_masks_numeric_slots_only() -> None:
    assert (
        family_key("HassLightSet(area=거실,brightness=50)")
        == "HassLightSet(area=거실,brightness=#)"
    )
    assert family_key("HassClimateSetTemperature(temperature=21.5)") == (
        "HassClimateSetTemperature(temperature=#)"
    )
    assert family_key("HassTurnOn(name=차고 문)") is None
    assert family_key("CarSpeed()") is None


def _p(spoken: str, key: str) -> Phrase:
    return Phrase(spoken=spoken, text=spoken, key=key)


def test_split_keeps_the_median_value_in_every_wording_and_small_families_whole() -> None:
    big = [_p(f"밝기 {v}", f"HassLightSet(area=a,brightness={v})") for v in (10, 20, 30, 40, 50)]
    big.append(_p("밝기 쉰", "HassLightSet(area=a,brightness=30)"))  # a second wording of 30
    small = [_p(f"온도 {v}", f"HassClimateSetTemperature(temperature={v})") for v in (20, 21)]
    plain = [_p("속도", "CarSpeed()")]
    split = split_numeric(plain + big + small)
    assert set(split.families) == {"HassLightSet(area=a,brightness=#)"}
    assert split.families["HassLightSet(area=a,brightness=#)"] == big
    first = {p.spoken: p.key for p in split.first}
    assert first == {
        "속도": "CarSpeed()",
        "밝기 30": "HassLightSet(area=a,brightness=#)",
        "밝기 쉰": "HassLightSet(area=a,brightness=#)",
        "온도 20": "HassClimateSetTemperature(temperature=20)",
        "온도 21": "HassClimateSetTemperature(temperature=21)",
    }


def test_first_pass_of_the_test_home_is_small(assistant: VoiceAssistant) -> None:
    # 198 sentences + 4 answers to a confirmation question ("네", "응", "아니", "취소")
    assert len(assistant.grammar.phrases) == 202
    # 55 phrases without numbers + 2 wordings of 50 % x 3 rooms + 3 wordings of 22 °C x 3 rooms
    assert len(assistant.split.first) == 70
    assert sum(len(v) for v in assistant.split.families.values()) == 202 - 55


async def test_temperature_command_goes_through_both_passes(assistant: VoiceAssistant) -> None:
    outcome = await assistant.handle_pcm(synth("침실 온도 이십오 도 설정해줘"), speak=False)
    assert outcome.intent is not None
    assert outcome.intent.key == "HassClimateSetTemperature(area=침실,temperature=25)"
    assert outcome.kind is OutcomeKind.HOME_UNAVAILABLE  # no home in this test: nothing queued
    # The representative (22 °C) of the first pass never reaches the home.
    assert outcome.match is not None and outcome.match.phrase is not None
    assert "=#" not in outcome.match.phrase.key


async def test_numeric_family_without_audio_for_the_value_pass_is_refused(
    assistant: VoiceAssistant,
) -> None:
    await assistant.begin()
    await assistant.feed(synth("침실 온도 이십오 도 설정해줘"))
    outcome = await assistant.end(b"", speak=False)  # the caller kept no copy of the audio
    assert outcome.kind is OutcomeKind.REJECTED
    assert outcome.match is not None and outcome.match.reason == "no audio for the value pass"


def test_value_pass_needs_two_passes_and_never_waives_the_margin() -> None:
    # Four passes all near "밝기 10" but with little support margin over "밝기 90":
    # the first pass would take that as unanimous; the value pass must not.
    phrases = [_p("밝기 십", "V(v=10)"), _p("밝기 구십", "V(v=90)")]
    passes = [[("밝기 십", 0.0), ("밝기 구십", 0.0)]] * 4
    first_rule = MatchConfig()
    assert PhraseMatcher(phrases, first_rule).match(passes).unanimous
    verdict = PhraseMatcher(phrases, value_rule(first_rule)).match(passes)
    assert not verdict.accepted and "margin" in verdict.reason
    # And at least two passes must pick the value themselves (MatchConfig.min_agree).
    assert value_rule(first_rule).min_agree == 2
