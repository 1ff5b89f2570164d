"""A small client for Home Assistant's REST and WebSocket APIs, as the frontend uses them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Mapping
from typing import Any

import aiohttp

#: A decoded JSON document; its shape depends on the endpoint.
type Json = Any


class HAError(RuntimeError):
    """Home Assistant answered with an error (HTTP status or failed WebSocket command)."""


class HAClient:
    """REST calls to one Home Assistant instance, authenticated with a bearer token."""

    def __init__(
        self, base_url: str, session: aiohttp.ClientSession, token: str | None = None
    ) -> None:
        """``base_url`` like ``http://127.0.0.1:8123``; ``token`` may be set later."""
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.token = token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Json = None,
        data: Mapping[str, str] | None = None,
        auth: bool = True,
        timeout_s: float = 30.0,
        expect: tuple[int, ...] = (200, 201),
    ) -> Json:
        """Send one request and return its decoded JSON body (or text when not JSON)."""
        headers = self._headers() if auth else {}
        async with self.session.request(
            method,
            f"{self.base_url}{path}",
            json=json,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            if resp.content_type == "application/json":
                body: Any = await resp.json()
            else:
                body = await resp.text()
            if resp.status not in expect:
                raise HAError(f"{method} {path}: HTTP {resp.status}: {body}")
            return body

    async def get(self, path: str, *, auth: bool = True, timeout_s: float = 30.0) -> Json:
        """GET ``path`` (JSON)."""
        return await self.request("GET", path, auth=auth, timeout_s=timeout_s)

    async def post(
        self, path: str, payload: Json = None, *, auth: bool = True, timeout_s: float = 30.0
    ) -> Json:
        """POST ``payload`` as JSON to ``path``."""
        return await self.request("POST", path, json=payload, auth=auth, timeout_s=timeout_s)

    async def states(self) -> list[dict[str, Any]]:
        """All entity states (``GET /api/states``)."""
        result: list[dict[str, Any]] = await self.get("/api/states")
        return result

    async def state(self, entity_id: str) -> dict[str, Any] | None:
        """One entity's state, or None when Home Assistant does not know it."""
        try:
            result: dict[str, Any] = await self.get(f"/api/states/{entity_id}")
        except HAError as err:
            if "HTTP 404" in str(err):
                return None
            raise
        return result

    async def call_service(
        self, domain: str, service: str, data: Mapping[str, Any] | None = None
    ) -> Json:
        """Call an action (service) through ``POST /api/services/<domain>/<service>``."""
        return await self.post(f"/api/services/{domain}/{service}", dict(data or {}))


class HAWebSocket:
    """One authenticated WebSocket connection; commands are answered in order of ids."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, token: str) -> None:
        """Describe the connection; :meth:`connect` opens it."""
        self._url = base_url.rstrip("/").replace("http", "ws", 1) + "/api/websocket"
        self._session = session
        self._token = token
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, timeout_s: float = 15.0) -> None:
        """Open the socket and authenticate."""
        async with asyncio.timeout(timeout_s):
            self._ws = await self._session.ws_connect(self._url, max_msg_size=0)
            hello = await self._ws.receive_json()
            if hello.get("type") != "auth_required":
                raise HAError(f"unexpected WebSocket greeting: {hello}")
            await self._ws.send_json({"type": "auth", "access_token": self._token})
            answer = await self._ws.receive_json()
        if answer.get("type") != "auth_ok":
            raise HAError(f"WebSocket authentication failed: {answer}")
        self._reader = asyncio.create_task(self._read(), name="ha-websocket-reader")

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            payloads = msg.json()
            for payload in payloads if isinstance(payloads, list) else [payloads]:
                msg_id = payload.get("id")
                if payload.get("type") == "event" and msg_id in self._events:
                    self._events[msg_id].put_nowait(payload["event"])
                elif (fut := self._pending.pop(msg_id, None)) is not None and not fut.done():
                    if payload.get("success", False):
                        fut.set_result(payload.get("result"))
                    else:
                        error = payload.get("error")
                        fut.set_exception(HAError(f"command {msg_id} failed: {error}"))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(HAError("WebSocket closed"))
        self._pending.clear()

    async def command(self, type_: str, *, timeout_s: float = 30.0, **fields: Json) -> Json:
        """Send ``{"type": type_, **fields}`` and return the command's result."""
        if self._ws is None:
            raise HAError("WebSocket not connected")
        msg_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        await self._ws.send_json({"id": msg_id, "type": type_, **fields})
        return await asyncio.wait_for(fut, timeout_s)

    async def subscribe_events(
        self, event_type: str | None = None
    ) -> asyncio.Queue[dict[str, Any]]:
        """Subscribe to bus events (all, or one type); events arrive on the returned queue."""
        if self._ws is None:
            raise HAError("WebSocket not connected")
        msg_id = next(self._ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._events[msg_id] = queue
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        msg: dict[str, Any] = {"id": msg_id, "type": "subscribe_events"}
        if event_type:
            msg["event_type"] = event_type
        await self._ws.send_json(msg)
        await asyncio.wait_for(fut, 30.0)
        return queue

    async def close(self) -> None:
        """Close the socket and stop reading."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._ws = None
        self._reader = None
