"""HubServer: the home side of the link, one mTLS WebSocket listener for every car.

TLS 1.3 with client certificates (the context comes from ``HomeCA``): the
server learns which car it talks to from the verified peer certificate alone,
never from anything the car says. After the handshake:

1. the car sends ``hello``; the server picks the highest protocol version both
   speak, or closes with code 4002 and a reason naming both sides' versions;
2. the server answers ``hello`` with its hub id, the highest seq it has from
   this car (``acked_seq``, so the car trims its outbox at once) and its limits
   (``limits``: the car paces itself under them);
3. ``HubHandler.on_connect``; then the link runs (see ``bridge._session``):
   durable messages go to ``on_message`` in order, exactly once, and are acked
   after it returns; the hub's own messages to the car (notify, command,
   voice_reply, vocabulary) go through a per-car durable outbox and are
   resent after a reconnect.

Limits (``ServerLimits``): frame size (close 1009), messages per second per car
with a token bucket (close 1008), concurrent connections (close 1013). A second
connection of the same car replaces the first (close 4001) once it said hello;
before hello a car may hold at most ``max_pending_per_car`` connections
(more: close 1013), each must finish its TLS handshake within
``tls_handshake_timeout_s`` and say hello within ``hello_timeout_s`` after it
(else it is aborted; see ``bridge._guard``). Breaking a limit closes only that
connection.

Delivery (see ``bridge._session``): a message is acked only after
``on_message`` returned. A handler that raises gets the message again (close
4005, resent by the car) up to ``max_delivery_attempts`` times; then it is
stored in ``dead-letters.db`` with its payload, logged with its seq and
reason, passed to ``on_dead_letter``, and acked. Each message carries its
stable id (``env.message_id``) and ``env.redelivered``. A car may not send the
home's own types (``HOME_ONLY_TYPES``: refused, logged, acked) nor a seq
implausibly far ahead (close 1002).

A handler that cannot take a message now raises ``bridge.errors.DeferMessage``:
the message is not acked (nor anything after it on that link) and the link
closes with 4005, "temporarily unavailable, retry soon", so the car resends it
after reconnecting. ``disconnect(..., retry_after=S)`` closes with 4005 too;
without ``retry_after`` it is 4003 (refused by the home).

Other transports (``bridge.tunnel``: the same mutual TLS inside a WebSocket
through Home Assistant's web server) hand their authenticated channel to
``serve_channel``: the same vehicle-id and revocation checks, limits, hello
and session as a direct connection.

State on disk under ``state_dir``: ``ledger.db`` (highest seq handled per car),
``dead-letters.db`` and ``cars/<vehicle_id>/outbox.db`` (what the hub still has
to deliver).

Certificates (``bridge.renewal``): a car's ``renew_request`` is answered by
the server itself (``handle_renewals``, on by default): the CSR is signed for
the vehicle id of the car's verified certificate, never one from the message,
and the certificate goes back as a durable ``renew_response``;
``on_renewal(RenewalEvent)`` tells the application. ``revoke()`` revokes in
the CA, reloads the CRL into the running TLS context (new handshakes of that
car fail) and closes its live link (4003); ``refresh_revocations()`` does the
last two for revocations made elsewhere (another process), and with
``crl_watch_s`` the server does that whenever ``crl.pem`` changes.
``on_revocation(RevocationEvent)`` reports each car found revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from aiohttp import WSMsgType, web
from cryptography import x509

from bridge._guard import ConnectionGuard, GuardedSite
from bridge._session import (
    CLOSE_INCOMPATIBLE,
    CLOSE_INTERNAL,
    CLOSE_PROTOCOL,
    CLOSE_REPLACED,
    CLOSE_RETRY_SOON,
    CLOSE_SHUTDOWN,
    CLOSE_TRY_LATER,
    CLOSE_UNAUTHORIZED,
    LinkSession,
    TokenBucket,
    retry_reason,
)
from bridge.channel import MessageChannel
from bridge.deadletter import DeadLetter, DeadLetterStore, FailureTracker
from bridge.errors import BridgeError, CertificateError, ProtocolError
from bridge.ledger import InboundLedger
from bridge.outbox import Outbox
from bridge.pki import CAR_CERT_DAYS, HomeCA, vehicle_id_from_certificate
from bridge.protocol import (
    HOME_ONLY_TYPES,
    SUPPORTED_VERSIONS,
    Envelope,
    MessageType,
    decode,
    encode,
    make_control,
    negotiate_version,
)
from bridge.renewal import HubRenewals, RenewalEvent, RevocationEvent

__all__ = ["WS_PATH", "HubHandler", "HubServer", "PeerInfo", "ServerLimits"]

_LOGGER = logging.getLogger(__name__)

WS_PATH: Final[str] = "/carhub"
"""The WebSocket route (``/`` is served too, so a bare ``wss://host:port`` URL works)."""

# Limits of the hub that the car is not told about in the hello reply.
_HUB_ONLY_LIMITS: Final = frozenset(
    {
        "max_connections",
        "max_pending_per_car",
        "hello_timeout_s",
        "tls_handshake_timeout_s",
        "max_delivery_attempts",
    }
)


@dataclass(frozen=True, kw_only=True)
class PeerInfo:
    """Who is on the other end: the vehicle id from its certificate and its address.

    ``serial`` and ``certificate_expiry`` describe the certificate the car
    connected with (None when the server did not see one, e.g. in tests).
    """

    vehicle_id: str
    remote: str
    serial: int | None = None
    certificate_expiry: dt.datetime | None = None
    transport: str = "direct"
    """How the car came in: "direct" (this listener) or "tunnel" (``bridge.tunnel``)."""


class HubHandler(Protocol):
    """What the hub does with cars; implemented by the integration and by ``serve``."""

    async def on_connect(self, peer: PeerInfo, hello: Envelope) -> None:
        """A car connected and said hello (its vehicle info, capabilities and signals)."""

    async def on_message(self, peer: PeerInfo, env: Envelope) -> None:
        """A durable message, in order; the ack is sent only after this returns.

        Raise ``bridge.errors.DeferMessage`` to refuse it for now: it is not
        acked (nor anything after it on this link), the link closes with 4005
        ("retry soon", with the exception's ``retry_after`` hint) and the car
        resends it after reconnecting. Any other exception does the same, up
        to ``ServerLimits.max_delivery_attempts`` times; then the message is
        dead-lettered (stored with its payload, reported) and acked.

        Across a crash of this process a message handled but not yet recorded
        is handed over again, with ``env.redelivered`` set: a handler whose
        effect is not idempotent deduplicates by ``env.message_id`` durably.
        """

    async def on_disconnect(self, peer: PeerInfo) -> None:
        """The car's connection ended."""


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    """Per-car and global limits of the hub listener."""

    max_message_bytes: int = 256 * 1024
    max_msgs_per_s: float = 2000
    burst: int = 4000
    max_connections: int = 64
    heartbeat_s: float = 15
    dead_after_s: float = 45
    max_pending_per_car: int = 2
    """Connections of one car certificate that have not said hello yet (more: 1013)."""
    hello_timeout_s: float = 5.0
    """From the WebSocket upgrade to the car's hello (else close 1002); the connection is
    aborted if upgrade and hello are not done within this plus 1 s after the TLS handshake."""
    tls_handshake_timeout_s: float = 5.0
    """A TLS handshake not finished by then is aborted (slow-loris)."""
    max_delivery_attempts: int = 3
    """Failed handler attempts before a message is dead-lettered."""


class _CarLink:
    """The hub's view of one connected car."""

    def __init__(self, peer: PeerInfo, ws: MessageChannel, session: LinkSession) -> None:
        self.peer = peer
        self.ws = ws
        self.session = session
        self.done = asyncio.Event()


class HubServer:
    """One mTLS WebSocket listener for all cars (see the module doc).

    ``peer_identity`` turns the verified peer certificate (DER) into a vehicle
    id; it defaults to ``bridge.pki.vehicle_id_from_certificate``. ``hub_id``
    defaults to ``ca.hub_id``. Nothing happens before ``await start()``.
    """

    def __init__(
        self,
        *,
        ca: HomeCA,
        state_dir: Path,
        handler: HubHandler,
        host: str | Sequence[str] = "0.0.0.0",  # noqa: S104 (cars connect from the LAN)
        port: int = 8766,
        limits: ServerLimits = ServerLimits(),
        peer_identity: Callable[[bytes], str] | None = None,
        hub_id: str | None = None,
        window: int = 1000,
        outbox_max_bytes: int | None = None,
        handle_renewals: bool = True,
        renewal_days: int = CAR_CERT_DAYS,
        on_renewal: Callable[[RenewalEvent], object] | None = None,
        on_revocation: Callable[[RevocationEvent], object] | None = None,
        crl_watch_s: float | None = None,
        on_dead_letter: Callable[[DeadLetter], object] | None = None,
    ) -> None:
        self._ca = ca
        self._state_dir = state_dir
        self._handler = handler
        self._hosts: tuple[str, ...] = (host,) if isinstance(host, str) else tuple(host)
        if not self._hosts:
            raise ValueError("HubServer needs at least one host to listen on")
        self.port = port
        self.limits = limits
        self._identity = peer_identity or vehicle_id_from_certificate
        self.hub_id: str = hub_id if hub_id is not None else str(ca.hub_id)
        self._window = window
        self._outbox_max = outbox_max_bytes
        self._ssl: ssl.SSLContext | None = None
        self._runner: web.AppRunner | None = None
        self._ledger: InboundLedger | None = None
        self._outboxes: dict[str, Outbox] = {}
        self._outbox_lock = asyncio.Lock()
        self._links: dict[str, _CarLink] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._active = 0
        self._stopping = False
        self._renewals = HubRenewals(ca, days=renewal_days) if handle_renewals else None
        self._on_renewal = on_renewal
        self._on_revocation = on_revocation
        self._crl_watch_s = crl_watch_s
        self._crl_task: asyncio.Task[None] | None = None
        self._revoked: set[int] = set()
        self._on_dead_letter = on_dead_letter
        self._dead_letters: DeadLetterStore | None = None
        self._failures = FailureTracker()
        self._pending: dict[str, int] = {}
        # A second more than the hello wait after the upgrade, so a car that upgraded
        # gets the clear close (1002 "no hello within") and the guard only cuts
        # connections that never even sent their upgrade request.
        self.guard = ConnectionGuard(limits.hello_timeout_s + 1.0)
        """Hello deadlines of connections past their handshake (``waiting``, ``expired``)."""
        self.duplicates = 0
        """Resent messages dropped as duplicates so far (over all cars and links)."""

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Build the TLS context (executor: file I/O), open the ledger, start listening.

        Listens on every host given (``host`` may be one address or several,
        e.g. ``("0.0.0.0", "::")``), all on the same port. On failure (port in
        use on any of them, an address family the machine lacks, bad
        certificates) everything opened so far is closed again before the
        error propagates.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._ssl = await loop.run_in_executor(None, self._ca.server_ssl_context)
        self._revoked = await loop.run_in_executor(None, self._revoked_serials)
        self._ledger = InboundLedger(self._state_dir / "ledger.db")
        await self._ledger.open()
        self._dead_letters = DeadLetterStore(self.dead_letters_path)
        await self._dead_letters.open()
        app = web.Application()
        app.router.add_get(WS_PATH, self._ws_handler)
        app.router.add_get("/", self._ws_handler)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        for host in self._hosts:
            # One site per host, all on one port: the first binds it (port 0: a
            # free one), the others follow. asyncio sets IPV6_V6ONLY on IPv6
            # sockets, so "0.0.0.0" and "::" can be listened on side by side.
            site = GuardedSite(
                self._runner,
                host,
                self.port,
                ssl_context=self._ssl,
                guard=self.guard,
                handshake_timeout_s=self.limits.tls_handshake_timeout_s,
            )
            await site.start()
            server = site.server
            if self.port == 0 and isinstance(server, asyncio.Server) and server.sockets:
                self.port = int(server.sockets[0].getsockname()[1])
        self._stopping = False
        if self._crl_watch_s is not None and self._crl_watch_s > 0:
            self._crl_task = asyncio.create_task(self._watch_crl(self._crl_watch_s))
        _LOGGER.info(
            "hub %s listening on %s port %d", self.hub_id, ", ".join(self._hosts), self.port
        )

    @property
    def hosts(self) -> tuple[str, ...]:
        """The addresses the listener binds (all of them, on ``port``)."""
        return self._hosts

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The listener's TLS server context (CRL reloaded in place); None until started."""
        return self._ssl

    async def stop(self) -> None:
        """Close every car's link (1001), stop listening, flush and close storage."""
        self._stopping = True
        if self._crl_task is not None:
            self._crl_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._crl_task
            self._crl_task = None
        for link in list(self._links.values()):
            await link.session.close(CLOSE_SHUTDOWN, "hub is shutting down")
        for link in list(self._links.values()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.done.wait(), timeout=5.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for outbox in self._outboxes.values():
            await outbox.close()
        self._outboxes.clear()
        if self._ledger is not None:
            await self._ledger.close()
            self._ledger = None
        if self._dead_letters is not None:
            await self._dead_letters.close()
            self._dead_letters = None

    def waiting_for_hello(self, vehicle_id: str) -> int:
        """Connections of this car's certificate that hold a slot and have not said hello."""
        return self._pending.get(vehicle_id, 0)

    @property
    def dead_letters_path(self) -> Path:
        """Where messages given up on are kept (``bridge.deadletter.read_dead_letters``)."""
        return self._state_dir / "dead-letters.db"

    async def dead_letters(self, vehicle_id: str | None = None) -> list[DeadLetter]:
        """Messages given up on (of one car, or all), oldest first, with their payload."""
        if self._dead_letters is None:
            raise BridgeError("the hub is not running")
        return await self._dead_letters.letters(vehicle_id)

    async def reload_crl(self) -> None:
        """Make new handshakes see the CA's current revocation list (after a revoke)."""
        if self._ssl is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._ca.reload_crl, self._ssl)

    async def revoke(
        self, vehicle_id_or_serial: str, *, reason: str = "certificate revoked"
    ) -> list[RevocationEvent]:
        """Revoke a car (every certificate of a vehicle id, or one hex serial) and enforce it.

        Revokes in the CA, reloads the CRL into the running TLS context (the
        car's next handshake fails) and closes the car's live link with 4003
        and ``reason``. Raises ``CertificateError`` for an unknown id or
        serial. Returns what was found revoked (also passed to ``on_revocation``).
        """
        await asyncio.get_running_loop().run_in_executor(
            None, self._ca.revoke, vehicle_id_or_serial
        )
        return await self.refresh_revocations(reason=reason)

    async def refresh_revocations(
        self, *, reason: str = "certificate revoked"
    ) -> list[RevocationEvent]:
        """Apply the CA's current revocations: reload the CRL, close revoked cars' links.

        For revocations made elsewhere (``carhub-bridge revoke``, another
        ``HomeCA`` object). Returns one event per vehicle with newly revoked
        certificates or a link that was closed.
        """
        loop = asyncio.get_running_loop()
        if self._ssl is not None:
            try:
                await self.reload_crl()
            except CertificateError as err:
                # Live links are still closed and new ones refused by the revocation
                # check after the handshake (_is_revoked reads issued.json).
                _LOGGER.error("cannot reload the CRL: %s", err)
        records = await loop.run_in_executor(None, self._ca.issued_certificates)
        revoked = {r.serial: r.vehicle_id for r in records if r.revoked_at is not None}
        new: dict[str, list[int]] = {}
        for serial, vehicle_id in revoked.items():
            if serial not in self._revoked:
                new.setdefault(vehicle_id, []).append(serial)
        # No await between updating the set and listing the links: a car that
        # registers its link after this sees the serial in _revoked.
        self._revoked = set(revoked)
        doomed = [
            vid
            for vid, link in self._links.items()
            if link.peer.serial is not None and link.peer.serial in revoked
        ]
        for vid in doomed:
            _LOGGER.warning("closing the link of %s: %s", vid, reason)
            await self.disconnect(vid, reason)
        events = [
            RevocationEvent(
                vehicle_id=vid,
                serials=tuple(sorted(new.get(vid, []))),
                disconnected=vid in doomed,
            )
            for vid in sorted(set(new) | set(doomed))
        ]
        for event in events:
            await self._emit(self._on_revocation, event)
        return events

    # -- queries and commands ---------------------------------------------------

    def connected(self, vehicle_id: str) -> bool:
        """True while the car has an established link."""
        return vehicle_id in self._links

    def round_trip_ms(self, vehicle_id: str) -> float | None:
        """Last measured ping round trip to the car, in milliseconds."""
        link = self._links.get(vehicle_id)
        return link.session.rtt_ms if link is not None else None

    async def send(self, vehicle_id: str, type: MessageType, body: dict[str, Any]) -> int:
        """Queue a durable message for a car (delivered now or after it reconnects); its seq.

        notify and command bodies must carry ``expires_at``: the car drops them
        after that time. Raises ``ProtocolError`` for an invalid body and
        ``OutboxError`` if the per-car outbox cannot store it.
        """
        outbox = await self._outbox(vehicle_id)
        seq = await outbox.append(type, body)
        link = self._links.get(vehicle_id)
        if link is not None:
            link.session.wake()
        return seq

    async def disconnect(
        self, vehicle_id: str, reason: str, *, retry_after: float | None = None
    ) -> None:
        """Close a car's link with a reason.

        Without ``retry_after`` the close code is 4003 (refused / revoked by the
        home): the car retries only rarely (its maximum backoff), and not at
        all once its certificate is revoked. With ``retry_after`` (seconds) it
        is 4005, "temporarily unavailable": the reason starts with
        ``retry_after=<seconds>;`` and the car comes back after about that
        long (see ``CarLink``).
        """
        link = self._links.get(vehicle_id)
        if link is not None:
            if retry_after is None:
                await link.session.close(CLOSE_UNAUTHORIZED, reason)
            else:
                await link.session.close(CLOSE_RETRY_SOON, retry_reason(reason, retry_after))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.done.wait(), timeout=5.0)

    # -- internals ---------------------------------------------------------------------

    async def _outbox(self, vehicle_id: str) -> Outbox:
        async with self._outbox_lock:
            outbox = self._outboxes.get(vehicle_id)
            if outbox is None:
                kwargs: dict[str, Any] = {"max_message_bytes": self.limits.max_message_bytes}
                if self._outbox_max is not None:
                    kwargs["max_bytes"] = self._outbox_max
                outbox = Outbox(self._state_dir / "cars" / vehicle_id / "outbox.db", **kwargs)
                await outbox.open()
                self._outboxes[vehicle_id] = outbox
            return outbox

    async def _emit(self, hook: Callable[[Any], object] | None, event: object) -> None:
        if hook is None:
            return
        try:
            result = hook(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            _LOGGER.exception("hook %r failed on %r", hook, event)

    def _revoked_serials(self) -> set[int]:
        return {r.serial for r in self._ca.issued_certificates() if r.revoked_at is not None}

    def _crl_signature(self) -> tuple[int, int, int] | None:
        try:
            st = self._ca.crl_path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    async def _watch_crl(self, interval_s: float) -> None:
        """Apply revocations made by other processes when ``crl.pem`` changes."""
        loop = asyncio.get_running_loop()
        seen = await loop.run_in_executor(None, self._crl_signature)
        while True:
            await asyncio.sleep(interval_s)
            now = await loop.run_in_executor(None, self._crl_signature)
            if now == seen:
                continue
            seen = now
            _LOGGER.info("%s changed: applying revocations", self._ca.crl_path)
            try:
                await self.refresh_revocations()
            except (BridgeError, OSError) as err:
                _LOGGER.error("cannot apply the new CRL: %s", err)

    async def _handle_renewal(self, peer: PeerInfo, env: Envelope) -> None:
        assert self._renewals is not None
        body, event = await asyncio.get_running_loop().run_in_executor(
            None,
            self._renewals.handle,
            peer.vehicle_id,
            env.body,
            peer.certificate_expiry,
            peer.serial,
        )
        await self.send(peer.vehicle_id, MessageType.RENEW_RESPONSE, body)
        await self._emit(self._on_renewal, event)

    async def _dead_letter(self, peer: PeerInfo, env: Envelope, reason: str, attempts: int) -> None:
        """Store a message given up on (durably), log it, tell the application."""
        assert self._dead_letters is not None
        letter = await self._dead_letters.add(
            peer=peer.vehicle_id,
            stream=env.stream,
            seq=env.seq,
            type_=str(env.type),
            ts=env.ts,
            body=env.body,
            reason=reason,
            attempts=attempts,
        )
        _LOGGER.error(
            "dead letter: %s seq %d from %s failed %d times (%s); stored in %s and acked",
            env.type,
            env.seq,
            peer.vehicle_id,
            attempts,
            reason,
            self.dead_letters_path,
        )
        await self._emit(self._on_dead_letter, letter)

    def _peer_vehicle_id(self, request: web.Request) -> tuple[str, int, dt.datetime | None] | None:
        transport = request.transport
        ssl_obj = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
        return self._identify(der)

    def _identify(self, der: bytes | None) -> tuple[str, int, dt.datetime | None] | None:
        if not der:
            return None
        try:
            vehicle_id = self._identity(der)
        except (BridgeError, ValueError) as err:
            _LOGGER.warning("refusing a peer certificate: %s", err)
            return None
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return None
        return vehicle_id, cert.serial_number, cert.not_valid_after_utc

    async def _is_revoked(self, serial: int) -> bool:
        check = getattr(self._ca, "is_revoked", None)
        if check is None:
            return False
        try:
            return bool(await asyncio.get_running_loop().run_in_executor(None, check, serial))
        except CertificateError as err:
            _LOGGER.error("cannot check revocation, refusing the car: %s", err)
            return True  # fail closed

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ident = self._peer_vehicle_id(request)
        if ident is None:
            raise web.HTTPForbidden(text="a valid car certificate is required\n")
        vehicle_id, serial, expiry = ident
        if await self._is_revoked(serial):
            _LOGGER.warning("refusing %s: certificate %x is revoked", vehicle_id, serial)
            raise web.HTTPForbidden(text="certificate revoked\n")
        peer = PeerInfo(
            vehicle_id=vehicle_id,
            remote=str(request.remote or "?"),
            serial=serial,
            certificate_expiry=expiry,
        )
        ws = web.WebSocketResponse(
            max_msg_size=self.limits.max_message_bytes, autoping=True, compress=True, timeout=5.0
        )
        await ws.prepare(request)
        transport = request.transport
        await self._serve_accepted(peer, ws, on_hello=lambda: self.guard.greeted(transport))
        return ws

    async def serve_channel(
        self,
        channel: MessageChannel,
        *,
        peer_certificate: bytes,
        remote: str,
        transport: str = "tunnel",
    ) -> bool:
        """Run a car's link over a channel whose TLS handshake verified ``peer_certificate``.

        For transports other than this listener (``bridge.tunnel``): the same
        vehicle-id and revocation checks, limits, hello and session as a
        direct connection. Returns False (channel closed with 4003) when the
        certificate names no valid vehicle or is revoked; True once a link
        was served (however it ended).
        """
        ident = self._identify(peer_certificate)
        if ident is None:
            await channel.close(
                code=CLOSE_UNAUTHORIZED, message=b"a valid car certificate is required"
            )
            return False
        vehicle_id, serial, expiry = ident
        if await self._is_revoked(serial):
            _LOGGER.warning("refusing %s: certificate %x is revoked", vehicle_id, serial)
            await channel.close(code=CLOSE_UNAUTHORIZED, message=b"certificate revoked")
            return False
        peer = PeerInfo(
            vehicle_id=vehicle_id,
            remote=remote,
            serial=serial,
            certificate_expiry=expiry,
            transport=transport,
        )
        await self._serve_accepted(peer, channel)
        return True

    async def _serve_accepted(
        self, peer: PeerInfo, ws: MessageChannel, *, on_hello: Callable[[], None] | None = None
    ) -> None:
        """Limits, then hello and the session, over an authenticated channel.

        ``on_hello`` tells the direct listener's connection guard that the car
        greeted in time (the tunnel has its own handshake deadline).
        """
        vehicle_id = peer.vehicle_id
        limits = self.limits
        replacing = vehicle_id in self._links
        if self._stopping:
            await ws.close(code=CLOSE_SHUTDOWN, message=b"hub is shutting down")
            return
        pending = self._pending.get(vehicle_id, 0)
        if pending >= limits.max_pending_per_car:
            # One certificate cannot crowd out the others with half-open links.
            _LOGGER.warning("refusing %s: %d connections waiting for hello", vehicle_id, pending)
            await ws.close(
                code=CLOSE_TRY_LATER,
                message=f"too many connections of this car before hello "
                f"(limit {limits.max_pending_per_car})".encode(),
            )
            return
        if not replacing and self._active >= limits.max_connections:
            _LOGGER.warning("refusing %s: %d connections already", vehicle_id, self._active)
            await ws.close(
                code=CLOSE_TRY_LATER,
                message=f"too many connections (limit {limits.max_connections})".encode(),
            )
            return
        self._active += 1
        self._pending[vehicle_id] = pending + 1
        waiting = True

        def said_hello() -> None:
            nonlocal waiting
            if waiting:
                waiting = False
                if on_hello is not None:
                    on_hello()
                self._not_pending(vehicle_id)

        try:
            await self._serve_car(peer, ws, said_hello)
        except (ConnectionError, OSError, BridgeError) as err:
            # Lost during hello, or storage trouble on this side: end this link only.
            _LOGGER.warning("link with %s failed: %r", vehicle_id, err)
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close(code=CLOSE_INTERNAL, message=b"hub error")
        finally:
            self._active -= 1
            if waiting:
                self._not_pending(vehicle_id)

    def _not_pending(self, vehicle_id: str) -> None:
        """A connection of the car said hello or ended before: one fewer waiting."""
        left = self._pending.get(vehicle_id, 0) - 1
        if left > 0:
            self._pending[vehicle_id] = left
        else:
            self._pending.pop(vehicle_id, None)

    async def _read_hello(self, ws: MessageChannel, peer: PeerInfo) -> Envelope | None:
        try:
            msg = await ws.receive(timeout=self.limits.hello_timeout_s)
        except TimeoutError:
            reason = f"no hello within {self.limits.hello_timeout_s:g} s"
            await ws.close(code=CLOSE_PROTOCOL, message=reason.encode())
            return None
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        try:
            env = decode(msg.data, max_size=self.limits.max_message_bytes)
        except ProtocolError as err:
            await ws.close(code=CLOSE_PROTOCOL, message=f"bad hello: {err}".encode()[:123])
            return None
        if env.type != MessageType.HELLO:
            await ws.close(code=CLOSE_PROTOCOL, message=f"expected hello, got {env.type}".encode())
            return None
        return env

    async def _serve_car(
        self, peer: PeerInfo, ws: MessageChannel, said_hello: Callable[[], None]
    ) -> None:
        assert self._ledger is not None
        hello = await self._read_hello(ws, peer)
        if hello is None:
            return
        said_hello()
        theirs = hello.body["protocols"]
        version = negotiate_version(SUPPORTED_VERSIONS, theirs)
        if version is None:
            reason = (
                f"incompatible protocol: car speaks {theirs}, hub speaks {list(SUPPORTED_VERSIONS)}"
            )
            _LOGGER.warning("%s: %s", peer.vehicle_id, reason)
            await ws.close(code=CLOSE_INCOMPATIBLE, message=reason.encode()[:123])
            return
        old = self._links.get(peer.vehicle_id)
        if old is not None:
            _LOGGER.info("%s connected again: replacing its previous link", peer.vehicle_id)
            await old.session.close(CLOSE_REPLACED, "replaced by a newer connection of this car")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(old.done.wait(), timeout=5.0)
        outbox = await self._outbox(peer.vehicle_id)
        car_stream = hello.body.get("stream_id")
        if isinstance(car_stream, str):
            # A new stream id: the car lost its outbox and numbers from 1 again.
            await self._ledger.observe_stream(peer.vehicle_id, car_stream)
        car_acked = hello.body.get("acked_seq")
        acked_stream = hello.body.get("acked_stream")
        if isinstance(acked_stream, str) and acked_stream != outbox.stream_id:
            # The car's acked_seq counts an earlier outbox of this hub (its state
            # was lost): it says nothing about this one's messages.
            _LOGGER.warning(
                "%s acked seq %s of an earlier hub stream %s (now %s): ignoring it",
                peer.vehicle_id,
                car_acked,
                acked_stream,
                outbox.stream_id,
            )
            car_acked = 0
        start_after = max(outbox.acked_seq, car_acked if isinstance(car_acked, int) else 0)
        if start_after > outbox.acked_seq:
            if start_after > outbox.last_seq:
                await outbox.rebase(start_after)
            outbox.ack_nowait(start_after)
        limits = self.limits
        reply = make_control(
            MessageType.HELLO,
            {
                "protocols": list(SUPPORTED_VERSIONS),
                "hub_id": self.hub_id,
                "acked_seq": self._ledger.last(peer.vehicle_id),
                "stream_id": outbox.stream_id,
                "limits": {k: v for k, v in asdict(limits).items() if k not in _HUB_ONLY_LIMITS},
            },
            v=version,
        )
        await ws.send_bytes(encode(reply))
        bucket = self._buckets.get(peer.vehicle_id)
        if bucket is None:
            bucket = TokenBucket(limits.max_msgs_per_s, limits.burst)
            self._buckets[peer.vehicle_id] = bucket

        async def deliver(env: Envelope) -> None:
            if env.type == MessageType.RENEW_REQUEST and self._renewals is not None:
                await self._handle_renewal(peer, env)
                return
            await self._handler.on_message(peer, env)

        async def dead_letter(env: Envelope, reason: str, attempts: int) -> None:
            await self._dead_letter(peer, env, reason, attempts)

        session = LinkSession(
            ws=ws,
            name=f"car {peer.vehicle_id}",
            version=version,
            outbox=outbox,
            ledger=self._ledger,
            ledger_peer=peer.vehicle_id,
            deliver=deliver,
            start_after=start_after,
            window=self._window,
            max_message_bytes=limits.max_message_bytes,
            heartbeat_s=limits.heartbeat_s,
            dead_after_s=limits.dead_after_s,
            inbound_limit=bucket,
            refuse_types=HOME_ONLY_TYPES,
            dead_letter=dead_letter,
            failures=self._failures,
            max_attempts=limits.max_delivery_attempts,
        )
        link = _CarLink(peer, ws, session)
        if peer.serial is not None and peer.serial in self._revoked:
            # Revoked while this car was saying hello (see refresh_revocations).
            await ws.close(code=CLOSE_UNAUTHORIZED, message=b"certificate revoked")
            return
        self._links[peer.vehicle_id] = link
        started = time.monotonic()
        try:
            try:
                await self._handler.on_connect(peer, hello)
            except Exception:
                _LOGGER.exception("on_connect failed for %s", peer.vehicle_id)
            _LOGGER.info(
                "%s connected from %s (protocol %d)", peer.vehicle_id, peer.remote, version
            )
            await session.run()
        finally:
            if self._links.get(peer.vehicle_id) is link:
                del self._links[peer.vehicle_id]
            self.duplicates += session.duplicates
            _LOGGER.info(
                "%s disconnected after %.1f s: %s",
                peer.vehicle_id,
                time.monotonic() - started,
                session.close_reason,
            )
            try:
                await self._handler.on_disconnect(peer)
            except Exception:
                _LOGGER.exception("on_disconnect failed for %s", peer.vehicle_id)
            finally:
                # Set last: a replacing link waits for this before its on_connect.
                link.done.set()
