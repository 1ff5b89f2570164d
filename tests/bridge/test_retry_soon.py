"""Close code 4005 ("temporarily unavailable, retry soon") and deferred messages.

Over real mTLS sockets on 127.0.0.1: the hub closes a car's link with a retry
hint and the car comes back after about that long (not after its maximum
backoff, and without calling it a refusal); a handler that raises
``DeferMessage`` gets the message again, exactly once, after the reconnect;
the same from the car's side.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bridge._session import CLOSE_RETRY_SOON, retry_after_from, retry_reason
from bridge.client import CarLink
from bridge.errors import DeferMessage
from bridge.pki import HomeCA
from bridge.protocol import Envelope, MessageType
from bridge.server import PeerInfo
from tests.bridge.link_testing import (
    RecordingHandler,
    car_hello,
    make_car,
    start_hub,
    wait_for,
)

# A car that treated 4005 like a refusal would wait half of this at least.
SLOW_MAX_BACKOFF_S = 60.0


def _event(i: int) -> dict[str, object]:
    return {"kind": "alert", "ts": time.time(), "data": {"i": i}}


def test_retry_reason_round_trip() -> None:
    assert retry_reason("busy", 2.5) == "retry_after=2.5; busy"
    assert retry_reason("busy", 10) == "retry_after=10; busy"
    assert retry_reason("busy", 0) == "retry_after=0; busy"
    assert retry_reason("busy", None) == "busy"
    assert retry_reason("busy", float("nan")) == "busy"
    assert retry_reason("busy", -3) == "retry_after=0; busy"
    assert retry_after_from(retry_reason("busy", 2.5)) == 2.5
    assert retry_after_from(retry_reason("x" * 300, 7)) == 7.0  # the hint leads the reason
    assert retry_after_from(retry_reason("busy", 1e12)) == 999_999.0
    for reason in (
        None,
        "",
        "busy",
        "retry_after=; busy",
        "retry_after=abc; x",
        "x retry_after=3;",
    ):
        assert retry_after_from(reason) is None


async def test_hub_disconnect_with_retry_after_brings_the_car_back_soon(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    car = make_car(
        tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl, backoff_max_s=SLOW_MAX_BACKOFF_S
    )
    try:
        await car.start()
        assert await car.wait_connected(10)
        caplog.set_level(logging.INFO, logger="bridge")
        closed_at = time.monotonic()
        await hub.disconnect("car-1", "home busy", retry_after=0.4)
        await wait_for(lambda: car.connects == 2, limit_s=10)
        assert time.monotonic() - closed_at >= 0.4  # the hint is a lower bound
        assert car.last_close_reason == "retry_after=0.4; home busy"
        assert "home refused this car" not in caplog.text
        assert "temporarily unavailable (4005)" in caplog.text
        await handler.wait_until(lambda: len(handler.connects) == 2)
        # Without a hint: 4003 (refused by the home), retried only at the maximum backoff.
        await hub.disconnect("car-1", "go away")
        await wait_for(lambda: not car.connected)
        await asyncio.sleep(1.0)
        assert car.connects == 2
        assert car.last_close_reason == "go away"
    finally:
        await car.stop()
        await hub.stop()


@pytest.fixture
async def closing_server(home_ca: HomeCA) -> AsyncIterator[tuple[int, list[float]]]:
    """A TLS WebSocket server that reads the car's hello and closes with 4005 + a hint."""
    attempts: list[float] = []

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        attempts.append(time.monotonic())
        await ws.receive(timeout=5)
        await ws.close(code=CLOSE_RETRY_SOON, message=b"retry_after=0.3; starting up")
        return ws

    app = web.Application()
    app.router.add_get("/carhub", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ctx = await asyncio.get_running_loop().run_in_executor(None, home_ca.server_ssl_context)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    try:
        yield int(server.sockets[0].getsockname()[1]), attempts
    finally:
        await runner.cleanup()


async def test_retry_soon_during_hello_is_not_a_refusal(
    tmp_path: Path,
    car_ssl: ssl.SSLContext,
    closing_server: tuple[int, list[float]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, attempts = closing_server
    caplog.set_level(logging.INFO, logger="bridge")
    car = make_car(
        tmp_path / "car", f"wss://127.0.0.1:{port}", car_ssl, backoff_max_s=SLOW_MAX_BACKOFF_S
    )
    try:
        await car.start()
        await wait_for(lambda: len(attempts) >= 3, limit_s=10)
    finally:
        await car.stop()
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert all(gap >= 0.3 for gap in gaps[:2])  # each retry waits for the hint
    assert car.connects == 0
    assert "starting up" in (car.last_close_reason or "")
    assert "home refused this car" not in caplog.text


class DeferOnce(RecordingHandler):
    """Defers the event with data i == 2 once, records every call's seq."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.deferred = 0

    async def on_message(self, peer: PeerInfo, env: Envelope) -> None:
        self.calls.append(env.seq)
        if env.type == MessageType.EVENT and env.body["data"]["i"] == 2 and not self.deferred:
            self.deferred += 1
            raise DeferMessage("cannot take it yet", retry_after=0.2)
        await super().on_message(peer, env)


async def test_deferred_message_arrives_exactly_once_after_reconnect(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = DeferOnce()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    car = make_car(
        tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl, backoff_max_s=SLOW_MAX_BACKOFF_S
    )
    try:
        await car.start()
        assert await car.wait_connected(10)
        for i in range(5):
            await car.send(MessageType.EVENT, _event(i))
        await handler.wait_until(lambda: len(handler.of("car-1")) == 5, limit_s=10)
        await wait_for(lambda: car.outbox.acked_seq == 5)
        assert [e.body["data"]["i"] for e in handler.of("car-1")] == [0, 1, 2, 3, 4]
        # Nothing after the deferred message was handled on the first link; it came
        # again (once) on the second, followed by the rest.
        assert handler.calls == [1, 2, 3, 3, 4, 5]
        assert car.connects == 2
        assert car.last_close_reason == "retry_after=0.2; cannot take it yet"
    finally:
        await car.stop()
        await hub.stop()


async def test_car_handler_can_defer_a_home_message(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    taken: list[Envelope] = []
    offered = 0

    async def on_message(env: Envelope) -> None:
        nonlocal offered
        offered += 1
        if offered == 1:
            raise DeferMessage("driver busy", retry_after=0.2)
        taken.append(env)

    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    car = CarLink(
        home_dir=tmp_path / "car",
        hello_body=car_hello("car-1"),
        on_message=on_message,
        snapshot=dict,
        url=f"wss://127.0.0.1:{hub.port}",
        ssl_context=car_ssl,
        backoff_min_s=0.02,
        backoff_max_s=SLOW_MAX_BACKOFF_S,
    )
    try:
        await car.start()
        assert await car.wait_connected(10)
        seq = await hub.send(
            "car-1",
            MessageType.NOTIFY,
            {"message": "hello", "priority": "normal", "expires_at": time.time() + 60},
        )
        await wait_for(lambda: len(taken) == 1, limit_s=10)
        outbox = await hub._outbox("car-1")
        await wait_for(lambda: outbox.acked_seq == seq)
        assert [e.body["message"] for e in taken] == ["hello"]
        assert offered == 2
        assert car.connects == 2
        await asyncio.sleep(0.5)  # a duplicate would have come by now
        assert len(taken) == 1
    finally:
        await car.stop()
        await hub.stop()
