"""Mobile data: bytes a car sends and receives per hour of driving, on both paths.

The real agent (``vehicle-agent run``, a child process) replays the RAV4 CAN
log in real time with the default RAV4 profile and its GPS track, connected
to a real ``HubServer``:

- direct: mutual TLS 1.3 WebSocket to the listener;
- tunnel: through a real nginx ending TLS with its own certificate, the
  car's mutual TLS inside the WebSocket (``bridge.tunnel``).

A counting TCP relay sits between the car and the first hop, so every byte
on the car's connection is counted (TLS handshakes, records, WebSocket
framing, heartbeats, acks both ways). Used by ``benchmarks/bridge.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bridge.homes import HomeRegistry
from bridge.pki import CarIdentity, HomeCA
from bridge.protocol import Envelope
from bridge.server import HubServer, PeerInfo
from bridge.tunnel import TUNNEL_PATH, serve_tunnel
from demo.paths import CAN_LOG, DBC_DIR, GPS_TRACK, PROFILE, venv_bin
from demo.reverse_proxy import ReverseProxy


class _Counter:
    """Counts state messages (signals) the hub received."""

    def __init__(self) -> None:
        self.messages = 0
        self.signals = 0
        self.relay: CountingRelay | None = None
        self.connected_at: tuple[float, int] | None = None  # (monotonic, bytes so far)

    async def on_connect(self, peer: PeerInfo, hello: Envelope) -> None:
        if self.relay is not None and self.connected_at is None:
            self.connected_at = (time.monotonic(), self.relay.up + self.relay.down)

    async def on_message(self, peer: PeerInfo, env: Envelope) -> None:
        self.messages += 1
        signals = env.body.get("signals")
        if isinstance(signals, dict):
            self.signals += len(signals)

    async def on_disconnect(self, peer: PeerInfo) -> None:
        return None


class CountingRelay:
    """A TCP relay on 127.0.0.1 that counts the bytes in each direction."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.up = 0
        self.down = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_w]
        for src, dst, upstream in ((reader, up_w, True), (up_r, writer, False)):
            task = asyncio.create_task(self._pipe(src, dst, upstream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                if upstream:
                    self.up += len(data)
                else:
                    self.down += len(data)
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(Exception):
            dst.transport.abort()


def _prepare_car(root: Path, ca: HomeCA, *, lan: list[str], remote: list[str]) -> None:
    """A car state directory paired with ``ca`` (what ``vehicle-agent pair`` leaves)."""
    registry = HomeRegistry(root)
    home = registry.directory(ca.hub_id)
    home.mkdir(parents=True, exist_ok=True)
    identity = CarIdentity.create(home)
    vehicle_id = registry.vehicle_id()
    cert = ca.sign_car_csr(identity.csr_pem(vehicle_id), vehicle_id=vehicle_id)
    identity.store_certificate(cert, ca.ca_cert_pem)
    (home / "home.json").write_text(
        json.dumps(
            {
                "version": 1,
                "hub_id": ca.hub_id,
                "lan_urls": lan,
                "external_url": None,
                "remote_urls": remote,
                "paired_at": "2026-01-01T00:00:00+00:00",
            }
        ),
        encoding="utf-8",
    )


async def _drive(state_dir: Path, seconds: float, env: dict[str, str], args: list[str]) -> None:
    argv = [
        str(venv_bin("vehicle-agent")),
        "run",
        "--profile",
        str(PROFILE),
        "--dbc-dir",
        str(DBC_DIR),
        "--replay",
        str(CAN_LOG),
        "--gps-track",
        str(GPS_TRACK),
        "--state-dir",
        str(state_dir),
        "--tts",
        "null",
        "--duration",
        f"{seconds:g}",
        *args,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(proc.wait(), seconds + 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def measure_path(root: Path, path: str, seconds: float) -> dict[str, Any]:
    """Drive ``seconds`` of the RAV4 log over one path; bytes counted on the car's side."""
    ca = HomeCA.create(root / "ca")
    counter = _Counter()
    hub = HubServer(ca=ca, state_dir=root / "hub", handler=counter, host="127.0.0.1", port=0)
    await hub.start()
    front: web.AppRunner | None = None
    proxy: ReverseProxy | None = None
    relay: CountingRelay | None = None
    env = dict(os.environ)
    args: list[str] = []
    try:
        if path == "direct":
            relay = CountingRelay(hub.port)
            await relay.start()
            counter.relay = relay
            _prepare_car(root / "car", ca, lan=[f"wss://127.0.0.1:{relay.port}"], remote=[])
        else:

            async def handle(request: web.Request) -> web.StreamResponse:
                return await serve_tunnel(hub, request)

            app = web.Application()
            app.router.add_get(TUNNEL_PATH, handle)
            front = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await front.setup()
            site = web.TCPSite(front, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert isinstance(server, asyncio.Server)
            proxy = ReverseProxy(root / "nginx", int(server.sockets[0].getsockname()[1]))
            await proxy.start()
            relay = CountingRelay(proxy.port)
            await relay.start()
            counter.relay = relay
            # The relay's port stands for the proxy's public address; nginx's
            # certificate names 127.0.0.1, so it verifies on either port.
            url = f"https://127.0.0.1:{relay.port}{TUNNEL_PATH}"
            _prepare_car(root / "car", ca, lan=[], remote=[url])
            env["SSL_CERT_FILE"] = str(proxy.cert_path)
            args = ["--remote-only"]
        started = time.monotonic()
        await _drive(root / "car", seconds, env, args)
        ended = time.monotonic()
        elapsed = ended - started
    finally:
        if relay is not None:
            await relay.stop()
        if proxy is not None:
            await proxy.stop()
        if front is not None:
            await front.cleanup()
        await hub.stop()
    per_hour = 3600.0 / seconds
    total = relay.up + relay.down
    connect_t, connect_bytes = counter.connected_at or (started, 0)
    steady = (total - connect_bytes) * 3600.0 / max(1e-3, ended - connect_t)
    return {
        "seconds_driven": seconds,
        "wall_s": round(elapsed, 1),
        "car_to_home_bytes": relay.up,
        "home_to_car_bytes": relay.down,
        "bytes_per_hour": round((relay.up + relay.down) * per_hour),
        "mib_per_hour": round((relay.up + relay.down) * per_hour / 2**20, 2),
        "connect_bytes": connect_bytes,
        "steady_bytes_per_hour": round(steady),
        "steady_mib_per_hour": round(steady / 2**20, 2),
        "messages_received_by_home": counter.messages,
        "signal_updates_received_by_home": counter.signals,
    }


async def measure(root: Path, seconds: float) -> dict[str, Any]:
    """Both paths, one after the other, with the same log and profile."""
    out: dict[str, Any] = {}
    for path in ("direct", "tunnel"):
        out[path] = await measure_path(root / path, path, seconds)
        print(f"driving bytes ({path}): {out[path]}", file=sys.stderr)
    out["tunnel_to_direct_bytes"] = round(
        out["tunnel"]["bytes_per_hour"] / max(1, out["direct"]["bytes_per_hour"]), 3
    )
    out["how"] = (
        f"`vehicle-agent run` replaying {CAN_LOG.name} in real time ({seconds:g} s, default "
        "RAV4 profile, GPS track) to a real hub; every byte of the car's TCP connection "
        "counted both ways and scaled to one hour; tunnel = through nginx (TLS with its own "
        "certificate) with the car's mutual TLS inside the WebSocket; connect_bytes: up to the "
        "hub's on_connect (TLS handshakes, HTTP upgrade, hellos); steady: the rest per hour; "
        "compression: permessage-deflate (direct) and deflate inside the inner TLS (tunnel)"
    )
    return out
