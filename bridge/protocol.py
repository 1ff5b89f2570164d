"""The wire protocol: a versioned JSON envelope, encoded with orjson.

Every WebSocket text/binary frame carries exactly one envelope::

    {"v": 1, "type": "state", "seq": 42, "ts": 1732200000.1, "body": {...}}

``decode`` is the edge of the system: it checks size, JSON syntax, the
envelope's fields and their types, the protocol version and the body of every
known message type, and raises ``ProtocolError`` with a clear message for
anything else. Code behind it works with typed, immutable ``Envelope`` objects.

Forward compatibility:

- An unknown ``type`` decodes fine (its body only has to be an object); the
  receiver ignores it with a log line. If it carries ``seq >= 1`` the receiver
  still records and acks it, so a newer sender is never stalled by an older
  receiver.
- Extra keys in a known body are allowed and ignored.
- ``hello`` envelopes are accepted with any envelope version: their shape is
  frozen forever so two sides can always negotiate (``hello.body.protocols``)
  and close with a clear reason when they share no version. Every other
  envelope must carry a version this side supports.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson

from bridge.errors import ProtocolError

__all__ = [
    "CONTROL_TYPES",
    "DURABLE_TYPES",
    "HOME_ONLY_TYPES",
    "MAX_DEPTH",
    "MAX_MESSAGE_SIZE",
    "MAX_SEQ",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "Envelope",
    "MessageType",
    "decode",
    "encode",
    "is_durable",
    "make_control",
    "negotiate_version",
    "salvage_seq",
]

PROTOCOL_VERSION: Final[int] = 1
"""The protocol version this code speaks by default (the highest it supports)."""

SUPPORTED_VERSIONS: Final[tuple[int, ...]] = (1,)
"""Every protocol version this code can speak."""

MAX_MESSAGE_SIZE: Final[int] = 256 * 1024
"""Default upper bound of one encoded envelope, in bytes."""

MAX_SEQ: Final[int] = 2**63 - 1
"""Sequence numbers are stored in SQLite INTEGER columns (signed 64-bit)."""

MAX_DEPTH: Final[int] = 32
"""Deepest nesting of JSON arrays and objects in one envelope (the envelope object is 1).

Enforced by ``decode``, so every consumer can rely on it: orjson cannot
encode values nested deeper than 254 levels, Python's recursion limit and Home
Assistant's recorder have limits of their own, and nothing CarHub sends needs
more than a handful of levels. A durable message over the limit is rejected
(logged and acked), never handed to a handler.
"""

_MAX_TYPE_LEN: Final[int] = 64
_TYPE_RE: Final[re.Pattern[str]] = re.compile(r"[a-z][a-z0-9_]*\Z")
_STREAM_RE: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_MAX_PEM_CHARS: Final[int] = 64 * 1024


class MessageType(StrEnum):
    """Every message type of protocol version 1."""

    HELLO = "hello"
    STATE = "state"
    SNAPSHOT = "snapshot"
    EVENT = "event"
    VOICE_REQUEST = "voice_request"
    VOICE_REPLY = "voice_reply"
    NOTIFY = "notify"
    COMMAND = "command"
    COMMAND_RESULT = "command_result"
    VOCABULARY = "vocabulary"
    RENEW_REQUEST = "renew_request"
    RENEW_RESPONSE = "renew_response"
    ADDRESSES = "addresses"
    ACK = "ack"
    PING = "ping"
    PONG = "pong"


DURABLE_TYPES: Final[frozenset[str]] = frozenset(
    {
        MessageType.STATE,
        MessageType.SNAPSHOT,
        MessageType.EVENT,
        MessageType.VOICE_REQUEST,
        MessageType.VOICE_REPLY,
        MessageType.NOTIFY,
        MessageType.COMMAND,
        MessageType.COMMAND_RESULT,
        MessageType.VOCABULARY,
        MessageType.RENEW_REQUEST,
        MessageType.RENEW_RESPONSE,
        MessageType.ADDRESSES,
    }
)
"""Types stored in the sender's outbox, numbered from 1, acked and deduplicated."""

CONTROL_TYPES: Final[frozenset[str]] = frozenset(
    {MessageType.HELLO, MessageType.ACK, MessageType.PING, MessageType.PONG}
)
"""Types sent with ``seq = 0``: never stored, never acked."""

HOME_ONLY_TYPES: Final[frozenset[str]] = frozenset(
    {
        MessageType.NOTIFY,
        MessageType.COMMAND,
        MessageType.VOICE_REPLY,
        MessageType.VOCABULARY,
        MessageType.RENEW_RESPONSE,
    }
)
"""Durable types only the home sends; a hub refuses them from a car (by direction)."""

_KNOWN: Final[dict[str, MessageType]] = {m.value: m for m in MessageType}


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One message on the wire.

    ``type`` is a ``MessageType`` for known types and a plain ``str`` for
    unknown future ones. ``seq`` is per sender and per link, strictly
    increasing from 1 for durable types and 0 for control types. ``ts`` is the
    sender's unix time when the message was created (not when it was sent).
    """

    v: int
    type: str
    seq: int
    ts: float
    body: dict[str, Any]
    stream: str = ""
    """The sender's stream id (its outbox's), set by the receiving link; "" if unknown."""
    redelivered: bool = False
    """Set by the receiving link when this message may have been handed to a handler before
    (an earlier attempt raised or deferred, or the receiving process died before recording it)."""

    @property
    def message_id(self) -> str:
        """Stable id of a durable message across resends and restarts: ``"<stream>:<seq>"``."""
        return f"{self.stream}:{self.seq}"

    @property
    def known(self) -> bool:
        """True when this side knows the message type."""
        return self.type in _KNOWN

    @property
    def durable(self) -> bool:
        """True when the message must be acked: known durable type, or unknown with seq >= 1."""
        return is_durable(self.type, self.seq)


def is_durable(type_: str, seq: int = 1) -> bool:
    """Whether a message of this type (and seq) belongs to the acked, deduplicated stream."""
    if type_ in _KNOWN:
        return type_ in DURABLE_TYPES
    return seq >= 1


def make_control(
    type_: MessageType, body: dict[str, Any], *, v: int = PROTOCOL_VERSION
) -> Envelope:
    """Build a control envelope (hello, ack, ping, pong): ``seq = 0``, ``ts = now``."""
    if type_ not in CONTROL_TYPES:
        raise ValueError(f"{type_} is not a control type")
    return Envelope(v=v, type=type_, seq=0, ts=time.time(), body=body)


def negotiate_version(mine: tuple[int, ...] | list[int], theirs: Any) -> int | None:  # noqa: ANN401
    """Return the highest version both sides speak, or None when they share none."""
    if not isinstance(theirs, list):
        return None
    common = {p for p in theirs if type(p) is int} & set(mine)
    return max(common) if common else None


def encode(env: Envelope) -> bytes:
    """Serialize an envelope to compact UTF-8 JSON.

    Raises ``ProtocolError`` if the body holds something JSON cannot carry
    (that is a bug on the sending side, reported before anything is sent).
    """
    try:
        return orjson.dumps(
            {"v": env.v, "type": str(env.type), "seq": env.seq, "ts": env.ts, "body": env.body}
        )
    except (TypeError, orjson.JSONEncodeError) as err:
        raise ProtocolError(f"cannot encode {env.type!r} message: {err}") from err


def decode(data: bytes | str, *, max_size: int = MAX_MESSAGE_SIZE) -> Envelope:
    """Parse and validate one envelope; raise ``ProtocolError`` for anything invalid."""
    if isinstance(data, str):
        if len(data) > max_size:  # cheap early reject: a char is at least one byte
            raise ProtocolError(f"message too large: more than {max_size} bytes")
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ProtocolError(f"message is not valid UTF-8 text: {err.reason}") from err
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise ProtocolError(f"message must be bytes or str, not {type(data).__name__}")
    if len(raw) > max_size:
        raise ProtocolError(f"message too large: {len(raw)} bytes (limit {max_size})")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise ProtocolError(f"malformed JSON: {err}") from err
    if not isinstance(obj, dict):
        raise ProtocolError(f"envelope must be a JSON object, not {_jtype(obj)}")
    _check_depth(obj)
    return _validate_envelope(obj)


def _check_depth(obj: object) -> None:
    """Raise ``ProtocolError`` if ``obj`` nests arrays/objects deeper than ``MAX_DEPTH``.

    Iterative, so a hostile value cannot exhaust the Python stack here.
    """
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ProtocolError(f"message nested too deeply (limit {MAX_DEPTH} levels)")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))


def salvage_seq(data: bytes | str, *, max_size: int = MAX_MESSAGE_SIZE) -> tuple[str, int] | None:
    """For a message ``decode`` rejected: its ``(type, seq)`` if those two fields are sound.

    A receiver uses this to reject one bad *durable* message (log it, ack it so
    the sender stops resending it) instead of dropping the whole link. Returns
    None when the message is too broken to tell which message it was.
    """
    if len(data) > max_size:
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    type_, seq = obj.get("type"), obj.get("seq")
    if not isinstance(type_, str) or not _TYPE_RE.match(type_) or len(type_) > _MAX_TYPE_LEN:
        return None
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        return None
    return type_, seq


def _validate_envelope(obj: dict[str, Any]) -> Envelope:
    missing = [k for k in ("v", "type", "seq", "ts", "body") if k not in obj]
    if missing:
        raise ProtocolError(f"envelope lacks field(s): {', '.join(missing)}")
    v = obj["v"]
    if type(v) is not int or v < 1:
        raise ProtocolError(f"envelope field 'v' must be a positive integer, got {v!r:.40}")
    type_ = obj["type"]
    if not isinstance(type_, str) or len(type_) > _MAX_TYPE_LEN or not _TYPE_RE.match(type_):
        raise ProtocolError(
            f"envelope field 'type' must be a lowercase identifier, got {type_!r:.70}"
        )
    seq = obj["seq"]
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise ProtocolError(f"envelope field 'seq' must be an integer >= 0, got {seq!r:.40}")
    ts = obj["ts"]
    if not _is_number(ts):
        raise ProtocolError(f"envelope field 'ts' must be a number, got {ts!r:.40}")
    body = obj["body"]
    if not isinstance(body, dict):
        raise ProtocolError(f"envelope field 'body' must be an object, not {_jtype(body)}")
    known = _KNOWN.get(type_)
    if known is None:
        return Envelope(v=v, type=type_, seq=seq, ts=float(ts), body=body)
    if known is not MessageType.HELLO and v not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            f"unsupported protocol version {v} "
            f"(this side speaks {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    if known in CONTROL_TYPES:
        if seq != 0:
            raise ProtocolError(f"control message {known} must have seq 0, got {seq}")
    elif seq == 0:
        raise ProtocolError(f"durable message {known} must have seq >= 1")
    _BODY_CHECKS[known](body)
    return Envelope(v=v, type=known, seq=seq, ts=float(ts), body=body)


# --- body checks: required keys with their JSON types; extra keys are allowed ---

_Check = Callable[[Any], bool]


def _is_number(x: object) -> bool:
    return (type(x) is int) or (type(x) is float and math.isfinite(x))


def _jtype(x: object) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        type(None): "null",
    }.get(type(x), type(x).__name__)


def _need(body: Mapping[str, Any], key: str, check: _Check, what: str, t: str) -> None:
    if key not in body:
        raise ProtocolError(f"{t} body lacks {key!r}")
    if not check(body[key]):
        raise ProtocolError(f"{t} body field {key!r} must be {what}, got {_jtype(body[key])}")


def _opt(body: Mapping[str, Any], key: str, check: _Check, what: str, t: str) -> None:
    if key in body and not check(body[key]):
        raise ProtocolError(f"{t} body field {key!r} must be {what}, got {_jtype(body[key])}")


def _is_str(x: object) -> bool:
    return isinstance(x, str)


def _is_bool(x: object) -> bool:
    return isinstance(x, bool)


def _is_dict(x: object) -> bool:
    return isinstance(x, dict)


def _is_seq(x: object) -> bool:
    return type(x) is int and 0 <= x <= MAX_SEQ


def _is_str_list(x: object) -> bool:
    return isinstance(x, list) and all(isinstance(i, str) for i in x)


def _is_int_list(x: object) -> bool:
    return isinstance(x, list) and len(x) > 0 and all(type(i) is int for i in x)


def _check_hello(b: Mapping[str, Any]) -> None:
    t = "hello"
    _need(b, "protocols", _is_int_list, "a non-empty array of integers", t)
    _opt(b, "agent_version", _is_str, "a string", t)
    _opt(b, "vehicle", _is_dict, "an object", t)
    _opt(b, "capabilities", _is_str_list, "an array of strings", t)
    _opt(b, "signals", _is_dict, "an object", t)
    _opt(b, "hub_id", _is_str, "a string", t)
    _opt(b, "acked_seq", _is_seq, "an integer >= 0", t)
    _opt(b, "stream_id", _is_stream_id, "a stream id (1-64 of [A-Za-z0-9_-])", t)
    _opt(b, "acked_stream", _is_stream_id, "a stream id (1-64 of [A-Za-z0-9_-])", t)


def _is_stream_id(x: object) -> bool:
    return isinstance(x, str) and _STREAM_RE.match(x) is not None


def _is_pem(x: object) -> bool:
    return isinstance(x, str) and 0 < len(x) <= _MAX_PEM_CHARS


def _check_signals(t: str) -> Callable[[Mapping[str, Any]], None]:
    def check(b: Mapping[str, Any]) -> None:
        _need(b, "signals", _is_dict, "an object", t)
        for path, entry in b["signals"].items():
            if not isinstance(entry, dict) or "value" not in entry:
                raise ProtocolError(f"{t} signal {path!r:.80} must be an object with 'value'")
            if "ts" in entry and not _is_number(entry["ts"]):
                raise ProtocolError(f"{t} signal {path!r:.80} has a non-numeric 'ts'")

    return check


def _check_event(b: Mapping[str, Any]) -> None:
    t = "event"
    _need(b, "kind", _is_str, "a string", t)
    _opt(b, "ts", _is_number, "a number", t)
    _opt(b, "data", _is_dict, "an object", t)


def _check_voice_request(b: Mapping[str, Any]) -> None:
    t = "voice_request"
    _need(b, "request_id", _is_str, "a string", t)
    _need(b, "text", _is_str, "a string", t)
    _opt(b, "language", _is_str, "a string", t)


def _check_voice_reply(b: Mapping[str, Any]) -> None:
    t = "voice_reply"
    _need(b, "request_id", _is_str, "a string", t)
    _need(b, "text", _is_str, "a string", t)
    _opt(b, "success", _is_bool, "a boolean", t)


_PRIORITIES: Final[frozenset[str]] = frozenset({"low", "normal", "high"})


def _check_notify(b: Mapping[str, Any]) -> None:
    t = "notify"
    _need(b, "message", _is_str, "a string", t)
    _need(b, "expires_at", _is_number, "a number", t)
    _opt(b, "priority", lambda x: x in _PRIORITIES, "one of low, normal, high", t)


def _check_command(b: Mapping[str, Any]) -> None:
    t = "command"
    _need(b, "command", _is_str, "a string", t)
    _need(b, "expires_at", _is_number, "a number", t)
    _opt(b, "args", _is_dict, "an object", t)


def _check_command_result(b: Mapping[str, Any]) -> None:
    t = "command_result"
    _need(b, "command_seq", _is_seq, "an integer >= 0", t)
    _need(b, "ok", _is_bool, "a boolean", t)
    _opt(b, "detail", _is_str, "a string", t)
    _opt(b, "data", _is_dict, "an object", t)


def _check_vocabulary(b: Mapping[str, Any]) -> None:
    t = "vocabulary"
    _need(b, "language", _is_str, "a string", t)
    _opt(b, "entities", _is_str_list, "an array of strings", t)
    _opt(b, "areas", _is_str_list, "an array of strings", t)


def _check_renew_request(b: Mapping[str, Any]) -> None:
    t = "renew_request"
    _need(b, "request_id", _is_str, "a string", t)
    _need(b, "csr", _is_pem, "a PEM string of at most 64 KiB", t)


def _check_renew_response(b: Mapping[str, Any]) -> None:
    t = "renew_response"
    _need(b, "request_id", _is_str, "a string", t)
    _need(b, "ok", _is_bool, "a boolean", t)
    _opt(b, "certificate", _is_pem, "a PEM string of at most 64 KiB", t)
    _opt(b, "ca", _is_pem, "a PEM string of at most 64 KiB", t)
    _opt(b, "detail", _is_str, "a string", t)
    _opt(b, "not_after", _is_number, "a number", t)
    if b["ok"] and "certificate" not in b:
        raise ProtocolError("renew_response with ok=true lacks 'certificate'")


def _check_addresses(b: Mapping[str, Any]) -> None:
    t = "addresses"
    _need(b, "lan_urls", _is_str_list, "an array of strings", t)
    _opt(b, "remote_urls", _is_str_list, "an array of strings", t)
    if b.get("external_url") is not None and not _is_str(b["external_url"]):
        raise ProtocolError("addresses field 'external_url' must be a string or null")


def _check_ack(b: Mapping[str, Any]) -> None:
    _need(b, "seq", _is_seq, "an integer >= 0", "ack")


def _check_ping(t: str) -> Callable[[Mapping[str, Any]], None]:
    def check(b: Mapping[str, Any]) -> None:
        _need(b, "t", _is_number, "a number", t)

    return check


_BODY_CHECKS: Final[dict[MessageType, Callable[[Mapping[str, Any]], None]]] = {
    MessageType.HELLO: _check_hello,
    MessageType.STATE: _check_signals("state"),
    MessageType.SNAPSHOT: _check_signals("snapshot"),
    MessageType.EVENT: _check_event,
    MessageType.VOICE_REQUEST: _check_voice_request,
    MessageType.VOICE_REPLY: _check_voice_reply,
    MessageType.NOTIFY: _check_notify,
    MessageType.COMMAND: _check_command,
    MessageType.COMMAND_RESULT: _check_command_result,
    MessageType.VOCABULARY: _check_vocabulary,
    MessageType.RENEW_REQUEST: _check_renew_request,
    MessageType.RENEW_RESPONSE: _check_renew_response,
    MessageType.ADDRESSES: _check_addresses,
    MessageType.ACK: _check_ack,
    MessageType.PING: _check_ping("ping"),
    MessageType.PONG: _check_ping("pong"),
}
