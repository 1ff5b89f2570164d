"""The car's way in through Home Assistant's web server (``/api/carhub/link``).

A real car (the bridge's CarLink) paired through the config flow reaches
home only through Home Assistant's own HTTP server: the tunnel view, mutual
TLS inside the WebSocket, the diagnostic *Connected via* sensor, addresses
pushed when Home Assistant's external URL changes, and failed inner
handshakes counted by Home Assistant's IP ban.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import aiohttp
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from bridge.client import CarLink
from bridge.homes import HomeRegistry
from bridge.protocol import Envelope, MessageType
from bridge.tunnel import TUNNEL_PATH
from custom_components.carhub.const import DOMAIN

from .conftest import SIGNALS, SNAPSHOT_VALUES, unload_all
from .test_real_car import VEHICLE, pair, wait_for


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _link(home_dir: Path, received: list[Envelope]) -> CarLink:
    async def on_message(env: Envelope) -> None:
        received.append(env)

    now = time.time()
    return CarLink(
        home_dir=home_dir,
        hello_body={
            "agent_version": "0.1.0",
            "vehicle": {
                "vehicle_id": VEHICLE.vehicle_id,
                "vin": VEHICLE.vin,
                "make": "Volkswagen",
                "model": "Polo",
                "profile": "test",
            },
            "capabilities": ["voice"],
            "signals": SIGNALS,
        },
        on_message=on_message,
        snapshot=lambda: {p: {"value": v, "ts": now} for p, v in SNAPSHOT_VALUES.items()},
        backoff_min_s=0.1,
        backoff_max_s=0.5,
    )


async def test_car_reaches_home_through_home_assistant(
    hass: HomeAssistant,
    socket_enabled: None,
    config_dir: Path,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    assert await async_setup_component(
        hass, "http", {"http": {"ip_ban_enabled": True, "login_attempts_threshold": 2}}
    )
    assert await async_setup_component(hass, DOMAIN, {})  # registers the view
    client = await hass_client_no_auth()
    base = str(client.make_url("/")).rstrip("/")
    await hass.config.async_update(external_url=base)
    registry = HomeRegistry(config_dir / "car")
    hub_id = await pair(hass, registry)
    home_dir = registry.directory(hub_id)
    home = json.loads((home_dir / "home.json").read_text(encoding="utf-8"))
    # Pairing handed over Home Assistant's own address, at the tunnel path.
    assert home["remote_urls"] == [base + TUNNEL_PATH]
    # On the road: the listener's LAN address does not answer.
    home["lan_urls"] = [f"wss://127.0.0.1:{_closed_port()}"]
    (home_dir / "home.json").write_text(json.dumps(home), encoding="utf-8")

    received: list[Envelope] = []
    link = _link(home_dir, received)
    await link.start()
    try:
        assert await link.wait_connected(10)
        assert link.route == "remote"
        await wait_for(
            lambda: (
                (s := hass.states.get("sensor.volkswagen_polo_speed")) is not None
                and s.state == "42.5"
            )
        )
        await wait_for(
            lambda: hass.states.get("sensor.volkswagen_polo_connected_via").state == "remote"
        )
        await link.send(
            MessageType.STATE, {"signals": {"Vehicle.Speed": {"value": 7.5, "ts": time.time()}}}
        )
        await wait_for(lambda: hass.states.get("sensor.volkswagen_polo_speed").state == "7.5")

        # The owner changes the external URL: the connected car learns it.
        await hass.config.async_update(external_url="https://car-home.example.org")
        await wait_for(
            lambda: (
                json.loads((home_dir / "home.json").read_text(encoding="utf-8"))["remote_urls"]
                == ["https://car-home.example.org" + TUNNEL_PATH]
            )
        )
        assert all(e.type != MessageType.ADDRESSES for e in received)  # handled by the link
    finally:
        await link.stop()
    await wait_for(
        lambda: hass.states.get("sensor.volkswagen_polo_connected_via").state == "unknown"
    )

    # Garbage instead of a TLS handshake counts as a failed login: two, and the
    # address is banned from the whole web server.
    for _ in range(2):
        ws = await client.ws_connect(TUNNEL_PATH)
        await ws.send_bytes(b"not a TLS handshake")
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await ws.close()
    response = await client.get(TUNNEL_PATH)
    assert response.status == 403
    await unload_all(hass)
