"""The envelope codec: validation at the edge, clear errors, property-based checks."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import ProtocolError
from bridge.protocol import (
    MAX_MESSAGE_SIZE,
    Envelope,
    MessageType,
    decode,
    encode,
    is_durable,
    negotiate_version,
    salvage_seq,
)


def _raw(**fields: Any) -> bytes:
    base: dict[str, Any] = {"v": 1, "type": "event", "seq": 1, "ts": 1.5, "body": {"kind": "x"}}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_roundtrip_of_every_known_type() -> None:
    bodies: dict[MessageType, dict[str, Any]] = {
        MessageType.HELLO: {"protocols": [1], "hub_id": "h", "acked_seq": 0},
        MessageType.STATE: {"signals": {"Vehicle.Speed": {"value": 1.5, "ts": 2.0}}},
        MessageType.SNAPSHOT: {"signals": {}},
        MessageType.EVENT: {"kind": "dtc_appeared", "ts": 1.0, "data": {"code": "P0301"}},
        MessageType.VOICE_REQUEST: {"request_id": "r", "text": "hi", "language": "en"},
        MessageType.VOICE_REPLY: {"request_id": "r", "text": "ok", "success": True},
        MessageType.NOTIFY: {"message": "m", "priority": "low", "expires_at": 9.0},
        MessageType.COMMAND: {"command": "snapshot", "args": {}, "expires_at": 9.0},
        MessageType.COMMAND_RESULT: {"command_seq": 3, "ok": True, "detail": "", "data": {}},
        MessageType.VOCABULARY: {"language": "en", "entities": ["a"], "areas": []},
        MessageType.RENEW_REQUEST: {"request_id": "r", "csr": "-----BEGIN CERTIFICATE REQUEST"},
        MessageType.RENEW_RESPONSE: {"request_id": "r", "ok": True, "certificate": "PEM"},
        MessageType.ADDRESSES: {"lan_urls": ["wss://h:8766"], "remote_urls": ["https://x/"]},
        MessageType.ACK: {"seq": 5},
        MessageType.PING: {"t": 1.0},
        MessageType.PONG: {"t": 1.0},
    }
    assert set(bodies) == set(MessageType)
    for type_, body in bodies.items():
        env = Envelope(v=1, type=type_, seq=1 if is_durable(type_) else 0, ts=1.0, body=body)
        assert decode(encode(env)) == env
        assert decode(encode(env).decode()) == env  # text frames too


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b"\xff\xfe\x00garbage", "malformed JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"v": 1}', "lacks field"),
        (_raw(v="1"), "'v' must be a positive integer"),
        (_raw(v=True), "'v' must be a positive integer"),
        (_raw(type=7), "'type' must be"),
        (_raw(type="Bad Type!"), "'type' must be"),
        (_raw(seq=-1), "'seq' must be"),
        (_raw(seq=1.5), "'seq' must be"),
        (_raw(ts="now"), "'ts' must be a number"),
        (_raw(body=[]), "'body' must be an object"),
        (_raw(v=2), "unsupported protocol version 2"),
        (_raw(seq=0), "must have seq >= 1"),
        (_raw(type="ack", seq=3, body={"seq": 1}), "must have seq 0"),
        (_raw(type="ack", seq=0, body={"seq": "1"}), "'seq' must be an integer"),
        (_raw(body={}), "event body lacks 'kind'"),
        (_raw(type="notify", body={"message": "m"}), "lacks 'expires_at'"),
        (_raw(type="notify", body={"message": "m", "expires_at": 1, "priority": "x"}), "one of"),
        (_raw(type="state", body={"signals": {"a": 1}}), "must be an object with 'value'"),
        (_raw(type="hello", seq=0, body={"protocols": []}), "non-empty array"),
    ],
)
def test_bad_input_gives_a_clear_protocol_error(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode(data)


def test_size_limit() -> None:
    big = _raw(body={"kind": "x", "data": {"blob": "x" * MAX_MESSAGE_SIZE}})
    with pytest.raises(ProtocolError, match="too large"):
        decode(big)
    with pytest.raises(ProtocolError, match="too large"):
        decode(big.decode())
    assert decode(_raw(), max_size=200).seq == 1
    with pytest.raises(ProtocolError, match="too large"):
        decode(_raw(), max_size=10)


def test_unknown_future_type_decodes_and_is_durable_by_seq() -> None:
    env = decode(_raw(type="tire_report", seq=4, body={"anything": [1, 2]}))
    assert env.type == "tire_report" and not env.known and env.durable
    control = decode(_raw(type="future_ping", seq=0, body={}))
    assert not control.durable


def test_hello_of_a_newer_version_still_decodes_for_negotiation() -> None:
    env = decode(_raw(v=7, type="hello", seq=0, body={"protocols": [6, 7]}))
    assert negotiate_version((1,), env.body["protocols"]) is None
    assert negotiate_version((1, 2), [2, 3]) == 2
    assert negotiate_version((1,), "garbage") is None


def test_salvage_seq_only_for_sound_type_and_seq() -> None:
    assert salvage_seq(_raw(type="state", seq=9, body={"signals": 3})) == ("state", 9)
    assert salvage_seq(b"\x00\x01") is None
    assert salvage_seq(_raw(seq=0)) is None
    assert salvage_seq(_raw(seq="9")) is None


def test_encode_rejects_unserializable_body() -> None:
    with pytest.raises(ProtocolError, match="cannot encode"):
        encode(Envelope(v=1, type="event", seq=1, ts=0.0, body={"x": object()}))


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_decoder_never_raises_anything_but_protocol_error_on_bytes(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(data)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["v", "type", "seq", "ts", "body", "extra"]), _json, max_size=6
    ),
    st.sampled_from([*[m.value for m in MessageType], "future_type"]),
)
def test_decoder_never_raises_anything_but_protocol_error_on_json(
    obj: dict[str, Any], type_: str
) -> None:
    for candidate in (obj, {**obj, "type": type_}, {**obj, "v": 1, "type": type_, "seq": 1}):
        try:
            env = decode(orjson.dumps(candidate))
        except ProtocolError:
            continue
        assert isinstance(env.body, dict)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([MessageType.EVENT, "future_type"]),
    st.integers(min_value=1, max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.dictionaries(st.text(), _json, max_size=5),
)
def test_roundtrip_property(type_: str, seq: int, ts: float, data: dict[str, Any]) -> None:
    env = Envelope(v=1, type=type_, seq=seq, ts=ts, body={"kind": "alert", "data": data})
    assert decode(encode(env)) == env
