"""The way in from outside through a real nginx that ends TLS with its own certificate.

nginx (Debian's nginx-light, started by the test on an ephemeral 127.0.0.1
port, ``daemon off``) passes WebSockets to a web server with the tunnel
endpoint (``bridge.tunnel.serve_tunnel``, what Home Assistant's view runs) in
front of a real ``HubServer``. The car's client certificate cannot cross the
proxy's TLS, so everything rests on the mutual TLS inside the tunnel: every
rejection of the direct listener must still happen, and a proxy that alters
bytes must break the link without changing what the home receives.
Run with ``-p no:homeassistant``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType

from bridge.client import CarLink
from bridge.errors import LinkError
from bridge.pki import HomeCA
from bridge.protocol import MessageType, encode, make_control
from bridge.server import HubServer
from bridge.tunnel import TUNNEL_PATH, open_tunnel
from demo.reverse_proxy import ReverseProxy
from tests.bridge.link_testing import (
    CarInbox,
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
from tests.bridge.tunnel_testing import Relay, TunnelFront, write_home


@dataclass
class Site:
    """A home behind nginx: hub, tunnel front, optional relay, the proxy."""

    ca: HomeCA
    handler: RecordingHandler
    hub: HubServer
    front: TunnelFront
    relay: Relay | None
    proxy: ReverseProxy

    @property
    def url(self) -> str:
        return self.proxy.url + TUNNEL_PATH


@contextlib.asynccontextmanager
async def _site(tmp_path: Path, *, relay: bool = False) -> AsyncIterator[Site]:
    ca = HomeCA.create(tmp_path / "ca")
    handler = RecordingHandler()
    hub = await start_hub(ca, tmp_path / "hub", handler)
    front = TunnelFront(hub)
    await front.start()
    between = Relay(front.port) if relay else None
    if between is not None:
        await between.start()
    proxy = ReverseProxy(tmp_path / "nginx", between.port if between else front.port)
    await proxy.start()
    try:
        yield Site(ca, handler, hub, front, between, proxy)
    finally:
        await proxy.stop()
        if between is not None:
            await between.stop()
        await front.stop()
        await hub.stop()


def _car(site: Site, home_dir: Path) -> CarLink:
    pair_car(site.ca, home_dir, "car-1")
    direct = f"wss://127.0.0.1:{site.hub.port}"
    write_home(home_dir, site.hub.hub_id, lan=[direct], remote=[site.url])
    return CarLink(
        home_dir=home_dir,
        hello_body=car_hello("car-1"),
        on_message=CarInbox(),
        snapshot=dict,
        backoff_min_s=0.05,
        backoff_max_s=0.3,
        heartbeat_s=0.5,
        dead_after_s=3.0,
        outer_ssl=site.proxy.client_context(),
        remote_only=True,  # the direct listener is not for it: on the road
    )


async def test_car_reaches_home_only_through_nginx(tmp_path: Path) -> None:
    async with _site(tmp_path) as site:
        car = _car(site, tmp_path / "car")
        await car.start()
        try:
            assert await car.wait_connected(20)
            assert car.route == "remote" and car.url == site.url
            peer, hello = site.handler.connects[-1]
            assert peer.transport == "tunnel" and hello.body["route"] == "remote"
            sent = [f"reading-{i}" for i in range(100)]
            for text in sent:
                await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"t": text}})
            await site.handler.wait_until(lambda: len(site.handler.of("car-1")) >= len(sent))
            got = [e.body["data"]["t"] for e in site.handler.of("car-1", "event")]
            assert got == sent
        finally:
            await car.stop()


async def _refused(site: Site, ctx: ssl.SSLContext) -> None:
    before = len(site.front.refused)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(LinkError):
            channel = await open_tunnel(http, site.url, ctx, outer_ssl=site.proxy.client_context())
            try:
                hello = {**car_hello("car-1"), "protocols": [1]}
                await channel.send_bytes(encode(make_control(MessageType.HELLO, hello)))
                msg = await channel.receive(timeout=5)
                if msg.type != WSMsgType.BINARY:
                    raise LinkError(f"refused: {msg.type.name}")
            finally:
                await channel.close()
    await wait_for(lambda: len(site.front.refused) > before, limit_s=5)


async def test_every_rejection_holds_through_nginx(tmp_path: Path) -> None:
    async with _site(tmp_path) as site:
        ca, now, day = site.ca, dt.datetime.now(dt.UTC), dt.timedelta(days=1)
        home_key, home_cert = home_ca_material(ca)
        other_key, other_cert = make_ca("Evil CA")
        cases: dict[str, ssl.SSLContext] = {
            "no client certificate": client_context(tmp_path / "none", ca_pem=ca.ca_cert_pem),
            "TLS 1.2": client_context(tmp_path / "tls12", ca_pem=ca.ca_cert_pem, tls12_only=True),
        }
        for name, key_cert, start, end in (
            ("another CA", (other_key, other_cert), now - day, now + day),
            ("expired", (home_key, home_cert), now - 10 * day, now - day),
            ("not yet valid", (home_key, home_cert), now + day, now + 10 * day),
        ):
            key, cert = make_client_cert(*key_cert, "car-1", not_before=start, not_after=end)
            cases[name] = client_context(
                tmp_path / name.replace(" ", "-"), ca_pem=ca.ca_cert_pem, cert=cert, key=key
            )
        for name, ctx in cases.items():
            try:
                await _refused(site, ctx)
            except AssertionError as err:
                raise AssertionError(f"{name}: not refused through nginx") from err
        # Revoked: works first, refused after the revocation.
        revoked = pair_car(ca, tmp_path / "car-9", "car-9")
        async with aiohttp.ClientSession() as http:
            channel = await open_tunnel(
                http, site.url, revoked, outer_ssl=site.proxy.client_context()
            )
            await channel.close()
        await site.hub.revoke("car-9")
        await _refused(site, revoked)
        # Garbage instead of a TLS handshake.
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(site.url, ssl=site.proxy.client_context())
            await ws.send_bytes(b"\x00garbage before any handshake")
            msg = await ws.receive(timeout=5)
            while msg.type == WSMsgType.BINARY:
                msg = await ws.receive(timeout=5)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
            await ws.close()
        assert len(site.front.refused) == len(cases) + 2
        assert site.handler.connects == []  # nothing ever reached the session


async def test_a_proxy_altering_bytes_breaks_the_link_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with _site(tmp_path, relay=True) as site:
        assert site.relay is not None
        car = _car(site, tmp_path / "car")
        await car.start()
        try:
            assert await car.wait_connected(20)
            site.relay.corrupt_after = 8000  # one bit, inside a record after the handshake
            sent = [f"value-{i:04d}" for i in range(300)]
            for text in sent:
                await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"t": text}})
            await wait_for(lambda: site.relay is not None and site.relay.corrupted >= 1)
            site.relay.corrupt_after = None
            await site.handler.wait_until(
                lambda: len(site.handler.of("car-1", "event")) == len(sent)
            )
            assert [e.body["data"]["t"] for e in site.handler.of("car-1", "event")] == sent
            assert car.connects >= 2  # the altered record ended the link; it came back
        finally:
            await car.stop()
