"""Helpers of the tunnel tests: a web front with the tunnel endpoint, a freezable relay.

``TunnelFront`` is a plain-HTTP aiohttp server on 127.0.0.1 whose
``/api/carhub/link`` hands requests to ``bridge.tunnel.serve_tunnel`` (what
the Home Assistant view does) and records refused handshakes. ``Relay`` is a
TCP relay that can silently stop forwarding (``freeze``: sockets stay open, no
error, no FIN) or flip one byte in flight (``corrupt_after``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from bridge.server import HubServer
from bridge.tunnel import TUNNEL_PATH, TunnelLimits, serve_tunnel


@dataclass
class TunnelFront:
    """A web server with the tunnel endpoint in front of ``hub``."""

    hub: HubServer
    limits: TunnelLimits = field(default_factory=TunnelLimits)
    refused: list[str] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(TUNNEL_PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{TUNNEL_PATH}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        async def refused(reason: str) -> None:
            self.refused.append(reason)

        return await serve_tunnel(self.hub, request, on_refused=refused, limits=self.limits)


def write_home(home_dir: Path, hub_id: str, *, lan: list[str], remote: list[str]) -> None:
    """A ``home.json`` as pairing writes it, with remote (tunnel) addresses."""
    home_dir.mkdir(parents=True, exist_ok=True)
    (home_dir / "home.json").write_text(
        json.dumps(
            {
                "version": 1,
                "hub_id": hub_id,
                "lan_urls": lan,
                "external_url": None,
                "remote_urls": remote,
                "paired_at": "2026-01-01T00:00:00+00:00",
            }
        ),
        encoding="utf-8",
    )


class Relay:
    """A TCP relay on 127.0.0.1 to ``target_port`` that can stall or alter a connection.

    ``freeze()`` makes every live connection stop forwarding in both
    directions without closing anything (a dead zone, a NAT mapping dropped);
    new connections forward normally. ``corrupt_after = n`` flips one byte of
    the car->home stream once ``n`` bytes have passed on a connection.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.corrupt_after: int | None = None
        self.corrupted = 0
        self.accepted = 0
        self._frozen: set[int] = set()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

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

    def freeze(self) -> None:
        """Silently stop forwarding on every connection open now."""
        self._frozen.update(range(self.accepted))

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        index = self.accepted
        self.accepted += 1
        self._writers += [writer, up_w]
        for src, dst, upstream in ((reader, up_w, True), (up_r, writer, False)):
            task = asyncio.create_task(self._pipe(index, src, dst, upstream=upstream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        index: int,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        passed = 0
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                if index in self._frozen:
                    continue  # swallowed: no error, no close, nothing arrives
                if upstream and self.corrupt_after is not None:
                    start = passed
                    passed += len(data)
                    if start <= self.corrupt_after < passed:
                        at = self.corrupt_after - start
                        data = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
                        self.corrupted += 1
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if index not in self._frozen:
                with contextlib.suppress(Exception):
                    dst.transport.abort()
