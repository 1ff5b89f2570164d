"""Home requests: a ``voice_request`` to Home Assistant, its ``voice_reply`` awaited.

The voice package does not know the bridge: anything with the small
:class:`HomeLink` shape works (``bridge.client.CarLink`` in the agent via
:class:`CarLinkHome`, fakes in tests). A request is only sent when the home
is connected: queueing "open the garage door" in the outbox to run an hour
later would be worse than saying the home is unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.protocol import MessageType
from vehicle_agent.voice.errors import HomeUnavailableError

_LOGGER = logging.getLogger(__name__)


class HomeLink(Protocol):
    """The part of a link to one home that voice needs."""

    @property
    def connected(self) -> bool:
        """True while the home is reachable."""
        ...

    async def send(self, type: MessageType, body: dict[str, Any]) -> int:
        """Queue a durable message; returns its seq."""
        ...


@dataclass(frozen=True, kw_only=True)
class HomeReply:
    """The home's answer to a voice request."""

    request_id: str
    text: str
    success: bool


class HomeRequester:
    """Sends voice requests and matches replies by ``request_id``.

    Feed every incoming ``voice_reply`` body to :meth:`on_reply`.
    """

    def __init__(self, link: HomeLink, *, timeout: float = 8.0) -> None:
        self._link = link
        self.timeout = timeout
        self._pending: dict[str, asyncio.Future[HomeReply]] = {}

    @property
    def is_connected(self) -> bool:
        """Whether a request can be sent now."""
        return bool(self._link.connected)

    async def request(
        self,
        text: str,
        language: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> HomeReply:
        """Send *text*; return the reply. Raises :class:`HomeUnavailableError` when
        the home is not connected or does not answer within the timeout."""
        if not self.is_connected:
            raise HomeUnavailableError("the home is not connected")
        request_id = uuid.uuid4().hex
        future: asyncio.Future[HomeReply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._link.send(
                MessageType.VOICE_REQUEST,
                {"request_id": request_id, "text": text, "language": language},
            )
            return await asyncio.wait_for(future, timeout or self.timeout)
        except TimeoutError as exc:
            raise HomeUnavailableError("no reply from the home in time") from exc
        finally:
            self._pending.pop(request_id, None)

    def on_reply(self, body: Mapping[str, Any]) -> bool:
        """Deliver a ``voice_reply`` body; False if it matches no waiting request."""
        request_id = body.get("request_id")
        future = self._pending.get(request_id) if isinstance(request_id, str) else None
        if future is None or future.done():
            _LOGGER.debug("voice_reply for unknown or finished request %r", request_id)
            return False
        text = body.get("text")
        future.set_result(
            HomeReply(
                request_id=str(request_id),
                text=text if isinstance(text, str) else "",
                success=body.get("success") is True,
            )
        )
        return True


class FirstConnectedHome:
    """A :class:`HomeLink` over several links (one per paired home): the first
    connected one handles the request."""

    def __init__(self, links: Mapping[str, HomeLink]) -> None:
        self._links = links

    def _pick(self) -> HomeLink | None:
        return next((link for link in list(self._links.values()) if link.connected), None)

    @property
    def connected(self) -> bool:
        """True if any home is reachable."""
        return self._pick() is not None

    async def send(self, type: MessageType, body: dict[str, Any]) -> int:
        """Send through the first connected home."""
        link = self._pick()
        if link is None:
            raise HomeUnavailableError("no home is connected")
        return await link.send(type, body)
