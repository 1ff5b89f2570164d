"""No peer can crowd out the others: per-car pre-hello limit, hello and TLS handshake deadlines.

A well-behaved car (``Bystander``, car-2) keeps delivering while car-1 (a
valid certificate) or an unauthenticated peer holds connections open without
finishing them. Bounds here are generous; latency figures are measured in
``benchmarks/crowding.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from bridge.pki import HomeCA
from bridge.server import HubServer, ServerLimits
from tests.bridge.link_testing import RecordingHandler, start_hub, wait_for
from tests.bridge.test_bad_input import Bystander, closed_with, hello

# A small global limit, so that a car not held to its pre-hello share could fill it.
LIMITS = ServerLimits(
    max_msgs_per_s=100_000,
    burst=100_000,
    heartbeat_s=1.0,
    dead_after_s=5.0,
    max_connections=6,
    hello_timeout_s=1.0,
    tls_handshake_timeout_s=1.0,
)


@contextlib.asynccontextmanager
async def half_open(
    port: int, ctx: ssl.SSLContext, count: int
) -> AsyncIterator[list[aiohttp.ClientWebSocketResponse]]:
    """``count`` WebSocket connections of one car that never say hello."""
    async with aiohttp.ClientSession() as session:
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        try:
            for _ in range(count):
                sockets.append(
                    await session.ws_connect(
                        f"wss://127.0.0.1:{port}/carhub",
                        ssl=ctx,
                        timeout=aiohttp.ClientWSTimeout(ws_close=2),
                    )
                )
            yield sockets
        finally:
            for ws in sockets:
                await ws.close()


def client_hello_bytes() -> bytes:
    """The first flight of a real TLS client (its ClientHello record)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    data = outgoing.read()
    assert data[0] == 0x16  # a TLS handshake record
    return data


async def _closed_by_hub(reader: asyncio.StreamReader, limit_s: float = 15.0) -> bool:
    """True once the hub closed the connection (EOF or reset), within ``limit_s``."""
    try:
        async with asyncio.timeout(limit_s):
            while await reader.read(4096):
                pass
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return True


async def _hub(tmp_path: Path, ca: HomeCA, handler: RecordingHandler) -> HubServer:
    return await start_hub(ca, tmp_path / "hub", handler, limits=LIMITS)


async def test_one_car_with_many_half_open_links_cannot_take_every_slot(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext, car2_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await _hub(tmp_path, home_ca, handler)
    try:
        async with half_open(hub.port, car_ssl, 12) as sockets:
            # At most max_pending_per_car wait for hello; the rest are refused at once.
            codes = await asyncio.gather(*(closed_with(ws, 15) for ws in sockets))
            refused = [c for c, r in codes if c == 1013 and "before hello" in r]
            assert len(refused) == 12 - LIMITS.max_pending_per_car
            assert sum(1 for c, r in codes if c == 1002 and "no hello" in r) == 2
        # While car-1 crowds again, car-2 connects (a slot is free) and delivers.
        async with (
            half_open(hub.port, car_ssl, 12),
            Bystander(tmp_path, hub.port, car2_ssl, handler) as other,
        ):
            await other.send_some(20)
            await other.check()
            assert hub.waiting_for_hello("car-1") <= LIMITS.max_pending_per_car
        await wait_for(lambda: hub.guard.waiting == 0, limit_s=15)
    finally:
        await hub.stop()


async def test_silent_tcp_and_half_client_hello_are_cut_off_while_others_flow(
    tmp_path: Path, home_ca: HomeCA, car2_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await _hub(tmp_path, home_ca, handler)
    writers: list[asyncio.StreamWriter] = []
    try:
        # Many more stalled peers than the connection limit (6).
        silent = [await asyncio.open_connection("127.0.0.1", hub.port) for _ in range(10)]
        stalled = [await asyncio.open_connection("127.0.0.1", hub.port) for _ in range(10)]
        first_flight = client_hello_bytes()
        for _, writer in stalled:
            writer.write(first_flight[: len(first_flight) // 2])
            await writer.drain()
        writers = [w for _, w in silent + stalled]
        async with Bystander(tmp_path, hub.port, car2_ssl, handler) as other:
            await other.send_some(20)
            await other.check()
            # The handshake deadline closes every stalled peer (bounded wait).
            results = await asyncio.gather(*(_closed_by_hub(r) for r, _ in silent + stalled))
            assert all(results)
            await other.send_some(20)
            await other.check()
    finally:
        for writer in writers:
            writer.close()
        await hub.stop()


async def test_tls_without_a_request_or_hello_is_cut_off_after_the_hello_deadline(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await _hub(tmp_path, home_ca, handler)
    try:
        # TLS completes with a valid car certificate, then nothing (no HTTP upgrade).
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", hub.port, ssl=car_ssl, server_hostname="localhost"
        )
        await wait_for(lambda: hub.guard.waiting == 1)
        assert await _closed_by_hub(reader)
        assert hub.guard.expired == 1 and hub.guard.waiting == 0
        writer.close()
        # A car that does say hello in time is not cut off by the deadline.
        from tests.bridge.test_bad_input import raw_peer

        async with raw_peer(hub.port, car_ssl) as ws:
            await hello(ws)
            await asyncio.sleep(LIMITS.hello_timeout_s * 2)
            assert not ws.closed
        assert hub.guard.expired == 1
    finally:
        await hub.stop()
