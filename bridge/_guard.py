"""Deadlines for connections that have not said hello yet (slow-loris protection).

``GuardedSite`` is an aiohttp TCP site whose listener

- aborts a TLS handshake that has not finished within ``handshake_timeout_s``
  (asyncio's ``ssl_handshake_timeout``: a peer that opens TCP and sends
  nothing, or half a ClientHello, holds nothing for long), and
- aborts a connection whose car has not said hello within ``hello_timeout_s``
  after the handshake (the HTTP upgrade and the hello frame both count
  against it), unless the application called ``ConnectionGuard.greeted``
  for its transport.

The guard also counts connections between handshake and hello, so tests and
diagnostics can see that they stay bounded.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from aiohttp import web

__all__ = ["ConnectionGuard", "GuardedSite"]


class ConnectionGuard:
    """Hello deadlines of the connections past their TLS handshake."""

    def __init__(self, hello_timeout_s: float) -> None:
        self.hello_timeout_s = hello_timeout_s
        self._waiting: dict[asyncio.BaseTransport, asyncio.TimerHandle] = {}
        self.expired = 0
        """Connections aborted because no hello came in time (diagnostics)."""

    @property
    def waiting(self) -> int:
        """Connections past the handshake that have not said hello yet."""
        return len(self._waiting)

    def started(self, transport: asyncio.BaseTransport) -> None:
        """A connection finished its handshake: its hello deadline starts now."""
        loop = asyncio.get_running_loop()
        self._waiting[transport] = loop.call_later(self.hello_timeout_s, self._expire, transport)

    def greeted(self, transport: asyncio.BaseTransport | None) -> None:
        """The car on ``transport`` said hello: no deadline any more."""
        if transport is not None and (handle := self._waiting.pop(transport, None)):
            handle.cancel()

    def ended(self, transport: asyncio.BaseTransport) -> None:
        """The connection closed."""
        if (handle := self._waiting.pop(transport, None)) is not None:
            handle.cancel()

    def _expire(self, transport: asyncio.BaseTransport) -> None:
        if self._waiting.pop(transport, None) is not None:
            self.expired += 1
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
            else:
                transport.close()


class _GuardedProtocol(asyncio.Protocol):
    """Wraps aiohttp's request handler to start and end the hello deadline."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._guard.started(transport)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.ended(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """A TCP(+TLS) site with a handshake deadline and the guard's hello deadline."""

    __slots__ = ("_guard", "_handshake_timeout_s", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        guard: ConnectionGuard,
        handshake_timeout_s: float,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._guard = guard
        self._handshake_timeout_s = handshake_timeout_s

    @property
    def name(self) -> str:
        return f"{'wss' if self._ssl_context else 'ws'}://{self._host}:{self._port}"

    @property
    def server(self) -> asyncio.AbstractServer | None:
        """The listening server (for the bound port)."""
        return self._server

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        make: Callable[[], asyncio.Protocol] = server
        guard = self._guard
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _GuardedProtocol(make(), guard),
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout_s if self._ssl_context else None,
            backlog=self._backlog,
        )
