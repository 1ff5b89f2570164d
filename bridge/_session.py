"""One established link after the hello exchange: the same engine on both ends.

A ``LinkSession`` runs four tasks over one WebSocket until it closes:

- receive: decode every frame at the edge, enforce the inbound rate limit,
  answer pings, apply acks, hand new durable messages to ``deliver`` in order
  (duplicates dropped through the ``InboundLedger``, expired notify/command
  dropped, unknown types logged and skipped);
- ack: persist the ledger, then send one cumulative ack for everything handled
  so far (acks coalesce naturally while the receiver is busy);
- send: drain the ``Outbox`` in seq order with up to ``window`` unacked
  messages in flight (pipelining: the sender never waits for each ack);
- heartbeat: ping every ``heartbeat_s``; the RTT comes from the pong. A link
  that carries nothing for ``dead_after_s`` is closed as dead.

A ``deliver`` that raises ``bridge.errors.DeferMessage`` has not taken the
message: it is not recorded or acked, nothing after it on this link is
handled, and the link closes with ``CLOSE_RETRY_SOON`` (4005) so the peer's
outbox sends it again after reconnecting (see ``retry_reason``).

A ``deliver`` that raises anything else (with a ``dead_letter`` sink, as the
hub has) is treated the same way: not acked, 4005, resent. The
``FailureTracker`` counts the attempts; the ``max_attempts``-th failure sends
the message to ``dead_letter`` (stored on disk with its payload, reported)
and only then is it recorded and acked. Without a sink (the car side) a
failing handler is logged and the message counts as handled.

Every message handed over carries its stable id (``Envelope.stream`` +
``seq``) and ``redelivered`` (``InboundLedger.mark_handing``). A durable seq
more than ``MAX_SEQ_JUMP`` past the last one handled (or, for a peer without
a record, above ``MAX_FIRST_SEQ``) closes the link with 1002 and a reason:
accepting it would make every later message of that stream a "duplicate".
Types in ``refuse_types`` (the other side's only) are rejected, logged and
acked, never handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import WSMsgType

from bridge import _failpoint
from bridge.channel import MessageChannel
from bridge.deadletter import FailureTracker
from bridge.errors import BridgeError, DeferMessage, OutboxError, ProtocolError
from bridge.ledger import InboundLedger, SeqVerdict
from bridge.outbox import Outbox
from bridge.protocol import (
    MAX_MESSAGE_SIZE,
    Envelope,
    MessageType,
    decode,
    encode,
    is_durable,
    make_control,
    salvage_seq,
)

__all__ = [
    "CLOSE_DEAD_PEER",
    "CLOSE_INCOMPATIBLE",
    "CLOSE_INTERNAL",
    "CLOSE_INVALID",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL",
    "CLOSE_REPLACED",
    "CLOSE_RETRY_SOON",
    "CLOSE_SHUTDOWN",
    "CLOSE_TOO_BIG",
    "CLOSE_TRY_LATER",
    "CLOSE_UNAUTHORIZED",
    "MAX_FIRST_SEQ",
    "MAX_SEQ_JUMP",
    "DeadLetterSink",
    "LinkSession",
    "TokenBucket",
    "WebSocket",
    "is_expired",
    "retry_after_from",
    "retry_reason",
]

_LOGGER = logging.getLogger(__name__)

# WebSocket close codes used by the link (1xxx: RFC 6455, 4xxx: CarHub).
CLOSE_SHUTDOWN: Final = 1001  # going away: the other side stops
CLOSE_PROTOCOL: Final = 1002  # unparseable frame or protocol violation
CLOSE_INVALID: Final = 1007  # a frame that is not a valid envelope
CLOSE_POLICY: Final = 1008  # a limit was broken (rate)
CLOSE_TOO_BIG: Final = 1009  # frame larger than the size limit
CLOSE_INTERNAL: Final = 1011  # storage failure on this side
CLOSE_TRY_LATER: Final = 1013  # too many connections
CLOSE_REPLACED: Final = 4001  # the same car connected again
CLOSE_INCOMPATIBLE: Final = 4002  # no common protocol version
CLOSE_UNAUTHORIZED: Final = 4003  # certificate revoked / no valid vehicle id
CLOSE_DEAD_PEER: Final = 4004  # nothing received for dead_after_s
CLOSE_RETRY_SOON: Final = 4005  # temporarily unavailable: reconnect soon (hint in the reason)

# The optional retry hint leads the 4005 reason (so the 123-byte cut never drops it).
_RETRY_HINT_RE: Final = re.compile(r"retry_after=(\d{1,6}(?:\.\d{1,3})?);\s?")

# Any transport with a WebSocket's shape (bridge.channel): direct mTLS or the tunnel.
WebSocket = MessageChannel

MAX_SEQ_JUMP: Final = 2**24
"""Largest plausible step past the last seq handled from a peer.

A gap only comes from the sender's outbox dropping or compacting its own
unacked state rows; a 64 MiB outbox holds far fewer than 16.7 million rows,
so a larger jump is a damaged or hostile outbox."""

MAX_FIRST_SEQ: Final = 2**53
"""Largest plausible seq from a peer (or stream) the receiver has no record of.

A counter started at 1 does not get there (285,000 years at 1000 msg/s); it is
also the largest integer every JSON reader keeps exact."""

DeadLetterSink = Callable[[Envelope, str, int], Awaitable[None]]
"""Stores and reports a message given up on: ``(envelope, reason, attempts)``."""

_EXPIRING: Final[frozenset[str]] = frozenset({MessageType.NOTIFY, MessageType.COMMAND})


def is_expired(env: Envelope, now: float | None = None) -> bool:
    """True for a notify or command whose ``expires_at`` has passed (never run it late)."""
    if env.type not in _EXPIRING:
        return False
    expires = env.body.get("expires_at")
    return isinstance(expires, (int, float)) and expires < (time.time() if now is None else now)


def retry_reason(reason: str, retry_after: float | None) -> str:
    """The close reason of a 4005: ``"retry_after=<seconds>; <reason>"`` with a hint, else as is.

    The hint is rounded to milliseconds and bounded to [0, 999999] seconds.
    """
    if retry_after is None or not math.isfinite(retry_after):
        return reason
    hint = min(max(retry_after, 0.0), 999_999.0)
    return f"retry_after={hint:.3f}".rstrip("0").rstrip(".") + f"; {reason}"


def retry_after_from(reason: str | None) -> float | None:
    """The retry hint (seconds) at the start of a 4005 close reason, or None."""
    if not reason:
        return None
    match = _RETRY_HINT_RE.match(reason)
    return float(match.group(1)) if match else None


class TokenBucket:
    """Classic token bucket: ``rate`` tokens per second, at most ``burst`` stored."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self, n: float = 1.0) -> bool:
        """Consume ``n`` tokens if available (enforcement)."""
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def reserve(self, n: float = 1.0) -> float:
        """Consume ``n`` tokens now, possibly going into debt; return how long to wait (pacing)."""
        self._refill()
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class _Closed(Exception):
    """Internal: the session decided to close; unwinds the receive loop."""


class LinkSession:
    """Runs one established link (after hello) until it closes; see the module doc."""

    def __init__(
        self,
        *,
        ws: WebSocket,
        name: str,
        version: int,
        outbox: Outbox,
        ledger: InboundLedger,
        ledger_peer: str,
        deliver: Callable[[Envelope], Awaitable[None]],
        start_after: int,
        window: int = 1000,
        max_message_bytes: int = MAX_MESSAGE_SIZE,
        heartbeat_s: float = 15.0,
        dead_after_s: float = 45.0,
        inbound_limit: TokenBucket | None = None,
        outbound_pace: TokenBucket | None = None,
        refuse_types: frozenset[str] = frozenset(),
        dead_letter: DeadLetterSink | None = None,
        failures: FailureTracker | None = None,
        max_attempts: int = 3,
        retry_after_failure_s: float = 1.0,
    ) -> None:
        self.ws = ws
        self.name = name
        self.version = version
        self._outbox = outbox
        self._ledger = ledger
        self._peer = ledger_peer
        self._deliver = deliver
        self._window = max(1, window)
        self._max_bytes = max_message_bytes
        self._heartbeat_s = heartbeat_s
        self._dead_after_s = dead_after_s
        self._inbound = inbound_limit
        self._pace = outbound_pace
        self._refuse = refuse_types
        self._dead_letter = dead_letter
        self._failures = failures if failures is not None else FailureTracker()
        self._max_attempts = max(1, max_attempts)
        self._retry_after_failure_s = retry_after_failure_s
        # The peer told us in its hello what it has; everything above is sent again.
        self._peer_acked = start_after
        self._sent_high = start_after
        self._acked_sent = ledger.last(ledger_peer)
        self._force_ack = False
        self._wake = asyncio.Event()
        self._ack_needed = asyncio.Event()
        self._closing = False
        self._close_after: tuple[int, int, str] | None = None
        self.rtt_ms: float | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.received = 0
        self.duplicates = 0

    # -- public ------------------------------------------------------------------

    def wake(self) -> None:
        """New messages are in the outbox: let the sender look."""
        self._wake.set()

    async def run(self) -> None:
        """Run until the link closes (by either side, by error or by ``close``)."""
        tasks = [
            asyncio.create_task(self._receive_loop(), name=f"{self.name}-recv"),
            asyncio.create_task(self._send_loop(), name=f"{self.name}-send"),
            asyncio.create_task(self._ack_loop(), name=f"{self.name}-ack"),
            asyncio.create_task(self._heartbeat_loop(), name=f"{self.name}-ping"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.cancelled():
                    continue
                err = task.exception()
                if err is not None and not isinstance(err, _Closed):
                    if isinstance(err, (ConnectionError, OSError)):
                        self._note(None, f"connection lost: {err!r}")
                    elif isinstance(err, OutboxError):
                        _LOGGER.error("%s: %s", self.name, err)
                        await self.close(CLOSE_INTERNAL, "storage failure on the other side")
                    else:
                        _LOGGER.error("%s: link task failed", self.name, exc_info=err)
                        await self.close(CLOSE_INTERNAL, "internal error")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Record what was handled even if the final ack could not be sent.
            with contextlib.suppress(BridgeError):
                await self._ledger.flush()
            if not self.ws.closed:
                with contextlib.suppress(Exception):
                    await self.ws.close(code=CLOSE_SHUTDOWN, message=b"link ended")

    def close_after_ack(self, seq: int, code: int, reason: str) -> None:
        """Close the link once the ack covering ``seq`` (a received message) has been sent.

        For a handler that wants to reconnect after the message it is handling
        (e.g. with a renewed certificate) without making the peer resend it.
        """
        self._close_after = (seq, code, reason)
        self._ack_needed.set()

    async def close(self, code: int, reason: str) -> None:
        """Close the WebSocket with a code and a human-readable reason (max 123 bytes)."""
        if self._closing:
            return
        self._closing = True
        self._note(code, reason)
        _LOGGER.info("%s: closing (%d): %s", self.name, code, reason)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.ws.close(code=code, message=reason.encode()[:123]), timeout=5.0
            )

    # -- internals -------------------------------------------------------------------

    def _note(self, code: int | None, reason: str) -> None:
        if self.close_reason is None:
            self.close_code, self.close_reason = code, reason

    async def _send_control(self, type_: MessageType, body: dict[str, object]) -> None:
        await self.ws.send_bytes(encode(make_control(type_, dict(body), v=self.version)))

    async def _receive_loop(self) -> None:
        ws = self.ws
        while not self._closing:
            try:
                msg = await ws.receive(timeout=self._dead_after_s)
            except TimeoutError:
                await self.close(
                    CLOSE_DEAD_PEER, f"nothing received for {self._dead_after_s:g} s: peer is dead"
                )
                return
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await self._on_frame(msg.data)
            elif msg.type == WSMsgType.ERROR:
                err = ws.exception()
                self._note(ws.close_code, f"websocket error: {err}")
                _LOGGER.warning("%s: websocket error: %s", self.name, err)
                return
            else:  # CLOSE, CLOSING, CLOSED
                reason = msg.extra if isinstance(msg.extra, str) else ""
                code = msg.data if isinstance(msg.data, int) else ws.close_code
                self._note(code, reason or "closed by peer")
                return

    async def _on_frame(self, data: bytes | str) -> None:
        if self._inbound is not None and not self._inbound.take():
            await self.close(
                CLOSE_POLICY,
                f"rate limit exceeded: more than {self._inbound.rate:g} msg/s "
                f"(burst {self._inbound.burst:g})",
            )
            raise _Closed
        try:
            env = decode(data, max_size=self._max_bytes)
        except ProtocolError as err:
            await self._on_bad_frame(data, err)
            return
        type_ = env.type
        if type_ == MessageType.ACK:
            self._on_ack(int(env.body["seq"]))
        elif type_ == MessageType.PING:
            await self._send_control(MessageType.PONG, {"t": env.body["t"]})
        elif type_ == MessageType.PONG:
            rtt = time.monotonic() - float(env.body["t"])
            if 0 <= rtt < 3600:
                self.rtt_ms = rtt * 1000.0
        elif type_ == MessageType.HELLO:
            _LOGGER.warning("%s: ignoring a second hello", self.name)
        elif env.durable:
            await self._on_durable(env)
        else:
            _LOGGER.info("%s: ignoring unknown control message type %r", self.name, type_)

    async def _on_bad_frame(self, data: bytes | str, err: ProtocolError) -> None:
        salvaged = salvage_seq(data, max_size=self._max_bytes)
        if salvaged is not None and is_durable(*salvaged):
            type_, seq = salvaged
            # One bad durable message: reject it (logged), ack it so the sender
            # stops resending it, keep the link.
            _LOGGER.error("%s: rejected %s message seq %d: %s", self.name, type_, seq, err)
            if self._ledger.classify(self._peer, seq) is SeqVerdict.DUPLICATE:
                self._force_ack = True
            else:
                self._ledger.advance(self._peer, seq)
            self._ack_needed.set()
            return
        _LOGGER.warning("%s: closing on a bad frame: %s", self.name, err)
        await self.close(CLOSE_INVALID, f"protocol error: {err}")
        raise _Closed

    def _on_ack(self, seq: int) -> None:
        if seq <= self._peer_acked:
            return
        self._peer_acked = seq
        if seq > self._sent_high:
            # The peer has more than this session sent (an earlier session did): skip ahead.
            self._sent_high = seq
        self._outbox.ack_nowait(seq)
        self._wake.set()

    async def _on_durable(self, env: Envelope) -> None:
        last = self._ledger.last(self._peer)
        limit = last + MAX_SEQ_JUMP if last > 0 else MAX_FIRST_SEQ
        if env.seq > limit:
            await self.close(
                CLOSE_PROTOCOL,
                f"implausible seq {env.seq}: more than {limit - last} past the last "
                f"handled ({last}); the sender's outbox looks damaged",
            )
            raise _Closed
        verdict = self._ledger.classify(self._peer, env.seq)
        if verdict is SeqVerdict.DUPLICATE:
            self.duplicates += 1
            self._force_ack = True
            self._ack_needed.set()
            return
        if env.type in self._refuse:
            _LOGGER.warning(
                "%s: refused %s seq %d: only the other side sends that type",
                self.name,
                env.type,
                env.seq,
            )
        elif not env.known:
            _LOGGER.info(
                "%s: ignoring message of unknown type %r (seq %d)", self.name, env.type, env.seq
            )
        elif is_expired(env):
            _LOGGER.info(
                "%s: dropping expired %s seq %d (expired %.1f s ago)",
                self.name,
                env.type,
                env.seq,
                time.time() - float(env.body["expires_at"]),
            )
        else:
            await self._hand_over(env)
            _failpoint.reached("after_handler", env.seq)
        self.received += 1
        self._ledger.advance(self._peer, env.seq)
        self._ack_needed.set()

    async def _hand_over(self, env: Envelope) -> None:
        """Give one message to the handler; return once it counts as handled (see module doc)."""
        redelivered = await self._ledger.mark_handing(self._peer, env.seq)
        env = dataclasses.replace(
            env, stream=self._ledger.stream(self._peer) or "", redelivered=redelivered
        )
        try:
            await self._deliver(env)
        except asyncio.CancelledError:
            raise
        except DeferMessage as defer:
            # Not taken: neither record nor ack it (nor what follows on this
            # link); the peer resends it after the reconnect this close asks for.
            _LOGGER.info("%s: handler deferred %s seq %d: %s", self.name, env.type, env.seq, defer)
            await self.close(CLOSE_RETRY_SOON, retry_reason(defer.reason, defer.retry_after))
            raise _Closed from None
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"[:500]
            if self._dead_letter is None:
                # No dead-letter store on this side: log and count it as handled.
                _LOGGER.exception(
                    "%s: handler failed on %s seq %d; skipping it", self.name, env.type, env.seq
                )
                return
            attempts = self._failures.failed(self._peer, env.stream, env.seq)
            if attempts < self._max_attempts:
                _LOGGER.warning(
                    "%s: handler failed on %s seq %d (attempt %d of %d): %s; the peer resends it",
                    self.name,
                    env.type,
                    env.seq,
                    attempts,
                    self._max_attempts,
                    reason,
                    exc_info=err,
                )
                await self.close(
                    CLOSE_RETRY_SOON,
                    retry_reason(
                        f"handler failed on seq {env.seq}; retrying", self._retry_after_failure_s
                    ),
                )
                raise _Closed from None
            # Stored (durably) and reported before it is recorded and acked; a
            # storage failure propagates: then it is not acked either.
            await self._dead_letter(env, reason, attempts)
        self._failures.done(self._peer, env.seq)

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_needed.wait()
            self._ack_needed.clear()
            # Taken before the flush: messages handled while it runs may not be
            # in it, and an ack must never cover what is not on record.
            last = self._ledger.last(self._peer)
            try:
                await self._ledger.flush()
            except BridgeError as err:
                # Never ack what is not on record; the sender will resend.
                _LOGGER.error("%s: cannot record received messages: %s", self.name, err)
                await asyncio.sleep(1.0)
                self._ack_needed.set()
                continue
            if last > self._acked_sent or self._force_ack:
                self._force_ack = False
                self._acked_sent = last
                await self._send_control(MessageType.ACK, {"seq": last})
            if self._close_after is not None and self._acked_sent >= self._close_after[0]:
                _, code, reason = self._close_after
                await self.close(code, reason)
                return

    async def _send_loop(self) -> None:
        ws = self.ws
        while True:
            self._wake.clear()
            room = self._window - (self._sent_high - self._peer_acked)
            if room <= 0:
                await self._wake.wait()
                continue
            items = await self._outbox.pending(after=self._sent_high, limit=min(room, 512))
            if not items:
                await self._wake.wait()
                continue
            for item in items:
                if item.seq <= self._sent_high:
                    continue  # acked meanwhile
                if self._pace is not None:
                    delay = self._pace.reserve()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await ws.send_bytes(item.frame(self.version))
                self._sent_high = item.seq

    async def _heartbeat_loop(self) -> None:
        while True:
            await self._send_control(MessageType.PING, {"t": time.monotonic()})
            await asyncio.sleep(self._heartbeat_s)
