"""The transport interface a link session runs over: one message channel.

A ``LinkSession`` (``bridge._session``) and the hello exchanges of
``HubServer`` and ``CarLink`` need only this much of a connection: receive one
message (with a timeout), send one binary message, close with a code and a
reason, and tell whether and how it closed. aiohttp's WebSockets (the direct
mutual-TLS listener and its client) have exactly this shape; so has
``bridge.tunnel.TunnelChannel`` (the same mutual TLS run inside the binary
frames of a WebSocket through Home Assistant's web server). Whatever carries
the bytes, the session above it is the same.

Messages come back as aiohttp ``WSMessage`` tuples: ``BINARY``/``TEXT`` with
the data, ``CLOSE`` with the close code and reason, ``CLOSED``, or ``ERROR``
with ``exception()`` set.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import WSMessage

__all__ = ["MessageChannel"]


class MessageChannel(Protocol):
    """One established, authenticated, ordered message connection."""

    @property
    def closed(self) -> bool:
        """True once either side closed the channel (or it broke)."""

    @property
    def close_code(self) -> int | None:
        """The close code, once closed (None before, or when none was given)."""

    def exception(self) -> BaseException | None:
        """What broke the channel, if something did."""

    async def receive(self, timeout: float | None = None) -> WSMessage:  # noqa: ASYNC109
        """The next message; raises ``TimeoutError`` after ``timeout`` seconds."""

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message."""

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        """Close with a code and a reason (at most 123 bytes); False if already closed."""
