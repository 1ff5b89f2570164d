"""Home requests through a fake link; TTS engines; notifications gated by manoeuvres."""

from __future__ import annotations

import asyncio
import wave
from io import BytesIO
from typing import Any

import pytest

from bridge.protocol import MessageType
from vehicle_agent.voice.errors import HomeUnavailableError
from vehicle_agent.voice.home import FirstConnectedHome, HomeRequester
from vehicle_agent.voice.tts import (
    EspeakTts,
    ManoeuvrePolicy,
    NotificationSpeaker,
    NullTts,
    make_tts,
)
from vehicle_agent.voice.wake import PushToTalk


class FakeHome:
    """A link to a home that answers voice requests (or not)."""

    def __init__(self, *, connected: bool = True, answer: bool = True) -> None:
        self.connected = connected
        self.answer = answer
        self.sent: list[tuple[MessageType, dict[str, Any]]] = []
        self.requester: HomeRequester | None = None

    async def send(self, type: MessageType, body: dict[str, Any]) -> int:
        self.sent.append((type, body))
        if self.answer and self.requester is not None:
            reply = {
                "request_id": body["request_id"],
                "text": f"done: {body['text']}",
                "success": True,
            }
            asyncio.get_running_loop().call_later(0.01, self.requester.on_reply, reply)
        return len(self.sent)


async def test_request_round_trip_matches_reply_by_id() -> None:
    home = FakeHome()
    requester = home.requester = HomeRequester(home)
    assert not requester.on_reply({"request_id": "stray", "text": "x", "success": True})
    reply = await requester.request("거실 조명 켜줘", "ko")
    assert reply.success and reply.text == "done: 거실 조명 켜줘"
    type_, body = home.sent[0]
    assert type_ == MessageType.VOICE_REQUEST
    assert body["language"] == "ko" and body["request_id"] == reply.request_id


async def test_unreachable_home_sends_nothing_and_timeout_is_reported() -> None:
    offline = FakeHome(connected=False)
    with pytest.raises(HomeUnavailableError, match="not connected"):
        await HomeRequester(offline).request("x", "en")
    assert offline.sent == []
    silent = FakeHome(answer=False)
    with pytest.raises(HomeUnavailableError, match="in time"):
        await HomeRequester(silent, timeout=0.05).request("x", "en")


async def test_first_connected_home_is_used() -> None:
    a, b = FakeHome(connected=False), FakeHome()
    multi = FirstConnectedHome({"a": a, "b": b})
    assert multi.connected
    await multi.send(MessageType.VOICE_REQUEST, {"request_id": "1", "text": "t", "language": "en"})
    assert a.sent == [] and len(b.sent) == 1
    b.connected = False
    with pytest.raises(HomeUnavailableError):
        await multi.send(MessageType.VOICE_REQUEST, {})


async def test_espeak_synthesizes_each_language() -> None:
    tts = EspeakTts()
    for text, language in (("hello", "en"), ("안녕하세요", "ko"), ("你好", "zh")):
        data = await tts.synthesize(text, language)
        with wave.open(BytesIO(data)) as wf:
            assert wf.getnframes() > 1000
    assert isinstance(make_tts("null"), NullTts)
    with pytest.raises(ValueError):
        make_tts("nope")


async def test_missing_espeak_binary_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    await EspeakTts(binary="/nonexistent/espeak").speak("hi", "en")
    assert "cannot run" in caplog.text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_notifications_wait_for_the_manoeuvre_and_expire() -> None:
    state: dict[str, object] = {"Vehicle.Speed": 80.0, "Vehicle.Chassis.SteeringWheel.Angle": 120.0}
    clock = Clock()
    tts = NullTts()
    speaker = NotificationSpeaker(
        tts,
        state.get,
        language="en",
        clock=clock,
        policy=ManoeuvrePolicy(speed_kmh=30, steering_deg=45),
    )
    assert speaker.submit({"message": "low", "priority": "low", "expires_at": 2000.0})
    assert speaker.submit({"message": "urgent", "priority": "high", "expires_at": 2000.0})
    assert speaker.submit({"message": "soon stale", "priority": "normal", "expires_at": 1005.0})
    assert not speaker.submit({"message": "already stale", "expires_at": 999.0})
    assert not speaker.submit({"message": "", "expires_at": 2000.0})
    assert not speaker.submit({"priority": "high"})
    assert await speaker.pump() == 0  # fast and turning hard: wait
    assert speaker.pending == 3
    clock.now = 1010.0
    state["Vehicle.Chassis.SteeringWheel.Angle"] = 3.0  # straight again
    assert await speaker.pump() == 2
    assert [t for t, _ in tts.spoken] == ["urgent", "low"]
    assert speaker.dropped == ["already stale", "soon stale"]


def test_manoeuvre_policy() -> None:
    policy = ManoeuvrePolicy()
    assert policy.busy({"Vehicle.Powertrain.Transmission.SelectedGear": "R"}.get)
    assert not policy.busy(
        {"Vehicle.Speed": 10.0, "Vehicle.Chassis.SteeringWheel.Angle": 300.0}.get
    )
    assert not policy.busy({}.get)


async def test_push_to_talk_follows_the_voice_button() -> None:
    class Change:
        def __init__(self, path: str, value: object) -> None:
            self.path, self.value = path, value

    ptt = PushToTalk()
    ptt.on_change(Change("Vehicle.Speed", True))
    assert not ptt.pressed
    ptt.on_change(Change("Vehicle.Cabin.Infotainment.VoiceButton.IsPressed", True))
    assert ptt.pressed and ptt.presses == 1
    await asyncio.wait_for(ptt.wait_pressed(), 1)
    ptt.on_change(Change("Vehicle.Cabin.Infotainment.VoiceButton.IsPressed", False))
    assert not ptt.pressed
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ptt.wait_pressed(), 0.05)
