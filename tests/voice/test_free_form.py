"""Free-form fallback: speech outside the grammar goes to the home's conversation
agent as text (opt-in: unconstrained decoding is slow, and the text leaves the car)."""

from __future__ import annotations

from collections.abc import Callable

from vehicle_agent.voice.assistant import OutcomeKind, VoiceAssistant, VoiceConfig
from vehicle_agent.voice.home import HomeRequester

from .conftest import AREAS, ENTITIES, synth
from .test_home_and_tts import FakeHome


def _assistant(
    factory: Callable[..., VoiceAssistant], home: FakeHome, min_confidence: float
) -> VoiceAssistant:
    config = VoiceConfig(
        language="ko", free_form_fallback=True, free_form_min_confidence=min_confidence
    )
    made = factory(config=config)
    made.home = home.requester = HomeRequester(home)
    made.set_vocabulary_blocking(list(ENTITIES), list(AREAS))
    return made


async def test_out_of_grammar_request_goes_to_the_home_as_text(
    ko_assistant_factory: Callable[..., VoiceAssistant],
) -> None:
    home = FakeHome()
    assistant = _assistant(ko_assistant_factory, home, min_confidence=0.0)
    outcome = await assistant.handle_pcm(synth("오늘 날씨 어때"), speak=False)
    assert outcome.kind is OutcomeKind.HOME and outcome.intent is None
    assert len(home.sent) == 1
    sent = home.sent[0][1]
    assert sent["text"] == outcome.text and sent["text"].strip()  # what vosk heard, free-form
    assert outcome.reply == f"done: {sent['text']}"
    # A car question inside the grammar is still answered in the car.
    outcome = await assistant.handle_pcm(synth("진단 코드 알려줘"), speak=False)
    assert outcome.kind is OutcomeKind.CAR and len(home.sent) == 1


async def test_unsure_free_form_text_is_not_sent(
    ko_assistant_factory: Callable[..., VoiceAssistant],
) -> None:
    home = FakeHome()
    assistant = _assistant(ko_assistant_factory, home, min_confidence=1.01)  # nothing is that sure
    outcome = await assistant.handle_pcm(synth("오늘 날씨 어때"), speak=False)
    assert outcome.kind is OutcomeKind.REJECTED and home.sent == []
