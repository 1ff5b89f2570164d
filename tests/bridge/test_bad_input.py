"""Bad input and broken limits: a clear error or close for that peer; other cars keep going."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bridge.client import CarLink
from bridge.pki import HomeCA
from bridge.protocol import Envelope, MessageType, decode
from bridge.server import HubServer, ServerLimits
from tests.bridge.link_testing import (
    RecordingHandler,
    car_hello,
    make_car,
    start_hub,
    wait_for,
)


@asynccontextmanager
async def raw_peer(
    port: int, ctx: ssl.SSLContext
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(
            f"wss://127.0.0.1:{port}/carhub",
            ssl=ctx,
            max_msg_size=0,
            timeout=aiohttp.ClientWSTimeout(ws_close=2),
        )
        try:
            yield ws
        finally:
            await ws.close()


def frame(type_: str, seq: int, body: dict[str, Any], v: int = 1) -> bytes:
    return orjson.dumps({"v": v, "type": type_, "seq": seq, "ts": time.time(), "body": body})


async def hello(
    ws: aiohttp.ClientWebSocketResponse, protocols: list[int] | None = None
) -> Envelope:
    await ws.send_bytes(frame("hello", 0, {**car_hello("car-1"), "protocols": protocols or [1]}))
    return await next_of(ws, lambda e: e.type == "hello")


async def next_of(
    ws: aiohttp.ClientWebSocketResponse, pred: Callable[[Envelope], bool], limit_s: float = 10
) -> Envelope:
    """The next message from the hub matching ``pred`` (answers nothing, bounded in time)."""
    deadline = time.monotonic() + limit_s
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            raise AssertionError(f"link closed: {msg.type} {msg.data} {msg.extra}")
        env = decode(msg.data)
        if pred(env):
            return env


async def closed_with(ws: aiohttp.ClientWebSocketResponse, limit_s: float = 10) -> tuple[int, str]:
    """Read until the hub closes; return its close code and reason."""
    deadline = time.monotonic() + limit_s
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return int(msg.data), str(msg.extra or "")
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return int(ws.close_code or 0), str(msg.extra or "")
        if msg.type == aiohttp.WSMsgType.ERROR:
            return int(ws.close_code or 0), str(msg.data)


class Bystander:
    """Another car (car-2) sending steadily through a CarLink while the bad peer misbehaves."""

    def __init__(self, tmp: Path, port: int, ctx: ssl.SSLContext, handler: RecordingHandler):
        self.link: CarLink = make_car(tmp / "bystander", f"wss://127.0.0.1:{port}", ctx, "car-2")
        self.handler = handler
        self.sent = 0

    async def __aenter__(self) -> Bystander:
        await self.link.start()
        assert await self.link.wait_connected(10)
        return self

    async def send_some(self, n: int = 10) -> None:
        for _ in range(n):
            self.sent += 1
            await self.link.send(
                MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"n": self.sent}}
            )

    async def check(self) -> None:
        await self.handler.wait_until(lambda: len(self.handler.of("car-2")) == self.sent)
        got = [e.body["data"]["n"] for e in self.handler.of("car-2")]
        assert got == list(range(1, self.sent + 1))
        assert self.link.connects == 1  # never disconnected by the other car's trouble

    async def __aexit__(self, *exc: object) -> None:
        await self.link.stop()


async def _hub(tmp: Path, ca: HomeCA, handler: RecordingHandler, **kw: Any) -> HubServer:
    return await start_hub(ca, tmp / "hub", handler, **kw)


async def test_bad_frames_after_hello(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext, car2_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await _hub(tmp_path, home_ca, handler)
    try:
        async with Bystander(tmp_path, hub.port, car2_ssl, handler) as other:
            async with raw_peer(hub.port, car_ssl) as ws:
                await hello(ws)
                # Wrong types in a durable message: that message is rejected and
                # acked (so it is not resent forever); the link stays up.
                await ws.send_bytes(frame("state", 1, {"signals": {"Vehicle.Speed": 5}}))
                assert (await next_of(ws, lambda e: e.type == "ack")).body["seq"] == 1
                # An unknown future type: skipped with a log line, still acked.
                await ws.send_bytes(frame("tire_report", 2, {"x": 1}))
                assert (await next_of(ws, lambda e: e.type == "ack")).body["seq"] == 2
                await ws.send_bytes(frame("future_control", 0, {}))
                # A gap is accepted (logged); a rewind is a duplicate: dropped, re-acked.
                await ws.send_bytes(frame("event", 7, {"kind": "alert", "data": {"n": 7}}))
                assert (await next_of(ws, lambda e: e.type == "ack")).body["seq"] == 7
                await ws.send_bytes(frame("event", 3, {"kind": "alert", "data": {"n": 3}}))
                assert (await next_of(ws, lambda e: e.type == "ack")).body["seq"] == 7
                await ws.send_bytes(frame("event", 7, {"kind": "alert", "data": {"n": 7}}))
                assert (await next_of(ws, lambda e: e.type == "ack")).body["seq"] == 7
                await other.send_some()
                # Only the gap message reached the handler, once.
                assert [e.seq for e in handler.of("car-1")] == [7]
                # Binary garbage: the link is closed with a clear reason.
                await ws.send_bytes(b"\x00\xff\x13garbage")
                code, reason = await closed_with(ws)
                assert code == 1007 and "malformed JSON" in reason
            await other.send_some()
            await other.check()
    finally:
        await hub.stop()


async def test_malformed_hello_and_wrong_first_message(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await _hub(tmp_path, home_ca, handler)
    try:
        async with raw_peer(hub.port, car_ssl) as ws:
            await ws.send_str("{this is not json")
            code, reason = await closed_with(ws)
            assert code == 1002 and "bad hello" in reason
        async with raw_peer(hub.port, car_ssl) as ws:
            await ws.send_bytes(frame("event", 1, {"kind": "alert"}))
            code, reason = await closed_with(ws)
            assert code == 1002 and "expected hello" in reason
        async with raw_peer(hub.port, car_ssl) as ws:
            await ws.send_bytes(frame("hello", 0, {"protocols": "one"}))
            code, reason = await closed_with(ws)
            assert "protocols" in reason
        assert handler.connects == []
    finally:
        await hub.stop()


async def test_incompatible_protocol_version_gets_a_clear_reason(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await _hub(tmp_path, home_ca, handler)
    try:
        async with raw_peer(hub.port, car_ssl) as ws:
            await ws.send_bytes(frame("hello", 0, {"protocols": [7, 8]}, v=8))
            code, reason = await closed_with(ws)
            assert code == 4002
            assert "car speaks [7, 8]" in reason and "hub speaks [1]" in reason
        assert handler.connects == []
    finally:
        await hub.stop()


async def test_oversized_frame_closes_only_that_car(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext, car2_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    limits = ServerLimits(
        max_message_bytes=4096, max_msgs_per_s=100_000, burst=100_000, heartbeat_s=1, dead_after_s=5
    )
    hub = await _hub(tmp_path, home_ca, handler, limits=limits)
    try:
        async with Bystander(tmp_path, hub.port, car2_ssl, handler) as other:
            async with raw_peer(hub.port, car_ssl) as ws:
                await hello(ws)
                await ws.send_bytes(
                    frame("event", 1, {"kind": "alert", "data": {"x": "y" * 10_000}})
                )
                code, _ = await closed_with(ws)
                assert code == 1009  # RFC 6455 "message too big"
            await other.send_some()
            await other.check()
        assert handler.of("car-1") == []
    finally:
        await hub.stop()


async def test_rate_limit_closes_the_flooding_car_only(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext, car2_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    limits = ServerLimits(max_msgs_per_s=200, burst=50, heartbeat_s=1, dead_after_s=5)
    hub = await _hub(tmp_path, home_ca, handler, limits=limits)
    try:
        async with Bystander(tmp_path, hub.port, car2_ssl, handler) as other:
            async with raw_peer(hub.port, car_ssl) as ws:
                await hello(ws)
                for i in range(500):  # far above 200/s with a burst of 50
                    if ws.closed:
                        break
                    await ws.send_bytes(frame("ping", 0, {"t": float(i)}))
                code, reason = await closed_with(ws)
                assert code == 1008 and "rate limit" in reason
            # The bystander paces itself under the advertised limit: 300 messages
            # at 200/s are delivered without tripping it.
            await other.send_some(300)
            await other.check()
    finally:
        await hub.stop()


async def test_connection_limit(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext, car2_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    limits = ServerLimits(
        max_connections=1, max_msgs_per_s=100_000, burst=100_000, heartbeat_s=1, dead_after_s=5
    )
    hub = await _hub(tmp_path, home_ca, handler, limits=limits)
    try:
        async with Bystander(tmp_path, hub.port, car2_ssl, handler) as other:
            async with raw_peer(hub.port, car_ssl) as ws:
                await ws.send_bytes(frame("hello", 0, {**car_hello("car-1"), "protocols": [1]}))
                code, reason = await closed_with(ws)
                assert code == 1013 and "too many connections" in reason
            await other.send_some()
            await other.check()
    finally:
        await hub.stop()


async def test_dead_peer_is_detected(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    limits = ServerLimits(max_msgs_per_s=1000, burst=1000, heartbeat_s=0.2, dead_after_s=0.6)
    hub = await _hub(tmp_path, home_ca, handler, limits=limits)
    try:
        async with raw_peer(hub.port, car_ssl) as ws:
            await hello(ws)
            # This peer never answers pings nor sends anything: the hub gives up on it.
            code, reason = await closed_with(ws)
            assert code == 4004 and "peer is dead" in reason
        await wait_for(lambda: len(handler.disconnects) == 1)
    finally:
        await hub.stop()


async def test_car_drops_bad_and_expired_messages_from_the_hub(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    """The car side validates too: an invalid body from the hub is rejected, not fatal."""
    handler = RecordingHandler()
    hub = await _hub(tmp_path, home_ca, handler)
    got: list[Envelope] = []

    async def on_message(env: Envelope) -> None:
        got.append(env)

    car = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl)
    car._on_message = on_message
    try:
        await car.start()
        assert await car.wait_connected(10)
        await hub.send("car-1", MessageType.NOTIFY, {"message": "late", "expires_at": 1.0})
        await hub.send(
            "car-1", MessageType.NOTIFY, {"message": "ok", "expires_at": time.time() + 60}
        )
        await wait_for(lambda: len(got) == 1)
        assert got[0].body["message"] == "ok"
        await asyncio.sleep(0)
        assert car.connected
    finally:
        await car.stop()
        await hub.stop()
