"""Nothing acted on twice: redelivered voice requests and events, dead letters as repairs.

Also the property that whatever the bridge's decoder accepts can be handed to
the integration's handler (and printed by ``carhub-bridge serve``) without
crashing either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from unittest.mock import patch

import orjson
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_mock_service,
)

from bridge.commands.serve import _Printer
from bridge.deadletter import DeadLetter
from bridge.errors import ProtocolError
from bridge.protocol import MAX_DEPTH, Envelope, MessageType, decode
from custom_components.carhub.const import DOMAIN, EVENT_VEHICLE
from custom_components.carhub.coordinator import CarHubCoordinator

from .conftest import PEER, VEHICLE_ID, connect_car, hub, message

STREAM = "a1b2c3d4e5f60718"


def _from_stream(env: Envelope, *, redelivered: bool = False) -> Envelope:
    """As the bridge hands it over: with the car's stream id (and the redelivery flag)."""
    return dataclasses.replace(env, stream=STREAM, redelivered=redelivered)


async def test_a_redelivered_event_is_not_fired_twice_even_after_a_restart(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    events = async_capture_events(hass, EVENT_VEHICLE)
    await connect_car(hass)
    env = _from_stream(
        message(MessageType.EVENT, {"kind": "dtc_appeared", "ts": time.time(), "data": {}})
    )
    await hub(hass).on_message(PEER, env)
    await hass.async_block_till_done()
    assert len(events) == 1
    # Home Assistant restarts (the record is on disk) and the car resends it.
    await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    await hub(hass).on_message(PEER, dataclasses.replace(env, redelivered=True))
    await hass.async_block_till_done()
    assert len(events) == 1
    # The next event of the stream is fired; an event of a new stream (the car's
    # outbox was recreated, numbering from 1 again) too.
    nxt = dataclasses.replace(env, seq=env.seq + 1)
    await hub(hass).on_message(PEER, nxt)
    await hub(hass).on_message(PEER, dataclasses.replace(env, stream="new-stream", seq=1))
    await hass.async_block_till_done()
    assert len(events) == 3


async def test_a_voice_request_is_recorded_before_it_is_carried_out(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await connect_car(hass)
    calls = async_mock_service(hass, "light", "turn_on")
    hass.states.async_set("light.kitchen_light", "off", {"friendly_name": "Kitchen light"})
    env = _from_stream(
        message(
            MessageType.VOICE_REQUEST,
            {"request_id": "r-1", "text": "turn on the kitchen light", "language": "en"},
        )
    )
    seen_record: list[bool] = []
    original = CarHubCoordinator.async_on_message

    async def spy(self: CarHubCoordinator, e: Envelope) -> None:
        # At the moment the coordinator acts, the request is already on record.
        seen_record.append(hub(hass)._handled.skip(VEHICLE_ID, e))
        await original(self, e)

    with patch.object(CarHubCoordinator, "async_on_message", spy):
        await hub(hass).on_message(PEER, env)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert seen_record == [True]
    first = len(calls)
    await hub(hass).on_message(PEER, dataclasses.replace(env, redelivered=True))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(calls) == first  # not carried out again


async def test_a_dead_letter_raises_a_repair_issue(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    letter = DeadLetter(
        peer=VEHICLE_ID,
        stream=STREAM,
        seq=7,
        type="event",
        ts=1.0,
        body={"kind": "alert"},
        reason="RuntimeError: boom",
        attempts=3,
        dead_at=2.0,
    )
    # As the bridge's HubServer reports it, on the event loop.
    hub(hass)._on_dead_letter(letter)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"dead_letter_{VEHICLE_ID}")
    assert issue is not None
    assert issue.translation_key == "dead_letter"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["seq"] == "7"
    assert "boom" in issue.translation_placeholders["reason"]
    assert issue.translation_placeholders["path"].endswith("dead-letters.db")


# --- whatever the decoder accepts, every consumer can take --------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=40,
)


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"0" + b"]" * depth


@st.composite
def _frames(draw: st.DrawFn) -> bytes:
    """Envelopes of every car type with hostile shapes: deep values, odd types, junk keys."""
    type_ = draw(
        st.sampled_from(["state", "snapshot", "event", "voice_request", "command_result", "x_new"])
    )
    value = orjson.dumps(draw(_json))
    depth = draw(st.sampled_from([0, 1, MAX_DEPTH - 6, MAX_DEPTH - 4, MAX_DEPTH, 40, 300]))
    if depth:
        value = _deep(depth)
    shapes = {
        "state": b'{"signals":{"Vehicle.Speed":{"value":%s,"ts":1.0},"X":%s}}',
        "snapshot": b'{"signals":{"Vehicle.Speed":{"value":%s},"X":{"value":%s,"ts":2}}}',
        "event": b'{"kind":"alert","ts":1,"data":{"a":%s,"b":%s}}',
        "voice_request": b'{"request_id":"r","text":"hi","language":"en","x":%s,"y":%s}',
        "command_result": b'{"command_seq":1,"ok":true,"data":{"a":%s},"detail":%s}',
        "x_new": b'{"a":%s,"b":%s}',
    }
    body = shapes[type_] % (value, orjson.dumps(draw(_json)))
    seq = draw(st.integers(min_value=1, max_value=1000))
    return b'{"v":1,"type":"%s","seq":%d,"ts":1.0,"body":%s}' % (type_.encode(), seq, body)


async def test_whatever_the_decoder_accepts_can_be_printed_and_handled(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    await connect_car(hass)
    loop = asyncio.get_running_loop()
    carhub = hub(hass)
    accepted: list[int] = []
    handled_seq = iter(range(10_000, 10**6))

    async def hand_over(env: Envelope) -> None:
        await carhub.on_message(PEER, env)
        await hass.async_block_till_done()

    @settings(
        max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(_frames())
    def check(data: bytes) -> None:
        try:
            env = decode(data)
        except ProtocolError:
            return
        accepted.append(env.seq)
        # serve's printer writes it as one JSON line.
        out = io.StringIO()
        printer = _Printer(out)
        asyncio.run_coroutine_threadsafe(printer.on_message(PEER, env), loop).result(30)
        assert orjson.loads(out.getvalue())["seq"] == env.seq
        # The integration's handler takes it (fresh seqs: in order, as the link delivers).
        env = dataclasses.replace(env, stream=STREAM, seq=next(handled_seq))
        asyncio.run_coroutine_threadsafe(hand_over(env), loop).result(30)

    # (Voice requests here are from 1970: answered "too late", no Assist run needed.)
    await hass.async_add_executor_job(check)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(accepted) > 20  # the property was exercised, not vacuous
