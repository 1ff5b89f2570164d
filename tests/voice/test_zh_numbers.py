"""Chinese percentages in the grammar are said as home-assistant-intents writes them."""

from __future__ import annotations

import re

from hassil.intents import Intents
from hassil.recognize import recognize
from home_assistant_intents import get_intents

from vehicle_agent.voice.grammar import VocabularyChecker, build_grammar
from vehicle_agent.voice.intents import SentenceSet


def _every_word(word: str) -> bool:
    return True


def test_percent_comes_before_the_number_in_chinese() -> None:
    checker = VocabularyChecker(_every_word, "zh")
    assert checker.words("调到10%") == ["调到", "百分之", "十"]
    assert checker.words("调到 50 %") == ["调到", "百分之", "五十"]
    assert checker.words("调到二十%") == ["调到", "百分之二十"]  # hassil samples words too
    # Other languages keep the number first.
    assert VocabularyChecker(_every_word, "en").words("to 50%") == ["to", "fifty", "percent"]
    assert VocabularyChecker(_every_word, "ko").words("50%") == ["오십", "퍼센트"]


def test_generated_chinese_brightness_phrases_read_like_home_assistant_intents() -> None:
    sentences = SentenceSet("zh")
    sentences.set_vocabulary(["客厅灯"], ["客厅"])
    grammar = build_grammar(sentences, _every_word)
    light_set = [p for p in grammar.phrases if p.key.startswith("HassLightSet")]
    assert light_set, "the zh templates set brightness"
    for phrase in light_set:
        assert "百分之" in phrase.spoken and not re.search(r"百分之\s*$", phrase.spoken)
        assert not re.search(r"[十百九八七六五四三二一]\s+百分之", phrase.spoken), phrase.spoken
    # home-assistant-intents (zh-cn) writes the percent before the number too...
    ha = get_intents("zh-cn")
    assert ha is not None
    rule = ha["expansion_rules"]["brightness"]
    assert rule.index("百分之") < rule.index("{brightness}")
    # ...and its own brightness rule and list read our spoken order, digits as the car sends them.
    intents = Intents.from_dict(
        {
            "language": "zh-cn",
            "intents": {"Brightness": {"data": [{"sentences": ["亮度<brightness>"]}]}},
            "expansion_rules": {"brightness": rule},
            "lists": {"brightness": ha["lists"]["brightness"]},
        }
    )
    result = recognize("亮度百分之50", intents, language="zh-cn")
    assert result is not None and result.entities["brightness"].value == 50
    assert recognize("亮度50百分之", intents, language="zh-cn") is None  # the old, wrong order
