"""End to end in the car: real speech -> intent -> answer from the RAV4 log's state,
home requests through a fake home, the live listen loop with wake phrase and button."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.protocol import Envelope, MessageType
from vehicle_agent.state_store import StateStore
from vehicle_agent.voice.assistant import Outcome, OutcomeKind, VoiceAssistant
from vehicle_agent.voice.audio import PcmSource, write_wav
from vehicle_agent.voice.home import HomeRequester
from vehicle_agent.voice.model import VoiceModel
from vehicle_agent.voice.runtime_hook import attach
from vehicle_agent.voice.tts import NullTts
from vehicle_agent.voice.wake import PushToTalk, WakeDetector

from .conftest import AREAS, ENTITIES, synth
from .test_home_and_tts import FakeHome


@pytest.fixture(scope="module")
def car(
    ko_assistant_factory: Callable[..., VoiceAssistant], rav4_store: StateStore
) -> VoiceAssistant:
    made = ko_assistant_factory(state=rav4_store, tts=NullTts())
    made.set_vocabulary_blocking(list(ENTITIES), list(AREAS))
    return made


async def test_car_questions_answered_from_the_rav4_log(
    car: VoiceAssistant, rav4_store: StateStore
) -> None:
    speed = rav4_store.value("Vehicle.Speed")
    assert isinstance(speed, float) and speed > 30  # highway
    outcome = await car.handle_pcm(synth("지금 속도 알려줘"))
    assert outcome.kind is OutcomeKind.CAR
    assert outcome.reply == f"현재 속도는 시속 {round(speed)} 킬로미터입니다."
    outcome = await car.handle_pcm(synth("문 열려 있어"))
    assert outcome.reply == "모든 문이 닫혀 있어요."  # every door closed in the log
    assert isinstance(car.tts, NullTts) and car.tts.spoken[-1] == (outcome.reply, "ko")


async def test_home_request_round_trip_and_unreachable_home(car: VoiceAssistant) -> None:
    home = FakeHome()
    car.home = home.requester = HomeRequester(home)
    outcome = await car.handle_pcm(synth("거실 조명 꺼줘"), speak=False)
    assert outcome.kind is OutcomeKind.HOME
    assert home.sent[0][1]["text"] == "거실 조명 꺼줘" and home.sent[0][1]["language"] == "ko"
    assert outcome.reply == "done: 거실 조명 꺼줘"
    home.connected = False
    outcome = await car.handle_pcm(synth("거실 조명 꺼줘"), speak=False)
    assert outcome.kind is OutcomeKind.HOME_UNAVAILABLE
    assert outcome.reply == "죄송합니다, 지금은 집에 연결할 수 없어요."
    assert len(home.sent) == 1  # nothing queued for later
    car.home = None


async def test_bad_vocabulary_message_keeps_the_grammar(car: VoiceAssistant) -> None:
    before = len(car.grammar.phrases)
    assert not await car.update_vocabulary({"entities": "not a list", "areas": []})
    assert len(car.grammar.phrases) == before


async def test_listen_with_wake_phrase_then_command(
    car: VoiceAssistant, ko_model: VoiceModel
) -> None:
    silence = b"\0\0" * 8000
    stream = silence + synth("안녕 자동차") + silence + synth("진단 코드 알려줘") + silence
    stream += synth("오늘 날씨 어때") + silence  # not after a wake phrase: ignored
    wake = WakeDetector(ko_model, "안녕 자동차", language="ko")
    outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
    try:
        handled = await car.listen(PcmSource(stream), wake=wake, outcomes=outcomes)
    finally:
        wake.close()
    assert handled == 1
    outcome = outcomes.get_nowait()
    assert outcome.intent is not None and outcome.intent.name == "CarWarnings"


async def test_listen_with_push_to_talk(car: VoiceAssistant, ko_model: VoiceModel) -> None:
    wake = WakeDetector(ko_model, "안녕 자동차", language="ko")
    ptt = PushToTalk()
    ptt.set(True)  # the driver holds the button: no wake phrase needed
    outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
    try:
        stream = b"\0\0" * 8000 + synth("연료 얼마나 남았어", voice="ko", pitch=50) + b"\0\0" * 8000
        handled = await car.listen(PcmSource(stream), wake=wake, ptt=ptt, outcomes=outcomes)
    finally:
        wake.close()
    assert handled == 1
    assert outcomes.get_nowait().intent is not None


class FakeRuntime:
    """What the runtime hook uses from AgentRuntime."""

    def __init__(self, store: StateStore, journal_path: Path) -> None:
        self.store = store
        self.links: dict[str, Any] = {}
        self.handlers: dict[str, list[Any]] = {}
        self.tasks: list[Any] = []
        self.capabilities: list[str] = []
        self.journal = self
        self._path = journal_path

    def write(self, kind: str, **fields: object) -> None:
        with self._path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": kind, **fields}, ensure_ascii=False, default=str) + "\n")

    def entries(self) -> list[dict[str, Any]]:
        if not self._path.exists():
            return []
        return [json.loads(line) for line in self._path.read_text().splitlines()]

    def add_handler(self, type: str, handler: Any) -> None:
        self.handlers.setdefault(str(type), []).append(handler)

    def add_task(self, factory: Any) -> None:
        self.tasks.append(factory)

    def add_capability(self, capability: str) -> None:
        self.capabilities.append(capability)

    async def deliver(self, type: MessageType, body: dict[str, Any]) -> None:
        env = Envelope(v=1, type=type, seq=1, ts=0.0, body=body)
        for handler in self.handlers.get(str(type), []):
            await handler("hub1", env)


async def wait_for(predicate: Callable[[], bool], within_s: float = 30) -> None:
    """Poll *predicate* (files and journal lines have no event to wait on)."""
    async with asyncio.timeout(within_s):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_runtime_hook_inbox_vocabulary_and_home_round_trip(
    tmp_path: Path, ko_model: VoiceModel, rav4_store: StateStore
) -> None:
    runtime = FakeRuntime(rav4_store, tmp_path / "journal.jsonl")
    inbox = tmp_path / "inbox"
    args = argparse.Namespace(voice_model=None, voice_language="ko", voice_inbox=inbox, tts="null")
    ext = attach(runtime, args, model=ko_model)
    assert ext is not None and runtime.capabilities == ["voice"]
    home = FakeHome()
    runtime.links["hub1"] = home

    async def answer(type_: MessageType, body: dict[str, Any]) -> int:
        home.sent.append((type_, body))
        reply = {"request_id": body["request_id"], "text": "불을 껐어요", "success": True}
        asyncio.get_running_loop().call_later(
            0.01, asyncio.ensure_future, runtime.deliver(MessageType.VOICE_REPLY, reply)
        )
        return 1

    home.send = answer  # type: ignore[method-assign]
    task = asyncio.create_task(runtime.tasks[0]())
    try:
        await runtime.deliver(
            MessageType.VOCABULARY, {"language": "ko", "entities": ENTITIES, "areas": AREAS}
        )
        await wait_for(lambda: ext.assistant is not None)
        inbox.mkdir(exist_ok=True)
        (inbox / "broken.wav").write_bytes(b"not a wav")
        write_wav(inbox / "ptt-1.wav", synth("거실 조명 꺼줘"))
        await wait_for(lambda: (inbox / "ptt-1.done").exists() and (inbox / "broken.done").exists())
        await runtime.deliver(
            MessageType.NOTIFY,
            {"message": "세탁이 끝났어요", "priority": "normal", "expires_at": 4e9},
        )
        await wait_for(lambda: any(e.get("text") == "세탁이 끝났어요" for e in runtime.entries()))
    finally:
        task.cancel()
    entries = runtime.entries()
    intent = next(e for e in entries if e["kind"] == "intent")
    assert intent["intent"] == "HassTurnOff" and intent["outcome"] == "home"
    assert {
        "kind": "voice_reply",
        "hub_id": "hub1",
        "text": "불을 껐어요",
        "success": True,
    } in entries
    spoken = [e["text"] for e in entries if e["kind"] == "spoken"]
    assert "불을 껐어요" in spoken and "세탁이 끝났어요" in spoken
    assert home.sent[0][1]["text"] == "거실 조명 꺼줘"


def test_attach_does_nothing_without_voice_options(rav4_store: StateStore, tmp_path: Path) -> None:
    runtime = FakeRuntime(rav4_store, tmp_path / "j")
    args = argparse.Namespace(voice_model=None, voice_language="en", voice_inbox=None, tts="null")
    assert attach(runtime, args) is None and runtime.tasks == []
