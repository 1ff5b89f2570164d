"""CarLink: the car's side of one home link, with reconnect and a durable outbox.

One ``CarLink`` per paired home. It keeps its state in that home's directory
(``bridge.homes``): ``outbox.db`` (what the home has not acked yet) and
``ledger.db`` (the highest seq handled from the home).

Connection cycle (a small state machine, ``LinkState``):

1. IDLE -> CONNECTING: try the home's URLs in order (LAN URLs first, then the
   external URL) with the car's client TLS context (TLS 1.3, pinned home CA).
2. HELLO: send ``hello`` (protocols, vehicle info, ``acked_seq`` = the highest
   seq handled from the home), wait for the hub's ``hello``; trim the outbox
   up to the hub's ``acked_seq``; append a fresh snapshot.
3. CONNECTED: the link runs (``bridge._session``): the outbox drains in seq
   order with a window of unacked messages; incoming durable messages go to
   ``on_message`` exactly once and in order (expired notify/command dropped).
4. BACKOFF: after any failure wait ``min(max, min * 2**n)`` seconds with
   jitter (uniformly 50-100 % of it), 1 s -> 60 s by default, then 1. A home
   that refused the car (4002 incompatible, 4003 refused/revoked) is retried
   only at the maximum. A close with 4005 ("temporarily unavailable") is not a
   refusal: the car reconnects after the hint at the start of the reason
   (``retry_after=<seconds>;``, kept within [min, max] and 0-20 % later for
   jitter), or after the initial backoff without one.

``send()`` only appends to the outbox and wakes the sender, so it works (and
is durable) whether or not the home is reachable.

Certificate renewal (``bridge.renewal``): at every connect and every
``RenewalPolicy.check_interval_s`` while connected the link checks the
certificate in ``home_dir``; inside the renewal window it queues a
``renew_request``. The ``renew_response`` is handled here (not passed to
``on_message``): the new certificate is checked and installed, and the link
reconnects with it. A ``command`` named ``renew_certificate`` from the home
starts a renewal at once and is answered with a ``command_result``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import WSMsgType
from yarl import URL

from bridge._session import (
    CLOSE_INCOMPATIBLE,
    CLOSE_RETRY_SOON,
    CLOSE_SHUTDOWN,
    CLOSE_UNAUTHORIZED,
    LinkSession,
    TokenBucket,
    retry_after_from,
)
from bridge.addresses import (
    HomeAddresses,
    load_addresses,
    load_last_url,
    store_addresses,
    store_last_url,
)
from bridge.channel import MessageChannel
from bridge.errors import BridgeError, CertificateError, LinkError, ProtocolError
from bridge.ledger import InboundLedger
from bridge.outbox import DEFAULT_MAX_BYTES, Outbox
from bridge.pki import CarIdentity
from bridge.protocol import (
    MAX_MESSAGE_SIZE,
    SUPPORTED_VERSIONS,
    Envelope,
    MessageType,
    decode,
    encode,
    make_control,
    negotiate_version,
)
from bridge.renewal import DEFAULT_RENEWAL, CarRenewal, RenewalPolicy
from bridge.tunnel import is_tunnel_url, open_tunnel

__all__ = ["CarLink", "LinkState", "hub_urls"]

_LOGGER = logging.getLogger(__name__)

_WS_PATH: Final[str] = "/carhub"
_HELLO_TIMEOUT_S: Final[float] = 10.0
_CONNECT_TIMEOUT_S: Final[float] = 10.0
# Pace under the hub's advertised rate so clock and buffering jitter never trips it.
_PACE_SHARE: Final[float] = 0.9
# One ledger per home directory, so one fixed peer key (re-pairing with a new
# CA deletes the link state, see bridge.homes).
_LEDGER_PEER: Final[str] = "hub"


class LinkState(enum.Enum):
    """Where the link is in its connection cycle."""

    IDLE = "idle"
    CONNECTING = "connecting"
    HELLO = "hello"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    STOPPED = "stopped"


def hub_urls(home_dir: Path) -> list[str]:
    """The URLs to dial from ``home.json``: LAN URLs first, then the external one."""
    try:
        data = json.loads((home_dir / "home.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LinkError(f"cannot read {home_dir / 'home.json'}: {err}") from err
    urls = [u for u in data.get("lan_urls", []) if isinstance(u, str)]
    external = data.get("external_url")
    if isinstance(external, str) and external:
        urls.append(external)
    urls += [u for u in data.get("remote_urls", []) if isinstance(u, str)]
    if not urls:
        raise LinkError(f"{home_dir / 'home.json'} lists no hub URL")
    return urls


def _ws_url(url: str) -> URL:
    parsed = URL(url)
    if parsed.scheme in ("https", "wss"):
        parsed = parsed.with_scheme("wss")
    else:
        raise LinkError(f"hub URL must be wss:// or https://: {url!r}")
    if parsed.path in ("", "/"):
        parsed = parsed.with_path(_WS_PATH)
    return parsed


class CarLink:
    """The car's link to one home (see the module doc). Nothing starts before ``start()``.

    ``snapshot()`` returns everything the car knows as the snapshot signals
    mapping ``{vss_path: {"value", "ts"}}`` (a full ``{"signals": {...}}`` body is
    accepted too); it is sent after every (re)connect. ``url`` overrides the
    URLs of ``home.json``; ``ssl_context`` overrides the one built from the
    identity stored in ``home_dir``. ``outer_ssl`` checks the outer TLS of
    tunnel addresses (a proxy's own certificate; default the system trust
    store); ``remote_only`` dials only the home's outside addresses (as on the
    road: to test the way in from outside while at home).
    """

    def __init__(
        self,
        *,
        home_dir: Path,
        hello_body: dict[str, Any],
        on_message: Callable[[Envelope], Awaitable[None]],
        snapshot: Callable[[], dict[str, Any]],
        url: str | None = None,
        urls: list[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 60.0,
        window: int = 1000,
        heartbeat_s: float = 15.0,
        dead_after_s: float = 45.0,
        max_message_bytes: int = MAX_MESSAGE_SIZE,
        outbox_max_bytes: int = DEFAULT_MAX_BYTES,
        compact_state: bool = True,
        renewal: RenewalPolicy | None = DEFAULT_RENEWAL,
        outer_ssl: ssl.SSLContext | bool = True,
        remote_only: bool = False,
    ) -> None:
        self.home_dir = home_dir
        self._hello_body = dict(hello_body)
        self._on_message = on_message
        self._snapshot = snapshot
        self._urls = [url] if url is not None else (list(urls) if urls else None)
        self._ssl = ssl_context
        self._ssl_explicit = ssl_context is not None
        self.renewal = CarRenewal(home_dir, renewal) if renewal is not None else None
        self.renewals = 0
        """Certificates renewed (installed) by this link so far."""
        self.last_renewal_error: str | None = None
        self._backoff = (backoff_min_s, backoff_max_s)
        self._window = window
        self._heartbeat_s = heartbeat_s
        self._dead_after_s = dead_after_s
        self._max_bytes = max_message_bytes
        self.outbox = Outbox(
            home_dir / "outbox.db",
            max_bytes=outbox_max_bytes,
            compact_state=compact_state,
            max_message_bytes=max_message_bytes,
        )
        self.ledger = InboundLedger(home_dir / "ledger.db")
        self.state = LinkState.IDLE
        self.hub_id: str | None = None
        self.last_close_reason: str | None = None
        self.connects = 0
        self._session: LinkSession | None = None
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stop = asyncio.Event()
        # Set when the hub refused us (incompatible version, unauthorized): retry rarely.
        self._session_policy_stop = False
        # Set when the link closed with 4005 (retry soon): the hint in seconds, 0 for none.
        self._retry_soon: float | None = None
        # Addresses by kind and the one that worked last (bridge.addresses); the
        # tunnel's outer TLS check and its inner context (see _inner_tunnel_ssl).
        self._addresses: HomeAddresses | None = None
        self._last_url: str | None = None
        self._dialing: str | None = None
        self._outer_ssl = outer_ssl
        self._remote_only = remote_only
        self._tunnel_ssl: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
        self.route: str | None = None
        """How the link is up: "home_network" or "remote" (None while down)."""
        self.url: str | None = None
        """The address the link is up on (None while down)."""

    # -- public ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the link to the home is established (after both hellos)."""
        return self.state is LinkState.CONNECTED

    @property
    def rtt_ms(self) -> float | None:
        """Last measured ping round trip to the hub, in milliseconds."""
        return self._session.rtt_ms if self._session is not None else None

    async def start(self) -> None:
        """Open the outbox and ledger, then connect in the background (with reconnects)."""
        if self._task is not None:
            return
        await self.outbox.open()
        await self.ledger.open()
        loop = asyncio.get_running_loop()
        if self._urls is None:
            self._addresses = await loop.run_in_executor(None, load_addresses, self.home_dir)
            self._last_url = await loop.run_in_executor(None, load_last_url, self.home_dir)
        if self._ssl is None:
            self._ssl = await loop.run_in_executor(None, self._load_ssl)
        self._stop.clear()
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name=f"carlink-{self.home_dir.name}")

    async def stop(self) -> None:
        """Close the link (1001), flush and close the outbox and ledger."""
        self._stop.set()
        session = self._session
        if session is not None:
            await session.close(CLOSE_SHUTDOWN, "car agent stopping")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        await self.outbox.close()
        await self.ledger.close()
        self.state = LinkState.STOPPED
        self._connected.clear()

    async def send(self, type: MessageType, body: dict[str, Any]) -> int:
        """Append a durable message to the outbox (on disk when this returns); its seq.

        Raises ``ProtocolError`` for a body the hub would reject and
        ``OutboxFullError`` / ``OutboxStorageError`` from the outbox.
        """
        seq = await self.outbox.append(type, body)
        if self._session is not None:
            self._session.wake()
        return seq

    async def wait_connected(self, timeout: float) -> bool:  # noqa: ASYNC109 (contract)
        """Wait up to ``timeout`` seconds for the link to be established."""
        if self.connected:
            return True
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return self.connected

    # -- internals ---------------------------------------------------------------------

    def _load_ssl(self) -> ssl.SSLContext:
        return CarIdentity.load(self.home_dir).client_ssl_context()

    async def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            established = False
            for url in self._dial_order():
                if self._stop.is_set():
                    return
                try:
                    established = await self._connect_once(url)
                except (LinkError, ProtocolError, CertificateError) as err:
                    self.last_close_reason = str(err)
                    _LOGGER.info("link to %s failed: %s", url, err)
                except (aiohttp.ClientError, OSError, BridgeError) as err:
                    # Lost during hello, or storage trouble: retry with backoff, never die.
                    self.last_close_reason = f"link to {url} failed: {err!r}"
                    _LOGGER.warning("%s", self.last_close_reason)
                if established or self._retry_soon is not None:
                    break  # the home answered: no need to try its other URLs now
            if self._stop.is_set():
                return
            lo, hi = self._backoff
            if self._retry_soon is not None:
                # 4005: the home is there but cannot take us right now. Come back
                # after its hint (at least the initial backoff, at most the
                # maximum, a little later for jitter) or the initial backoff.
                attempt = 0
                hint = self._retry_soon
                if hint > 0:
                    delay = min(hi, max(lo, hint) * random.uniform(1.0, 1.2))
                else:
                    delay = lo * random.uniform(0.5, 1.0)
            else:
                attempt = 0 if established else attempt + 1
                if self._session_policy_stop:
                    attempt = max(attempt, 16)  # incompatible or unauthorized: retry rarely
                delay = min(hi, lo * 2 ** max(0, attempt - 1)) if attempt else lo
                delay *= random.uniform(0.5, 1.0)
            self.state = LinkState.BACKOFF
            _LOGGER.debug("reconnecting in %.2f s", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    def _note_retry_soon(self, reason: str | None) -> None:
        """The link closed with 4005 (either side): reconnect soon (after the hint, if any)."""
        hint = retry_after_from(reason)
        self._retry_soon = hint if hint is not None else 0.0
        _LOGGER.info(
            "link closed as temporarily unavailable (4005), reconnecting %s: %s",
            "soon" if hint is None else f"in about {hint:g} s",
            reason,
        )

    async def _connect_once(self, url: str) -> bool:
        """One connection attempt; True if the link was established (and has now ended)."""
        assert self._http is not None
        self.state = LinkState.CONNECTING
        self._session_policy_stop = False
        self._retry_soon = None
        if self._ssl is None:  # after a renewal: the new key and certificate
            self._ssl = await asyncio.get_running_loop().run_in_executor(None, self._load_ssl)
        self._dialing = url
        ws = await self._open(url)
        try:
            return await self._run_link(ws)
        finally:
            self._session = None
            self._connected.clear()
            self.route = self.url = None
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()

    async def _open(self, url: str) -> MessageChannel:
        """The direct mutual-TLS WebSocket, or the tunnel for a web server's address."""
        assert self._http is not None
        if is_tunnel_url(url):
            return await open_tunnel(
                self._http,
                url,
                await self._inner_tunnel_ssl(),
                outer_ssl=self._outer_ssl,
                max_message_bytes=self._max_bytes,
                connect_timeout_s=_CONNECT_TIMEOUT_S,
            )
        target = _ws_url(url)
        try:
            return await asyncio.wait_for(
                self._http.ws_connect(
                    target,
                    ssl=self._ssl if self._ssl is not None else True,
                    max_msg_size=self._max_bytes,
                    autoping=True,
                    compress=15,  # permessage-deflate when the hub takes it (mobile data)
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                ),
                _CONNECT_TIMEOUT_S,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            raise LinkError(f"cannot connect to {target}: {err!r}") from err

    async def _inner_tunnel_ssl(self) -> ssl.SSLContext:
        """The context of the tunnel's inner TLS: the car's own, without the host-name check.

        The outer host is a proxy's public name, not in the home's certificate:
        the inner handshake authenticates the home by the pinned home CA and a
        serverAuth certificate (``bridge.tunnel``). A caller's explicit context
        is used as given.
        """
        assert self._ssl is not None
        if self._ssl_explicit:
            return self._ssl
        if self._tunnel_ssl is None or self._tunnel_ssl[0] is not self._ssl:
            inner = await asyncio.get_running_loop().run_in_executor(None, self._load_ssl)
            inner.check_hostname = False
            self._tunnel_ssl = (self._ssl, inner)
        return self._tunnel_ssl[1]

    def _dial_order(self) -> list[str]:
        if self._addresses is not None:
            order = self._addresses.dial_order(self._last_url)
            if self._remote_only:  # as on the road: the home network does not answer
                return [u for u in order if self._addresses.route(u) == "remote"]
            return order
        return list(self._urls or [])

    def _route_of(self, url: str) -> str:
        if self._addresses is not None:
            return self._addresses.route(url)
        return "remote" if is_tunnel_url(url) else "home_network"

    async def _on_addresses(self, env: Envelope) -> None:
        """The home's addresses changed: store them for the next reconnect."""
        try:
            addresses = HomeAddresses.from_body(env.body)
        except ProtocolError as err:
            _LOGGER.warning("ignoring the home's new addresses: %s", err)
            return
        if self._urls is not None and self._addresses is None:
            return  # the caller fixed the URLs
        try:
            changed = await asyncio.get_running_loop().run_in_executor(
                None, store_addresses, self.home_dir, addresses
            )
        except (BridgeError, OSError) as err:
            _LOGGER.error("cannot store the home's new addresses: %s", err)
            return
        self._addresses = addresses
        if changed:
            _LOGGER.info("home addresses updated: %s", ", ".join(addresses.all_urls()))

    async def _hello(self, ws: MessageChannel) -> tuple[Envelope, int]:
        self.state = LinkState.HELLO
        body = {
            **self._hello_body,
            "protocols": list(SUPPORTED_VERSIONS),
            "acked_seq": self.ledger.last(_LEDGER_PEER),
            "stream_id": self.outbox.stream_id,
        }
        if self._dialing is not None:
            body["route"] = self._route_of(self._dialing)
        hub_stream = self.ledger.stream(_LEDGER_PEER)
        if hub_stream is not None:
            body["acked_stream"] = hub_stream  # which hub outbox acked_seq counts
        await ws.send_bytes(encode(make_control(MessageType.HELLO, body)))
        try:
            msg = await ws.receive(timeout=_HELLO_TIMEOUT_S)
        except TimeoutError as err:
            raise LinkError("the hub sent no hello within 10 s") from err
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            code = msg.data if isinstance(msg.data, int) else ws.close_code
            reason = msg.extra if isinstance(msg.extra, str) else ""
            self.last_close_reason = f"hub closed the link ({code}): {reason}"
            if code in (CLOSE_INCOMPATIBLE, CLOSE_UNAUTHORIZED):
                self._session_policy_stop = True
                _LOGGER.error("home refused this car: %s", self.last_close_reason)
            elif code == CLOSE_RETRY_SOON:
                self._note_retry_soon(reason)
            raise LinkError(self.last_close_reason)
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            raise LinkError(f"unexpected websocket message during hello: {msg.type!r}")
        env = decode(msg.data, max_size=self._max_bytes)
        if env.type != MessageType.HELLO:
            raise ProtocolError(f"expected the hub's hello, got {env.type}")
        version = negotiate_version(SUPPORTED_VERSIONS, env.body["protocols"])
        if version is None:
            self._session_policy_stop = True
            raise ProtocolError(
                f"incompatible protocol: hub speaks {env.body['protocols']}, "
                f"car speaks {list(SUPPORTED_VERSIONS)}"
            )
        return env, version

    async def _run_link(self, ws: MessageChannel) -> bool:
        env, version = await self._hello(ws)
        hub_id = env.body.get("hub_id")
        if not isinstance(hub_id, str) or not hub_id:
            raise ProtocolError("the hub's hello carries no hub_id")
        if self.hub_id is not None and hub_id != self.hub_id:
            _LOGGER.warning("hub id changed from %s to %s", self.hub_id, hub_id)
        self.hub_id = hub_id
        hub_stream = env.body.get("stream_id")
        if isinstance(hub_stream, str):
            # A new stream id: the hub lost its outbox for us and numbers from 1 again.
            await self.ledger.observe_stream(_LEDGER_PEER, hub_stream)
        hub_acked = env.body.get("acked_seq", 0)
        hub_acked = hub_acked if isinstance(hub_acked, int) else 0
        await self.outbox.flush()
        if hub_acked > self.outbox.last_seq:
            await self.outbox.rebase(hub_acked)
        if hub_acked > self.outbox.acked_seq:
            self.outbox.ack_nowait(hub_acked)
        pace = self._pace_from(env.body.get("limits"))
        await self._append_snapshot()
        session = LinkSession(
            ws=ws,
            name=f"home {hub_id}",
            version=version,
            outbox=self.outbox,
            ledger=self.ledger,
            ledger_peer=_LEDGER_PEER,
            deliver=self._deliver,
            start_after=hub_acked,
            window=self._window,
            max_message_bytes=self._max_bytes,
            heartbeat_s=self._heartbeat_s,
            dead_after_s=self._dead_after_s,
            outbound_pace=pace,
        )
        self._session = session
        self.state = LinkState.CONNECTED
        self.connects += 1
        self._connected.set()
        started = time.monotonic()
        self.url = self._dialing
        self.route = self._route_of(self.url) if self.url is not None else None
        _LOGGER.info(
            "connected to home %s via %s (%s, protocol %d)",
            hub_id,
            "the home network" if self.route == "home_network" else "a remote address",
            self.url,
            version,
        )
        if self.url is not None and self.url != self._last_url and self._addresses is not None:
            self._last_url = self.url
            with contextlib.suppress(OSError):
                await asyncio.get_running_loop().run_in_executor(
                    None, store_last_url, self.home_dir, self.url
                )
        renewing = (
            asyncio.create_task(self._renewal_loop(), name=f"renewal-{self.home_dir.name}")
            if self.renewal is not None
            else None
        )
        try:
            await session.run()
        finally:
            if renewing is not None:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
            self.last_close_reason = session.close_reason
            if session.close_code in (CLOSE_INCOMPATIBLE, CLOSE_UNAUTHORIZED):
                self._session_policy_stop = True
            elif session.close_code == CLOSE_RETRY_SOON:
                self._note_retry_soon(session.close_reason)
            _LOGGER.info(
                "link to home %s ended after %.1f s: %s",
                hub_id,
                time.monotonic() - started,
                session.close_reason,
            )
        return True

    # -- certificate renewal ------------------------------------------------------------

    async def _deliver(self, env: Envelope) -> None:
        if env.type == MessageType.ADDRESSES:
            await self._on_addresses(env)
            return
        if self.renewal is not None:
            if env.type == MessageType.RENEW_RESPONSE:
                await self._on_renew_response(env)
                return
            if env.type == MessageType.COMMAND and env.body.get("command") == "renew_certificate":
                await self._on_renew_command(env)
                return
        await self._on_message(env)

    async def _renewal_loop(self) -> None:
        assert self.renewal is not None
        while True:
            await self.request_renewal()
            await asyncio.sleep(self.renewal.policy.check_interval_s)

    async def request_renewal(self, *, force: bool = False) -> tuple[bool, str]:
        """Queue a ``renew_request`` if one is due (or ``force``); (queued?, why)."""
        if self.renewal is None:
            return False, "renewal is disabled for this link"
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(None, partial(self.renewal.prepare, force=force))
        except CertificateError as err:
            _LOGGER.debug("no certificate renewal for %s: %s", self.home_dir, err)
            return False, str(err)
        if body is None:
            return False, "not due"
        try:
            await self.send(MessageType.RENEW_REQUEST, body)
            await loop.run_in_executor(None, self.renewal.mark_sent, body["request_id"])
        except BridgeError as err:
            _LOGGER.error("cannot queue the certificate renewal request: %s", err)
            return False, str(err)
        return True, "renewal requested"

    async def _on_renew_response(self, env: Envelope) -> None:
        assert self.renewal is not None
        outcome = await asyncio.get_running_loop().run_in_executor(
            None, self.renewal.apply_response, env.body
        )
        if not outcome.ok:
            self.last_renewal_error = outcome.detail
            return
        self.last_renewal_error = None
        if not outcome.installed:
            return
        self.renewals += 1
        if self._ssl_explicit:
            _LOGGER.info("renewed certificate stored; the caller's TLS context stays in use")
            return
        self._ssl = None  # the next connect loads the new key and certificate
        session = self._session
        if session is not None and self.renewal.policy.reconnect:
            session.close_after_ack(
                env.seq, CLOSE_SHUTDOWN, "reconnecting with the renewed certificate"
            )

    async def _on_renew_command(self, env: Envelope) -> None:
        queued, detail = await self.request_renewal(force=True)
        result = {"command_seq": env.seq, "ok": queued, "detail": detail, "data": {}}
        try:
            await self.send(MessageType.COMMAND_RESULT, result)
        except BridgeError as err:
            _LOGGER.error("cannot answer the renew_certificate command: %s", err)

    def _pace_from(self, limits: object) -> TokenBucket | None:
        if not isinstance(limits, dict):
            return None
        rate, burst = limits.get("max_msgs_per_s"), limits.get("burst")
        if not isinstance(rate, (int, float)) or not isinstance(burst, (int, float)) or rate <= 0:
            return None
        return TokenBucket(rate * _PACE_SHARE, max(1.0, burst * _PACE_SHARE / 2))

    async def _append_snapshot(self) -> None:
        try:
            signals = self._snapshot()
        except Exception:
            _LOGGER.exception("snapshot callback failed; no snapshot after this reconnect")
            return
        if not signals:
            return
        inner = signals.get("signals") if len(signals) == 1 else None
        body = {"signals": inner} if isinstance(inner, dict) else {"signals": signals}
        try:
            await self.outbox.append(MessageType.SNAPSHOT, body)
        except BridgeError as err:
            _LOGGER.error("cannot queue the snapshot: %s", err)
