"""Every handshake the direct listener refuses is refused through the tunnel too."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from bridge.errors import LinkError
from bridge.pki import HomeCA
from bridge.protocol import MessageType, encode, make_control
from bridge.server import HubServer
from bridge.tunnel import TUNNEL_PATH, TunnelHandshakeError, TunnelLimits, open_tunnel
from tests.bridge.link_testing import (
    RecordingHandler,
    car_hello,
    client_context,
    home_ca_material,
    make_ca,
    make_client_cert,
    pair_car,
    start_hub,
    wait_for,
)
from tests.bridge.tunnel_testing import TunnelFront


@pytest.fixture
async def front(tmp_path: Path, home_ca: HomeCA) -> AsyncIterator[TunnelFront]:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    tunnel = TunnelFront(hub, limits=TunnelLimits(handshake_timeout_s=1.0, max_handshakes=2))
    await tunnel.start()
    yield tunnel
    # Nothing ever reached the hub's session handling.
    assert handler.connects == []
    assert not hub.connected("car-1")
    await tunnel.stop()
    await hub.stop()


async def _try_link(url: str, ctx: ssl.SSLContext) -> None:
    """Open the tunnel with ``ctx`` and say hello; raises if the home refuses."""
    async with aiohttp.ClientSession() as http:
        channel = await open_tunnel(http, url, ctx, limits=TunnelLimits(handshake_timeout_s=5))
        try:
            hello = {**car_hello("car-1"), "protocols": [1]}
            await channel.send_bytes(encode(make_control(MessageType.HELLO, hello)))
            msg = await channel.receive(timeout=5)
            if msg.type != WSMsgType.BINARY:
                raise LinkError(f"refused: {msg.type.name} {channel.exception()!r}")
        finally:
            await channel.close()


async def _assert_refused(front: TunnelFront, ctx: ssl.SSLContext) -> None:
    with pytest.raises(LinkError):
        await _try_link(front.url, ctx)
    for _ in range(100):  # the hub records the refusal right after its alert
        if front.refused:
            break
        await asyncio.sleep(0.02)
    assert front.refused, "the refused handshake was not reported (no IP ban count)"


def _certificate_context(
    directory: Path,
    ca: HomeCA,
    *,
    other_ca: bool = False,
    not_before: dt.timedelta = dt.timedelta(days=-1),
    not_after: dt.timedelta = dt.timedelta(days=1),
) -> ssl.SSLContext:
    now = dt.datetime.now(dt.UTC)
    issuer_key, issuer = make_ca("Evil CA") if other_ca else home_ca_material(ca)
    key, cert = make_client_cert(
        issuer_key, issuer, "car-1", not_before=now + not_before, not_after=now + not_after
    )
    return client_context(directory, ca_pem=ca.ca_cert_pem, cert=cert, key=key)


async def test_control_a_paired_car_gets_through(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    front = TunnelFront(hub)
    await front.start()
    try:
        await _try_link(front.url, car_ssl)
        assert front.refused == []
        assert handler.connects[0][0].transport == "tunnel"
    finally:
        await front.stop()
        await hub.stop()


async def test_no_client_certificate(tmp_path: Path, home_ca: HomeCA, front: TunnelFront) -> None:
    await _assert_refused(front, client_context(tmp_path / "c", ca_pem=home_ca.ca_cert_pem))


async def test_another_ca(tmp_path: Path, home_ca: HomeCA, front: TunnelFront) -> None:
    await _assert_refused(front, _certificate_context(tmp_path / "c", home_ca, other_ca=True))


async def test_expired(tmp_path: Path, home_ca: HomeCA, front: TunnelFront) -> None:
    ctx = _certificate_context(
        tmp_path / "c", home_ca, not_before=dt.timedelta(days=-10), not_after=dt.timedelta(days=-1)
    )
    await _assert_refused(front, ctx)


async def test_not_yet_valid(tmp_path: Path, home_ca: HomeCA, front: TunnelFront) -> None:
    ctx = _certificate_context(
        tmp_path / "c", home_ca, not_before=dt.timedelta(days=1), not_after=dt.timedelta(days=10)
    )
    await _assert_refused(front, ctx)


async def test_revoked(tmp_path: Path, home_ca: HomeCA) -> None:
    ca = HomeCA.create(tmp_path / "ca")  # own CA: revocation must not leak into other tests
    handler = RecordingHandler()
    hub = await start_hub(ca, tmp_path / "hub", handler)
    front = TunnelFront(hub)
    await front.start()
    try:
        ctx = pair_car(ca, tmp_path / "car", "car-9")
        await _try_link(front.url, ctx)  # works before the revocation
        await hub.revoke("car-9")
        connects = len(handler.connects)
        await _assert_refused(front, ctx)
        assert len(handler.connects) == connects
    finally:
        await front.stop()
        await hub.stop()


async def test_tls_1_2(tmp_path: Path, home_ca: HomeCA, front: TunnelFront) -> None:
    ctx = client_context(tmp_path / "c", ca_pem=home_ca.ca_cert_pem, tls12_only=True)
    with pytest.raises(TunnelHandshakeError):
        await _try_link(front.url, ctx)
    assert front.refused


@pytest.mark.parametrize(
    "first",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello",  # a TLS record header with nonsense inside
        "text instead of TLS",
    ],
)
async def test_garbage_before_the_handshake(front: TunnelFront, first: bytes | str) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(front.url)
        if isinstance(first, str):
            await ws.send_str(first)
        else:
            await ws.send_bytes(first)
        msg = await ws.receive(timeout=5)
        # Only an alert (binary) or the close may come back; never anything else.
        while msg.type == WSMsgType.BINARY:
            assert msg.data[:1] == b"\x15"  # a TLS alert record
            msg = await ws.receive(timeout=5)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
        assert ws.close_code == 1008
    assert front.refused


async def test_silence_hits_the_handshake_deadline(front: TunnelFront) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(front.url)
        msg = await ws.receive(timeout=5)  # the front's deadline is 1 s
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert any("no inner handshake" in r for r in front.refused)


async def test_unauthenticated_tunnels_are_capped(front: TunnelFront) -> None:
    async with aiohttp.ClientSession() as http:
        held = [await http.ws_connect(front.url) for _ in range(2)]  # the cap is 2
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(front.url)
        assert err.value.status == 503
        for ws in held:
            await ws.close()


async def test_car_refuses_a_home_without_a_server_certificate(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    """Someone holding a car certificate of the same home cannot pose as the home."""
    ca_key, ca_cert = home_ca_material(home_ca)
    now = dt.datetime.now(dt.UTC)
    key, cert = make_client_cert(
        ca_key,
        ca_cert,
        "car-evil",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=1),
    )
    fake = client_context(tmp_path / "fake", ca_pem=home_ca.ca_cert_pem, cert=cert, key=key)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    server_ctx.load_cert_chain(tmp_path / "fake" / "c.crt", tmp_path / "fake" / "c.key")
    del fake

    async def impostor(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = server_ctx.wrap_bio(incoming, outgoing, server_side=True)
        for _ in range(10):
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if data := outgoing.read():
                    await ws.send_bytes(data)
                msg = await ws.receive(timeout=5)
                if msg.type != WSMsgType.BINARY:
                    break
                incoming.write(msg.data)
            except ssl.SSLError:
                break
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get(TUNNEL_PATH, impostor)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TunnelHandshakeError):
            await _try_link(f"http://127.0.0.1:{port}{TUNNEL_PATH}", car_ssl)
    finally:
        await runner.cleanup()


async def test_hub_not_started_answers_503(tmp_path: Path, home_ca: HomeCA) -> None:
    hub = HubServer(ca=home_ca, state_dir=tmp_path / "hub", handler=RecordingHandler())
    front = TunnelFront(hub)
    await front.start()
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(front.url)
            assert err.value.status == 503
    finally:
        await front.stop()


async def test_deflate_is_negotiated_and_bounded(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    """Deflate inside the TLS when both sides offer it; a message inflating too far closes 1009."""
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    front = TunnelFront(hub)
    await front.start()
    try:
        async with aiohttp.ClientSession() as http:
            plain = await open_tunnel(http, front.url, car_ssl, compress=False)
            assert plain.compressed is False
            await plain.close()
            channel = await open_tunnel(http, front.url, car_ssl)
            assert channel.compressed is True
            hello = {**car_hello("car-1"), "protocols": [1]}
            await channel.send_bytes(encode(make_control(MessageType.HELLO, hello)))
            reply = await channel.receive(timeout=5)
            assert reply.type == WSMsgType.BINARY  # the hub's hello, inflated
            sent_before = channel.bytes_out
            bomb = b"{" + b" " * (hub.limits.max_message_bytes + 1000) + b"}"
            await channel.send_bytes(bomb)
            assert channel.bytes_out - sent_before < 5000  # it went out tiny
            msg = await channel.receive(timeout=5)
            while msg.type == WSMsgType.BINARY:  # a ping may come first
                msg = await channel.receive(timeout=5)
            assert msg.type == WSMsgType.CLOSE
            assert msg.data == 1009
        await wait_for(lambda: handler.disconnects != [])
        assert handler.messages == []
    finally:
        await front.stop()
        await hub.stop()
