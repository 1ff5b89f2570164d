"""Test helpers for the agent runtime against real hubs: HomeCA + HubServer + pairing.

Everything listens on 127.0.0.1 with port 0; every wait is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.homes import HomeRecord, HomeRegistry
from bridge.pairing import HubInfo, PairingServer, VehicleInfo, pair_with_car
from bridge.pki import HomeCA
from bridge.protocol import Envelope, MessageType
from bridge.server import HubServer, PeerInfo

WAIT = 20.0  # upper bound of any single wait in these tests
PAIRING_CODE = "20240607"


@dataclass
class RecordingHandler:
    """A HubHandler that keeps everything the hub received."""

    hellos: list[tuple[PeerInfo, Envelope]] = field(default_factory=list)
    messages: list[tuple[PeerInfo, Envelope]] = field(default_factory=list)
    disconnects: int = 0

    async def on_connect(self, peer: PeerInfo, hello: Envelope) -> None:
        self.hellos.append((peer, hello))

    async def on_message(self, peer: PeerInfo, env: Envelope) -> None:
        self.messages.append((peer, env))

    async def on_disconnect(self, peer: PeerInfo) -> None:
        self.disconnects += 1

    def of(self, type: MessageType) -> list[Envelope]:
        return [env for _, env in self.messages if env.type == type]

    def merged_state(self) -> dict[str, Any]:
        """Last value per path over every state message, in arrival order."""
        out: dict[str, Any] = {}
        for env in self.of(MessageType.STATE):
            for path, item in env.body["signals"].items():
                out[path] = item["value"]
        return out

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        bodies = [env.body for env in self.of(MessageType.EVENT)]
        return [b for b in bodies if kind is None or b["kind"] == kind]


@dataclass
class Home:
    """One running hub with its CA and recording handler."""

    ca: HomeCA
    server: HubServer
    handler: RecordingHandler

    @property
    def hub_id(self) -> str:
        return self.server.hub_id

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.server.port}/"


@contextlib.asynccontextmanager
async def running_home(directory: Path, name: str = "Test Home") -> AsyncIterator[Home]:
    """A HomeCA (made in ``directory``) and its HubServer on 127.0.0.1, port 0."""
    ca = await asyncio.to_thread(HomeCA.create, directory / "ca", name=name)
    handler = RecordingHandler()
    server = HubServer(
        ca=ca, state_dir=directory / "hub", handler=handler, host="127.0.0.1", port=0
    )
    await server.start()
    try:
        yield Home(ca, server, handler)
    finally:
        await server.stop()


async def pair(home: Home, state_dir: Path, *, vin: str = "") -> HomeRecord:
    """Pair the car of ``state_dir`` with ``home`` through real SPAKE2 pairing."""
    registry = HomeRegistry(state_dir)
    vehicle_id = await asyncio.to_thread(registry.vehicle_id)
    vehicle = VehicleInfo(
        vehicle_id=vehicle_id, vin=vin, make="Test", model="Car", agent_version="test"
    )
    server = PairingServer(
        vehicle=vehicle,
        identity_factory=registry.identity_factory,
        code=PAIRING_CODE,
        host="127.0.0.1",
        port=0,
        failure_delay_s=0.0,
    )
    hub = HubInfo(hub_id=home.hub_id, lan_urls=[home.url], external_url=None)
    await server.start()
    try:
        result = await pair_with_car(
            host="127.0.0.1", port=server.port, code=PAIRING_CODE, ca=home.ca, hub=hub, timeout=WAIT
        )
        got = await asyncio.wait_for(server.wait_paired(), WAIT)
    finally:
        await server.close()
    assert result.vehicle.vehicle_id == vehicle_id
    return await asyncio.to_thread(registry.commit, got)


async def wait_until(cond: Callable[[], object], what: str, within: float = WAIT) -> None:
    """Wait (bounded) until ``cond()`` is truthy; fail the test otherwise."""
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)
