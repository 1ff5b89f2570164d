"""Sentence templates (HA intents format, hassil) and the grammar's vocabulary check."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vehicle_agent.voice.errors import GrammarError
from vehicle_agent.voice.grammar import VocabularyChecker, build_grammar
from vehicle_agent.voice.intents import SentenceSet


@pytest.mark.parametrize(
    ("language", "entities", "areas", "text", "key"),
    [
        ("ko", ["거실 조명"], ["거실"], "지금 속도 알려줘", "CarSpeed()"),
        ("ko", ["거실 조명"], ["거실"], "거실 조명 꺼줘", "HassTurnOff(name=거실 조명)"),
        (
            "ko",
            ["거실 조명"],
            ["부엌"],
            "부엌 조명 밝기 오십 퍼센트",
            "HassLightSet(area=부엌,brightness=50)",
        ),
        (
            "ko",
            ["거실 조명"],
            ["부엌"],
            "부엌 조명 밝기 50 퍼센트",
            "HassLightSet(area=부엌,brightness=50)",
        ),
        ("en", ["garage door"], ["kitchen"], "what is my speed", "CarSpeed()"),
        (
            "en",
            ["garage door"],
            ["kitchen"],
            "open the garage door",
            "HassTurnOn(name=garage door)",
        ),
        ("en", ["garage door"], ["kitchen"], "are there warnings", "CarWarnings()"),
        ("zh", ["客厅灯"], ["卧室"], "打开客厅灯", "HassTurnOn(name=客厅灯)"),
        ("zh", ["客厅灯"], ["卧室"], "油还剩多少", "CarFuel()"),
        (
            "zh",
            ["客厅灯"],
            ["卧室"],
            "把卧室温度调到22度",
            "HassClimateSetTemperature(area=卧室,temperature=22)",
        ),
    ],
)
def test_templates_recognise_car_and_home_intents(
    language: str, entities: list[str], areas: list[str], text: str, key: str
) -> None:
    sentences = SentenceSet(language)
    sentences.set_vocabulary(entities, areas)
    match = sentences.recognize(text)
    assert match is not None and match.key == key
    assert match.is_car == key.startswith("Car")


def test_every_language_defines_the_same_intents() -> None:
    names = {lang: SentenceSet(lang).intent_names for lang in ("en", "ko", "zh")}
    assert names["en"] == names["ko"] == names["zh"]
    assert {
        "CarSpeed",
        "CarFuel",
        "CarRange",
        "CarBattery",
        "CarTyres",
        "CarLocks",
        "CarDoors",
        "CarWarnings",
        "HassTurnOn",
        "HassTurnOff",
        "HassLightSet",
        "HassClimateSetTemperature",
        "HassGetState",
    } <= set(names["en"])


def test_home_sentences_need_the_homes_names() -> None:
    sentences = SentenceSet("ko")
    intents = {intent for intent, _ in sentences.sample()}
    assert "HassTurnOn" not in intents and "CarSpeed" in intents
    sentences.set_vocabulary(["차고 문", 7, "", "차고 문"], ["거실"])  # junk is dropped
    assert sentences.entities == ["차고 문"]
    assert "HassTurnOn" in {intent for intent, _ in sentences.sample()}


def test_unknown_language_and_bad_templates_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(GrammarError, match="no sentence templates"):
        SentenceSet("xx")
    (tmp_path / "ko").mkdir()
    (tmp_path / "ko" / "bad.yaml").write_text("language: ko\nintents: [unclosed\n")
    with pytest.raises(GrammarError):
        SentenceSet("ko", tmp_path)


KNOWN = {"거실", "조명", "꺼", "줘", "켜줘", "오십", "퍼센트", "turn", "on"}


def test_vocabulary_checker_splits_unknown_words_and_spells_numbers() -> None:
    checker = VocabularyChecker(KNOWN.__contains__, "ko")
    assert checker.words("거실 조명 꺼줘!") == ["거실", "조명", "꺼", "줘"]
    assert checker.rewritten == {"꺼줘": "꺼 줘"}
    assert checker.words("50%") == ["오십", "퍼센트"]
    assert checker.words("거실 창문 열어") is None


def test_grammar_leaves_out_sentences_it_cannot_say(caplog: pytest.LogCaptureFixture) -> None:
    sentences = SentenceSet("ko")
    sentences.set_vocabulary(["거실 조명"], ["거실"])
    known = {"거실", "조명", "켜줘", "꺼", "줘", "지금", "속도", "알려줘"}
    with caplog.at_level(logging.WARNING):
        grammar = build_grammar(sentences, known.__contains__)
    spoken = {p.spoken: p.key for p in grammar.phrases}
    assert spoken == {
        "지금 속도 알려줘": "CarSpeed()",
        "거실 조명 켜줘": "HassTurnOn(name=거실 조명)",
        "거실 조명 꺼 줘": "HassTurnOff(name=거실 조명)",
        "거실 조명 꺼": "HassTurnOff(name=거실 조명)",
    }
    assert "left out" in caplog.text
    with pytest.raises(GrammarError):
        build_grammar(sentences, lambda word: False)
