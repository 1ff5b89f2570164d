"""The link through a web server: mutual TLS 1.3 inside a WebSocket's binary frames.

Home Assistant is reachable from outside at the address its phone app uses
(Home Assistant Cloud, a reverse proxy, a tunnel), and those usually end TLS
before Home Assistant, so the car's client certificate never arrives there.
This module runs the bridge's own mutual TLS 1.3 end to end *inside* a
WebSocket (``ssl.SSLObject`` over ``ssl.MemoryBIO``): every outer binary frame
carries TLS records, nothing else. The hub side uses the direct listener's own
server context (same CA, same CRL check at every handshake) and the vehicle id
comes from the verified certificate, so the bridge's rules hold whatever
carries the bytes; a proxy sees only ciphertext, and a proxy that alters a
byte breaks the TLS record check and with it the link.

Inside the TLS stream each message is framed as ``kind (1 byte) | length (4
bytes, big endian) | payload``: kind 0 is a binary message (one protocol
envelope), kind 1 a close (2-byte code + UTF-8 reason). ``TunnelChannel``
presents that as a ``bridge.channel.MessageChannel``, so ``LinkSession`` runs
over it unchanged.

Before the inner handshake succeeds nothing but TLS handshake bytes is
accepted (bounded in bytes, frames and time: ``TunnelLimits``); a failed
handshake is reported to the caller (``on_refused``) so the web server can
count it as a failed login (Home Assistant's IP ban).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
import weakref
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp import WSMessage, WSMsgType, web
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from yarl import URL

from bridge._session import CLOSE_POLICY, CLOSE_PROTOCOL, CLOSE_TOO_BIG, TokenBucket
from bridge.errors import LinkError
from bridge.protocol import MAX_MESSAGE_SIZE

if TYPE_CHECKING:
    from bridge.server import HubServer

__all__ = [
    "PROTOCOL_DEFLATE",
    "PROTOCOL_PLAIN",
    "TUNNEL_PATH",
    "TunnelChannel",
    "TunnelHandshakeError",
    "TunnelLimits",
    "is_tunnel_url",
    "open_tunnel",
    "serve_tunnel",
    "tunnel_url",
]

_LOGGER = logging.getLogger(__name__)

TUNNEL_PATH: Final[str] = "/api/carhub/link"
"""Where Home Assistant's web server takes the tunnel (the integration's view)."""

_HEADER: Final = struct.Struct("!BI")
_KIND_DATA: Final = 0
_KIND_CLOSE: Final = 1
_KIND_DEFLATE: Final = 2
# Outer WebSocket subprotocols: the car offers deflate first; the hub picks it
# when it can. Deflate is raw DEFLATE with context kept across messages (as
# permessage-deflate), applied inside the inner TLS, so it saves mobile data
# whatever the outer path does (ciphertext does not compress).
PROTOCOL_DEFLATE: Final[str] = "carhub-tunnel.deflate"
PROTOCOL_PLAIN: Final[str] = "carhub-tunnel"
_SYNC_TAIL: Final[bytes] = b"\x00\x00\xff\xff"
_CLOSE_CODE: Final = struct.Struct("!H")
# Outer frames carry whole TLS records of one message plus framing: allow the
# largest message, its TLS overhead (about 22 bytes per 16 KiB record) and slack.
_OUTER_SLACK: Final[int] = 64 * 1024
_READ_CHUNK: Final[int] = 64 * 1024
_OUTER_CLOSE_TIMEOUT_S: Final[float] = 2.0


class TunnelHandshakeError(LinkError):
    """The inner TLS handshake failed (certificate, TLS version, garbage, timeout)."""


@dataclass(frozen=True, kw_only=True)
class TunnelLimits:
    """Bounds of a tunnel before and after its inner handshake.

    Before: at most ``handshake_bytes`` in at most ``handshake_frames`` outer
    frames within ``handshake_timeout_s``, and at most ``max_handshakes``
    unauthenticated tunnels at a time per hub. After: outer frames are
    rate-limited (``frames_per_s``, ``frame_burst``) on top of the session's own
    message rate limit; message size is the session's ``max_message_bytes``.
    """

    handshake_timeout_s: float = 10.0
    handshake_bytes: int = 64 * 1024
    handshake_frames: int = 32
    max_handshakes: int = 16
    frames_per_s: float = 4000.0
    frame_burst: int = 8000


def is_tunnel_url(url: str) -> bool:
    """True for an address of the tunnel (its path is ``/api/carhub/link``)."""
    return URL(url).path.rstrip("/") == TUNNEL_PATH


def tunnel_url(base_url: str) -> str:
    """The tunnel's address under a Home Assistant base URL (``https://host[:port]``)."""
    parsed = URL(base_url)
    if parsed.scheme not in ("http", "https", "ws", "wss") or not parsed.host:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    base = str(parsed.with_path("").with_query(None).with_fragment(None)).rstrip("/")
    return base + TUNNEL_PATH


def _outer_ws_url(url: str) -> URL:
    parsed = URL(url)
    scheme = {"https": "wss", "wss": "wss", "http": "ws", "ws": "ws"}.get(parsed.scheme)
    if scheme is None:
        raise LinkError(f"tunnel URL must be http(s):// or ws(s)://: {url!r}")
    return parsed.with_scheme(scheme)


class TunnelChannel:
    """A ``MessageChannel`` over TLS records carried in an outer WebSocket's binary frames.

    Made by ``open_tunnel`` (car) and ``serve_tunnel`` (hub) once the inner
    handshake succeeded; ``peer_certificate`` is the verified peer certificate
    (DER).
    """

    def __init__(
        self,
        carrier: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        tls: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        *,
        max_message_bytes: int = MAX_MESSAGE_SIZE,
        frame_limit: TokenBucket | None = None,
        deflate: bool = False,
    ) -> None:
        self._carrier = carrier
        # Each side compresses what it sends only when deflate was negotiated;
        # it decompresses kind-2 messages only then too.
        self.compressed = deflate
        """True when messages are deflated inside the inner TLS (negotiated)."""
        self._zc = zlib.compressobj(wbits=-15) if deflate else None
        self._zd = zlib.decompressobj(wbits=-15) if deflate else None
        self._tls = tls
        self._in = incoming
        self._out = outgoing
        self._max_bytes = max_message_bytes
        self._frames = frame_limit
        self._plain = bytearray()
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._close_code: int | None = None
        self._error: BaseException | None = None
        self.bytes_in = 0
        """Outer payload bytes received (TLS records), for measurements."""
        self.bytes_out = 0
        """Outer payload bytes sent (TLS records), for measurements."""

    # -- MessageChannel ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once either side closed the tunnel or it broke."""
        return self._closed or self._carrier.closed

    @property
    def close_code(self) -> int | None:
        """The inner close code (or the outer one when the carrier closed first)."""
        return self._close_code if self._close_code is not None else self._carrier.close_code

    def exception(self) -> BaseException | None:
        """What broke the tunnel (a TLS error, a broken limit), if something did."""
        return self._error

    @property
    def peer_certificate(self) -> bytes | None:
        """The verified peer certificate (DER)."""
        return self._tls.getpeercert(binary_form=True)

    async def receive(self, timeout: float | None = None) -> WSMessage:  # noqa: ASYNC109
        """The next inner message (see ``MessageChannel``)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self._next_buffered()
                if message is not None:
                    return message
                if self._closed:
                    return WSMessage(WSMsgType.CLOSED, None, None)
                message = await self._pull()
                if message is not None:
                    return message

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message through the inner TLS."""
        if self._closed:
            raise ConnectionResetError("the tunnel is closed")
        async with self._send_lock:
            if self._zc is not None:
                # Compressed under the lock: the stream's context follows send order.
                packed = self._zc.compress(data) + self._zc.flush(zlib.Z_SYNC_FLUSH)
                packed = packed.removesuffix(_SYNC_TAIL)
                self._tls.write(_HEADER.pack(_KIND_DEFLATE, len(packed)) + packed)
            else:
                self._tls.write(_HEADER.pack(_KIND_DATA, len(data)) + data)
            await self._flush()

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        """Send an inner close (code and reason, confidential), then close the carrier."""
        if self._closed:
            return False
        self._closed = True
        self._close_code = code
        payload = _CLOSE_CODE.pack(code) + message[:123]
        with contextlib.suppress(Exception):
            await self._send_plain(_HEADER.pack(_KIND_CLOSE, len(payload)) + payload)
        await self._close_carrier()
        return True

    # -- internals -----------------------------------------------------------------

    async def _send_plain(self, data: bytes) -> None:
        # One lock around encrypt + send: TLS records must leave in the order
        # they were made, and several tasks send (data, acks, pings, pongs).
        async with self._send_lock:
            self._tls.write(data)
            await self._flush()

    async def _flush(self) -> None:
        pending = self._out.read()
        if pending:
            self.bytes_out += len(pending)
            await self._carrier.send_bytes(pending)

    async def _close_carrier(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._carrier.close(), _OUTER_CLOSE_TIMEOUT_S)

    async def _fail(
        self, code: int, reason: str, error: BaseException, *, tell_peer: bool = True
    ) -> WSMessage:
        """A broken limit or TLS error: close both layers, report an ERROR message.

        The peer is told the code and reason inside the TLS unless the TLS
        itself broke (``tell_peer=False``).
        """
        _LOGGER.warning("tunnel closed (%d): %s", code, reason)
        self._error = error
        if not self._closed:
            self._closed = True
            self._close_code = code
            if tell_peer:
                payload = _CLOSE_CODE.pack(code) + reason.encode()[:123]
                with contextlib.suppress(Exception):
                    await self._send_plain(_HEADER.pack(_KIND_CLOSE, len(payload)) + payload)
            await self._close_carrier()
        return WSMessage(WSMsgType.ERROR, error, None)

    async def _next_buffered(self) -> WSMessage | None:
        """One complete inner message from the decrypted buffer, if there is one."""
        if len(self._plain) < _HEADER.size:
            return None
        kind, length = _HEADER.unpack_from(self._plain)
        if length > self._max_bytes + _CLOSE_CODE.size + 123:
            err = ValueError(f"message of {length} bytes over the {self._max_bytes}-byte limit")
            return await self._fail(CLOSE_TOO_BIG, str(err), err)
        if len(self._plain) < _HEADER.size + length:
            return None
        payload = bytes(self._plain[_HEADER.size : _HEADER.size + length])
        del self._plain[: _HEADER.size + length]
        if kind == _KIND_DATA:
            if length > self._max_bytes:
                err = ValueError(f"message of {length} bytes over the {self._max_bytes}-byte limit")
                return await self._fail(CLOSE_TOO_BIG, str(err), err)
            return WSMessage(WSMsgType.BINARY, payload, None)
        if kind == _KIND_DEFLATE and self._zd is not None:
            try:
                data = self._zd.decompress(payload + _SYNC_TAIL, self._max_bytes + 1)
            except zlib.error as zerr:
                return await self._fail(CLOSE_PROTOCOL, f"bad compressed message: {zerr}", zerr)
            if len(data) > self._max_bytes or self._zd.unconsumed_tail:
                err = ValueError(f"message over the {self._max_bytes}-byte limit (inflated)")
                return await self._fail(CLOSE_TOO_BIG, str(err), err)
            return WSMessage(WSMsgType.BINARY, data, None)
        if kind == _KIND_CLOSE and length >= _CLOSE_CODE.size:
            (code,) = _CLOSE_CODE.unpack_from(payload)
            reason = payload[_CLOSE_CODE.size :].decode("utf-8", "replace")
            if not self._closed:
                self._closed = True
                self._close_code = code
                await self._close_carrier()
            return WSMessage(WSMsgType.CLOSE, code, reason)
        err = ValueError(f"unknown inner frame kind {kind}")
        return await self._fail(CLOSE_PROTOCOL, str(err), err)

    async def _pull(self) -> WSMessage | None:
        """Read one outer frame and decrypt it; a message only when the carrier ends."""
        outer = await self._carrier.receive()
        if outer.type == WSMsgType.BINARY:
            if self._frames is not None and not self._frames.take():
                err = ValueError(f"more than {self._frames.rate:g} tunnel frames/s")
                return await self._fail(CLOSE_POLICY, str(err), err)
            data: bytes = outer.data
            self.bytes_in += len(data)
            self._in.write(data)
            try:
                while True:
                    chunk = self._tls.read(_READ_CHUNK)
                    if not chunk:
                        break
                    self._plain.extend(chunk)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                self._closed = True
            except ssl.SSLError as tls_err:
                # Altered, replayed or injected bytes: the record check fails.
                return await self._fail(
                    CLOSE_PROTOCOL, f"inner TLS error: {tls_err}", tls_err, tell_peer=False
                )
            return None
        if outer.type == WSMsgType.TEXT:
            text_err = ValueError("a text frame in the tunnel")
            return await self._fail(CLOSE_PROTOCOL, str(text_err), text_err)
        if outer.type == WSMsgType.ERROR:
            self._closed = True
            self._error = self._carrier.exception()
            return WSMessage(WSMsgType.ERROR, self._error, None)
        # CLOSE / CLOSING / CLOSED of the carrier without an inner close first.
        self._closed = True
        code = outer.data if isinstance(outer.data, int) else self._carrier.close_code
        return WSMessage(WSMsgType.CLOSE, code, "tunnel carrier closed")


async def _handshake(
    carrier: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    tls: ssl.SSLObject,
    incoming: ssl.MemoryBIO,
    outgoing: ssl.MemoryBIO,
    limits: TunnelLimits,
) -> None:
    """Run the inner TLS handshake over the carrier, within the limits; raise on failure."""
    received = frames = 0
    try:
        async with asyncio.timeout(limits.handshake_timeout_s):
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
                if pending := outgoing.read():
                    await carrier.send_bytes(pending)
                outer = await carrier.receive()
                if outer.type != WSMsgType.BINARY:
                    raise TunnelHandshakeError(
                        f"the tunnel ended during the inner handshake ({outer.type.name})"
                    )
                frames += 1
                received += len(outer.data)
                if frames > limits.handshake_frames or received > limits.handshake_bytes:
                    raise TunnelHandshakeError("too much data for an inner handshake")
                incoming.write(outer.data)
    except TimeoutError as err:
        raise TunnelHandshakeError(
            f"no inner handshake within {limits.handshake_timeout_s:g} s"
        ) from err
    except ssl.SSLError as err:
        # Send the alert (e.g. "certificate required") so the peer learns why.
        with contextlib.suppress(Exception):
            if pending := outgoing.read():
                await carrier.send_bytes(pending)
        raise TunnelHandshakeError(f"inner TLS handshake failed: {err}") from err
    if pending := outgoing.read():
        await carrier.send_bytes(pending)


def _is_server_certificate(der: bytes) -> bool:
    """True if the certificate may act as a TLS server (EKU serverAuth)."""
    try:
        cert = x509.load_der_x509_certificate(der)
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    return ExtendedKeyUsageOID.SERVER_AUTH in usage


async def open_tunnel(
    http: aiohttp.ClientSession,
    url: str,
    inner_ssl: ssl.SSLContext,
    *,
    outer_ssl: ssl.SSLContext | bool = True,
    max_message_bytes: int = MAX_MESSAGE_SIZE,
    limits: TunnelLimits = TunnelLimits(),
    connect_timeout_s: float = 10.0,
    compress: bool = True,
) -> TunnelChannel:
    """Car side: open the outer WebSocket to ``url`` and run the inner TLS client over it.

    ``inner_ssl`` is the car's client context for the home (pinned home CA,
    the car's certificate). The inner handshake authenticates the home by its
    CA and a serverAuth certificate, not by the outer host name (a proxy's
    public name is not in the home's certificate); when the context checks
    host names anyway, the URL's host is used. ``outer_ssl`` verifies the
    proxy's own certificate (default: the system's trust store). ``compress``
    offers deflate inside the inner TLS (used when the hub takes it).
    Raises ``LinkError`` (``TunnelHandshakeError`` for the inner handshake).
    """
    target = _outer_ws_url(url)
    try:
        carrier = await asyncio.wait_for(
            http.ws_connect(
                target,
                ssl=outer_ssl,
                max_msg_size=max_message_bytes + _OUTER_SLACK,
                autoping=True,
                compress=0,  # the outer frames carry ciphertext: deflate there saves nothing
                protocols=(PROTOCOL_DEFLATE, PROTOCOL_PLAIN) if compress else (PROTOCOL_PLAIN,),
                timeout=aiohttp.ClientWSTimeout(ws_close=_OUTER_CLOSE_TIMEOUT_S),
            ),
            connect_timeout_s,
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        raise LinkError(f"cannot open the tunnel to {target}: {err!r}") from err
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    hostname = target.host if inner_ssl.check_hostname else None
    tls = inner_ssl.wrap_bio(incoming, outgoing, server_side=False, server_hostname=hostname)
    try:
        await _handshake(carrier, tls, incoming, outgoing, limits)
        der = tls.getpeercert(binary_form=True)
        if not der or not _is_server_certificate(der):
            raise TunnelHandshakeError("the home's certificate is not a server certificate")
    except BaseException:
        with contextlib.suppress(Exception):
            await carrier.close()
        raise
    return TunnelChannel(
        carrier,
        tls,
        incoming,
        outgoing,
        max_message_bytes=max_message_bytes,
        deflate=carrier.protocol == PROTOCOL_DEFLATE,
    )


class _HandshakeGate:
    """Counts unauthenticated tunnels per hub (``TunnelLimits.max_handshakes``)."""

    def __init__(self) -> None:
        self.active = 0


_GATES: weakref.WeakKeyDictionary[HubServer, _HandshakeGate] = weakref.WeakKeyDictionary()


async def serve_tunnel(
    hub: HubServer,
    request: web.Request,
    *,
    on_refused: Callable[[str], Awaitable[None]] | None = None,
    on_accepted: Callable[[], Awaitable[None]] | None = None,
    limits: TunnelLimits = TunnelLimits(),
) -> web.StreamResponse:
    """Hub side: accept a tunnel WebSocket, run the inner TLS server, then the car's link.

    For a web server's handler (Home Assistant's view): upgrades ``request``,
    runs the inner handshake with the hub's own server context (client
    certificate from the home CA required, CRL checked) and hands the
    channel to ``HubServer.serve_channel`` (vehicle id from the verified
    certificate, revocation, limits, hello, session). ``on_refused(reason)``
    is awaited when the inner handshake or the certificate check fails, so the
    caller can count a failed login; ``on_accepted()`` once the inner
    handshake succeeded (a login that worked). Returns the response to give back.
    """
    context = hub.ssl_context
    if context is None:
        raise web.HTTPServiceUnavailable(text="the CarHub listener is not running\n")
    gate = _GATES.setdefault(hub, _HandshakeGate())
    if gate.active >= limits.max_handshakes:
        raise web.HTTPServiceUnavailable(text="too many tunnel handshakes, try again later\n")
    carrier = web.WebSocketResponse(
        max_msg_size=hub.limits.max_message_bytes + _OUTER_SLACK,
        autoping=True,
        compress=False,
        timeout=_OUTER_CLOSE_TIMEOUT_S,
        protocols=(PROTOCOL_DEFLATE, PROTOCOL_PLAIN),
    )
    gate.active += 1
    try:
        await carrier.prepare(request)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        try:
            await _handshake(carrier, tls, incoming, outgoing, limits)
        except TunnelHandshakeError as err:
            _LOGGER.warning("tunnel from %s refused: %s", request.remote or "?", err)
            await _refuse(carrier, on_refused, str(err))
            return carrier
    finally:
        gate.active -= 1
    channel = TunnelChannel(
        carrier,
        tls,
        incoming,
        outgoing,
        max_message_bytes=hub.limits.max_message_bytes,
        frame_limit=TokenBucket(limits.frames_per_s, limits.frame_burst),
        deflate=carrier.ws_protocol == PROTOCOL_DEFLATE,
    )
    der = channel.peer_certificate or b""
    if on_accepted is not None:
        try:
            await on_accepted()
        except Exception:
            _LOGGER.exception("on_accepted hook failed")
    accepted = await hub.serve_channel(
        channel, peer_certificate=der, remote=str(request.remote or "?"), transport="tunnel"
    )
    if not accepted and on_refused is not None:
        await on_refused("the car's certificate was refused")
    return carrier


async def _refuse(
    carrier: web.WebSocketResponse,
    on_refused: Callable[[str], Awaitable[None]] | None,
    reason: str,
) -> None:
    # Counted before the close, so a client that sees the close finds it counted.
    if on_refused is not None:
        try:
            await on_refused(reason)
        except Exception:
            _LOGGER.exception("on_refused hook failed")
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            carrier.close(code=CLOSE_POLICY, message=b"inner handshake failed"),
            _OUTER_CLOSE_TIMEOUT_S,
        )
