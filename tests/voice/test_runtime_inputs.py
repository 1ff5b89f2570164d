"""`vehicle-agent run` voice inputs through the runtime hook: a live PCM stream with
the wake phrase, a missing microphone, and the home's names kept across a restart."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from bridge.protocol import MessageType
from vehicle_agent.state_store import StateStore
from vehicle_agent.voice.audio import write_wav
from vehicle_agent.voice.model import VoiceModel
from vehicle_agent.voice.runtime_hook import VoiceExtension, attach

from .conftest import AREAS, ENTITIES, synth
from .test_pipeline import FakeRuntime, wait_for

SILENCE = b"\0\0" * 8000  # 0.5 s
UNREACHABLE = "죄송합니다, 지금은 집에 연결할 수 없어요."


def _args(**options: Any) -> argparse.Namespace:
    base: dict[str, Any] = {
        "voice_model": None,
        "voice_language": "ko",
        "voice_inbox": None,
        "voice_mic": None,
        "voice_stream": None,
        "wake_phrase": None,
        "voice_free_form": False,
        "state_dir": None,
        "tts": "null",
    }
    return argparse.Namespace(**{**base, **options})


def _start(runtime: FakeRuntime, args: argparse.Namespace, model: VoiceModel) -> VoiceExtension:
    ext = attach(runtime, args, model=model)
    assert ext is not None
    return ext


async def test_live_stream_wakes_on_the_phrase_then_answers(
    tmp_path: Path, ko_model: VoiceModel, rav4_store: StateStore
) -> None:
    stream = tmp_path / "cabin.pcm"
    stream.write_bytes(
        SILENCE
        + synth("안녕 자동차")
        + SILENCE
        + synth("진단 코드 알려줘")
        + SILENCE
        # Not after a wake phrase (the listening window has closed): must be ignored.
        + b"\0\0" * 16000 * 7
        + synth("지금 속도 알려줘")
        + SILENCE
    )
    runtime = FakeRuntime(rav4_store, tmp_path / "journal.jsonl")
    ext = _start(runtime, _args(voice_stream=stream), ko_model)
    assert runtime.capabilities == ["voice"]
    task = asyncio.create_task(runtime.tasks[0]())
    try:
        await wait_for(lambda: any(e["kind"] == "intent" for e in runtime.entries()))
        await asyncio.sleep(1.0)  # the rest of the stream: nothing more may be handled
    finally:
        task.cancel()
    intents = [e for e in runtime.entries() if e["kind"] == "intent"]
    assert len(intents) == 1, intents
    assert intents[0]["intent"] == "CarWarnings" and intents[0]["outcome"] == "car"
    assert intents[0]["source"] == "stream cabin.pcm"
    spoken = [e["text"] for e in runtime.entries() if e["kind"] == "spoken"]
    assert spoken[0] == "네?"  # the wake acknowledgement comes first
    assert ext.assistant is not None


async def test_missing_microphone_is_reported_and_the_inbox_keeps_working(
    tmp_path: Path,
    ko_model: VoiceModel,
    rav4_store: StateStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox = tmp_path / "inbox"
    runtime = FakeRuntime(rav4_store, tmp_path / "journal.jsonl")
    _start(runtime, _args(voice_mic="default", voice_inbox=inbox), ko_model)
    task = asyncio.create_task(runtime.tasks[0]())
    try:
        with caplog.at_level(logging.ERROR):
            await wait_for(lambda: "voice microphone unavailable" in caplog.text)
            inbox.mkdir(exist_ok=True)
            write_wav(inbox / "ptt.wav", synth("지금 속도 알려줘"))
            await wait_for(lambda: (inbox / "ptt.done").exists())
    finally:
        task.cancel()
    assert "pip install 'carhub[mic]'" in caplog.text
    intent = next(e for e in runtime.entries() if e["kind"] == "intent")
    assert intent["intent"] == "CarSpeed"


async def test_home_names_survive_a_restart_without_home(
    tmp_path: Path, ko_model: VoiceModel, rav4_store: StateStore
) -> None:
    state = tmp_path / "state"
    first = FakeRuntime(rav4_store, tmp_path / "first.jsonl")
    _start(first, _args(voice_inbox=tmp_path / "unused", state_dir=state), ko_model)
    vocabulary = {"language": "ko", "entities": ENTITIES, "areas": AREAS}
    await first.deliver(MessageType.VOCABULARY, {"language": "ko", "entities": 7})  # refused
    assert not (state / "voice-vocabulary.json").exists()
    await first.deliver(MessageType.VOCABULARY, vocabulary)
    assert (state / "voice-vocabulary.json").exists()

    # The car restarts with no home connected (no links at all).
    inbox = tmp_path / "inbox"
    second = FakeRuntime(rav4_store, tmp_path / "second.jsonl")
    ext = _start(second, _args(voice_inbox=inbox, state_dir=state), ko_model)
    task = asyncio.create_task(second.tasks[0]())
    try:
        await wait_for(lambda: ext.assistant is not None)
        inbox.mkdir(exist_ok=True)
        write_wav(inbox / "ptt.wav", synth("거실 조명 꺼줘"))
        await wait_for(lambda: (inbox / "ptt.done").exists())
    finally:
        task.cancel()
    assert ext.assistant is not None
    assert {"거실 조명", "차고 문"} <= set(ext.assistant.sentences.entities)
    intent = next(e for e in second.entries() if e["kind"] == "intent")
    assert intent["outcome"] == "home_unavailable" and intent["intent"] == "HassTurnOff"
    assert UNREACHABLE in [e["text"] for e in second.entries() if e["kind"] == "spoken"]


async def test_free_form_option_reaches_the_assistant(
    tmp_path: Path, ko_model: VoiceModel, rav4_store: StateStore
) -> None:
    for flag in (False, True):
        runtime = FakeRuntime(rav4_store, tmp_path / f"{flag}.jsonl")
        ext = _start(runtime, _args(voice_inbox=tmp_path / "in", voice_free_form=flag), ko_model)
        task = asyncio.create_task(runtime.tasks[0]())
        try:
            await wait_for(lambda ext=ext: ext.assistant is not None)  # type: ignore[misc]
        finally:
            task.cancel()
        assert ext.assistant is not None
        assert ext.assistant.config.free_form_fallback is flag
