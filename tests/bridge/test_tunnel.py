"""The link through a web server: mutual TLS inside a WebSocket, end to end on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from bridge.client import CarLink
from bridge.pki import HomeCA
from bridge.protocol import MessageType
from bridge.server import HubServer
from bridge.tunnel import TUNNEL_PATH
from tests.bridge.link_testing import (
    CarInbox,
    RecordingHandler,
    car_hello,
    pair_car,
    start_hub,
    wait_for,
)
from tests.bridge.tunnel_testing import Relay, TunnelFront, write_home


def _closed_port() -> int:
    """A port with nothing listening (the direct listener, unreachable from the road)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _car(home_dir: Path, inbox: CarInbox, **kwargs: object) -> CarLink:
    opts: dict[str, object] = {
        "backoff_min_s": 0.02,
        "backoff_max_s": 0.2,
        "heartbeat_s": 0.5,
        "dead_after_s": 2.0,
    }
    opts.update(kwargs)
    return CarLink(
        home_dir=home_dir,
        hello_body=car_hello("car-1"),
        on_message=inbox,
        snapshot=dict,
        **opts,  # type: ignore[arg-type]
    )


def _listener(hub: HubServer) -> list[str]:
    """The direct listener as the car's home-network address."""
    return [f"wss://127.0.0.1:{hub.port}"]


@dataclass
class _Site:
    """A hub with its tunnel front (and a relay before it), and a paired car not started yet."""

    handler: RecordingHandler
    hub: HubServer
    front: TunnelFront
    relay: Relay | None
    home_dir: Path
    inbox: CarInbox
    car: CarLink


@contextlib.asynccontextmanager
async def _site(
    tmp_path: Path,
    home_ca: HomeCA,
    *,
    lan: Callable[[HubServer], list[str]] = lambda hub: [],
    via_relay: bool = False,
    remote: bool = True,
) -> AsyncIterator[_Site]:
    """Its remote address is the front (or the relay); ``lan`` gives its home-network ones."""
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    front = TunnelFront(hub)
    await front.start()
    relay = Relay(front.port) if via_relay else None
    if relay is not None:
        await relay.start()
    home_dir = tmp_path / "car" / "home"
    pair_car(home_ca, home_dir, "car-1")
    outside = relay.url(TUNNEL_PATH) if relay is not None else front.url
    write_home(home_dir, hub.hub_id, lan=lan(hub), remote=[outside] if remote else [])
    inbox = CarInbox()
    car = _car(home_dir, inbox)
    try:
        yield _Site(handler, hub, front, relay, home_dir, inbox, car)
    finally:
        await car.stop()
        if relay is not None:
            await relay.stop()
        await front.stop()
        await hub.stop()


async def test_car_reaches_home_through_the_tunnel_only(tmp_path: Path, home_ca: HomeCA) -> None:
    closed = f"wss://127.0.0.1:{_closed_port()}"
    async with _site(tmp_path, home_ca, lan=lambda hub: [closed]) as site:
        car, handler, front = site.car, site.handler, site.front
        await car.start()
        assert await car.wait_connected(20)
        assert car.route == "remote"
        assert car.url == front.url
        peer, hello = handler.connects[-1]
        assert peer.transport == "tunnel"
        assert peer.vehicle_id == "car-1"
        assert hello.body["route"] == "remote"
        for i in range(50):
            await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"i": i}})
        await handler.wait_until(lambda: len(handler.of("car-1", "event")) == 50)
        assert [e.body["data"]["i"] for e in handler.of("car-1", "event")] == list(range(50))
        await site.hub.send(
            "car-1",
            MessageType.NOTIFY,
            {"message": "garage open", "priority": "high", "expires_at": time.time() + 60},
        )
        await wait_for(lambda: any(m.type == MessageType.NOTIFY for m in site.inbox.messages))
        # The address that worked is remembered for the next start.
        stored = json.loads((site.home_dir / "link.json").read_text(encoding="utf-8"))
        assert stored["last_url"] == front.url
        assert front.refused == []


async def test_home_network_first_then_remote(tmp_path: Path, home_ca: HomeCA) -> None:
    async with _site(tmp_path, home_ca, lan=_listener) as site:
        link = json.dumps({"last_url": site.front.url})
        (site.home_dir / "link.json").write_text(link, encoding="utf-8")
        await site.car.start()
        assert await site.car.wait_connected(20)
        # The home network wins even though the remote address worked last time.
        assert site.car.route == "home_network"
        assert site.handler.connects[-1][0].transport == "direct"
        assert site.handler.connects[-1][1].body["route"] == "home_network"


async def test_new_addresses_reach_the_car_over_the_link(tmp_path: Path, home_ca: HomeCA) -> None:
    async with _site(tmp_path, home_ca, lan=_listener, remote=False) as site:
        car, hub, home_dir = site.car, site.hub, site.home_dir
        await car.start()
        assert await car.wait_connected(20)
        new = {
            "lan_urls": [f"wss://127.0.0.1:{_closed_port()}"],
            "external_url": None,
            "remote_urls": [site.front.url],
        }
        await hub.send("car-1", MessageType.ADDRESSES, new)

        def stored() -> dict[str, object]:
            data = json.loads((home_dir / "home.json").read_text(encoding="utf-8"))
            assert isinstance(data, dict)
            return data

        await wait_for(lambda: stored()["remote_urls"] == [site.front.url])
        assert stored()["lan_urls"] == new["lan_urls"]
        assert stored()["hub_id"] == hub.hub_id  # the rest of home.json is kept
        # Handled by the link itself, not passed to the application.
        assert all(m.type != MessageType.ADDRESSES for m in site.inbox.messages)
        # After a reconnect the old LAN address is gone: the car comes in remotely.
        await hub.disconnect("car-1", "moving", retry_after=0.05)
        await wait_for(lambda: car.connected and car.route == "remote")
        assert site.handler.connects[-1][0].transport == "tunnel"


async def test_silent_stall_is_detected_and_nothing_is_lost(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    async with _site(tmp_path, home_ca, via_relay=True) as site:
        handler, hub, car, inbox, relay = site.handler, site.hub, site.car, site.inbox, site.relay
        assert relay is not None
        await car.start()
        assert await car.wait_connected(20)
        for i in range(10):
            await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"i": i}})
        await handler.wait_until(lambda: len(handler.of("car-1", "event")) == 10)
        relay.freeze()  # no error, no FIN: bytes just stop arriving
        for i in range(10, 40):
            await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"i": i}})
        await hub.send(
            "car-1",
            MessageType.NOTIFY,
            {"message": "while stalled", "priority": "normal", "expires_at": time.time() + 60},
        )
        # Detected by the heartbeat (dead_after_s = 2) and re-established on a
        # new connection through the same relay.
        await wait_for(lambda: car.connects >= 2 and car.connected, limit_s=20)
        await handler.wait_until(lambda: len(handler.of("car-1", "event")) == 40)
        assert [e.body["data"]["i"] for e in handler.of("car-1", "event")] == list(range(40))
        await wait_for(lambda: any(m.type == MessageType.NOTIFY for m in inbox.messages))
        assert relay.accepted >= 2


async def test_altered_bytes_break_the_link_and_change_nothing(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    async with _site(tmp_path, home_ca, via_relay=True) as site:
        handler, car, relay = site.handler, site.car, site.relay
        assert relay is not None
        await car.start()
        assert await car.wait_connected(20)
        # Flip one bit far enough in that the handshake is over: inside a record.
        relay.corrupt_after = 6000
        sent = [f"value-{i:04d}" for i in range(200)]
        for text in sent:
            await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"t": text}})
        await wait_for(lambda: relay.corrupted >= 1)
        relay.corrupt_after = None
        await handler.wait_until(lambda: len(handler.of("car-1", "event")) == len(sent))
        # Every message arrived exactly once and unchanged; the altered record
        # broke the link (a reconnect), it was never taken for data.
        assert [e.body["data"]["t"] for e in handler.of("car-1", "event")] == sent
        assert car.connects >= 2
        assert relay.accepted >= 2
