"""Pairing a car with a home: SPAKE2 over a one-time code, then a CSR is signed.

The car (``PairingServer``) shows a one-time code of 8 digits and listens on
its pairing port; the home (``pair_with_car``) connects with the code the
owner typed. The exchange, in length-prefixed frames (4-byte big-endian
length, at most ``MAX_FRAME_BYTES``):

1. home -> car ``{"type": "pake", "version": 1, "msg": b64}`` (SPAKE2 side A)
2. car -> home ``{"type": "pake", "msg": b64}`` (side B, fresh randomness)
3. home -> car ``{"type": "confirm", "mac": b64}``: HMAC of the transcript
   under a key HKDF derives from the SPAKE2 key; the car checks it and
   answers ``{"type": "error", "code": "bad_code"}`` when it is wrong
4. car -> home ``{"type": "confirm", "mac": b64}``: the car proves the code too
5. from here every frame is AES-256-GCM under per-direction keys with the
   frame counter as nonce (so frames cannot be replayed, reordered or dropped
   unnoticed): home sends ``hub`` (hub id, LAN URLs, external URL, CA
   certificate); car sends ``csr`` (its CSR and vehicle info); home sends
   ``certificate`` (signed by ``HomeCA.sign_car_csr``); car answers ``done``
   after checking and storing it.

Why this is safe with a short code: SPAKE2 lets an eavesdropper learn nothing
about the code and an active attacker test one guess per connection, so the
car bounds the guesses: the window closes after ``window_s`` (15 minutes) or
``max_attempts`` (20) failed attempts, attempts are handled one at a time,
and each failure is followed by an exponentially growing delay. Both sides
pick fresh SPAKE2 secrets per session, so a recorded session replayed to the
car fails at key confirmation. The car's private key never leaves the car:
only the CSR is sent.

Error frames outside the encrypted channel only say ``closed``, ``busy``,
``bad_code`` or ``protocol``; nothing secret is ever sent in the clear.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import struct
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from spake2 import SPAKE2_A, SPAKE2_B

from bridge.addresses import check_url as check_address
from bridge.errors import (
    CertificateError,
    PairingClosedError,
    PairingCodeError,
    PairingError,
    ProtocolError,
)
from bridge.pki import CarIdentity, HomeCA, is_valid_vehicle_id

__all__ = [
    "CODE_DIGITS",
    "DEFAULT_PAIRING_PORT",
    "MAX_FRAME_BYTES",
    "HubInfo",
    "PairingResult",
    "PairingServer",
    "VehicleInfo",
    "generate_pairing_code",
    "normalize_code",
    "pair_with_car",
]

_LOGGER = logging.getLogger(__name__)

PAIRING_VERSION = 1
DEFAULT_PAIRING_PORT = 8767
CODE_DIGITS = 8
MAX_CODE_DIGITS = 16
MAX_FRAME_BYTES = 64 * 1024
DEFAULT_WINDOW_S = 900.0
DEFAULT_MAX_ATTEMPTS = 20

_ID_HOME = b"carhub-home"
_ID_CAR = b"carhub-car"
_LABEL = b"carhub-pairing-v1"
_AAD = b"carhub-pairing-v1 channel"
_MAX_SPAKE_MSG = 256
_SPAKE_MSG_LEN = 33  # side byte + Ed25519 element
_MAX_CONNECTIONS = 8
_MAX_URLS = 16
_MAX_TEXT = 64
_URL_SCHEMES = frozenset({"wss", "https"})


# -- public models --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class VehicleInfo:
    """What the car tells the home about itself during pairing."""

    vehicle_id: str
    vin: str
    make: str
    model: str
    agent_version: str


@dataclass(frozen=True, kw_only=True)
class HubInfo:
    """What the home tells the car: its id and the URLs the car should dial."""

    hub_id: str
    lan_urls: list[str]
    external_url: str | None
    remote_urls: list[str] = field(default_factory=list)
    """Home Assistant's own addresses from outside, for the tunnel (``bridge.tunnel``)."""


@dataclass(frozen=True, kw_only=True)
class PairingResult:
    """The home side's result: the car it paired and the certificate it issued."""

    vehicle: VehicleInfo
    certificate_pem: bytes


def generate_pairing_code() -> str:
    """A fresh one-time code of ``CODE_DIGITS`` decimal digits from ``secrets``."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def normalize_code(code: str) -> str:
    """Strip the spaces and dashes people type; ``PairingCodeError`` if not 8-16 digits."""
    cleaned = code.replace(" ", "").replace("-", "")
    if not (CODE_DIGITS <= len(cleaned) <= MAX_CODE_DIGITS) or not cleaned.isascii():
        raise PairingCodeError(f"a pairing code has {CODE_DIGITS} or more digits")
    if not cleaned.isdigit():
        raise PairingCodeError("a pairing code has digits only")
    return cleaned


# -- framing --------------------------------------------------------------------------


class _ErrorCode(StrEnum):
    CLOSED = "closed"
    BUSY = "busy"
    BAD_CODE = "bad_code"
    PROTOCOL = "protocol"
    REJECTED = "rejected"


async def _read_frame(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    try:
        async with asyncio.timeout(timeout_s):
            header = await reader.readexactly(4)
            (length,) = struct.unpack(">I", header)
            if length == 0 or length > MAX_FRAME_BYTES:
                raise PairingError(f"bad pairing frame length {length}")
            return await reader.readexactly(length)
    except asyncio.IncompleteReadError as err:
        raise PairingError("the peer closed the pairing connection") from err
    except TimeoutError as err:
        raise PairingError("the peer did not answer in time") from err


async def _write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    if len(payload) > MAX_FRAME_BYTES:
        raise PairingError("pairing frame too large")
    writer.write(struct.pack(">I", len(payload)) + payload)
    await writer.drain()


def _decode_json(payload: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise PairingError("malformed pairing frame") from err
    if not isinstance(obj, dict):
        raise PairingError("a pairing frame must be a JSON object")
    return obj


def _encode_json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


async def _read_json(reader: asyncio.StreamReader, timeout_s: float) -> dict[str, Any]:
    return _decode_json(await _read_frame(reader, timeout_s))


async def _write_json(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
    await _write_frame(writer, _encode_json(obj))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, *, max_len: int = _MAX_SPAKE_MSG) -> bytes:
    if not isinstance(value, str) or len(value) > max_len * 2:
        raise PairingError("malformed pairing frame")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise PairingError("malformed pairing frame") from err


def _text(obj: dict[str, Any], key: str, *, max_len: int = _MAX_TEXT) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or len(value) > max_len or not value.isprintable():
        raise PairingError(f"pairing field {key!r} must be printable text of <= {max_len} chars")
    return value


def _pem(obj: dict[str, Any], key: str) -> bytes:
    value = obj.get(key)
    if (
        not isinstance(value, str)
        or len(value) > MAX_FRAME_BYTES // 2
        or not value.isascii()
        or not value.startswith("-----BEGIN ")
    ):
        raise PairingError(f"pairing field {key!r} must be a PEM block")
    return value.encode("ascii")


def _error_for(frame: dict[str, Any]) -> PairingError:
    code = frame.get("code")
    message = frame.get("message")
    detail = message if isinstance(message, str) and message.isprintable() else ""
    if code == _ErrorCode.CLOSED:
        return PairingClosedError(detail or "the car's pairing window is closed")
    if code == _ErrorCode.BAD_CODE:
        return PairingCodeError(detail or "wrong pairing code")
    if code == _ErrorCode.BUSY:
        return PairingError(detail or "the car is busy with another pairing attempt")
    return PairingError(f"the peer refused: {detail or code!r}")


def _expect(frame: dict[str, Any], kind: str) -> dict[str, Any]:
    if frame.get("type") == "error":
        raise _error_for(frame)
    if frame.get("type") != kind:
        raise PairingError(f"expected a {kind!r} pairing frame")
    return frame


# -- keys and the encrypted channel ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Keys:
    transcript: bytes
    home_confirm: bytes
    car_confirm: bytes
    home_to_car: bytes
    car_to_home: bytes

    def home_mac(self) -> bytes:
        return hmac.digest(self.home_confirm, b"home" + self.transcript, "sha256")

    def car_mac(self) -> bytes:
        return hmac.digest(self.car_confirm, b"car" + self.transcript, "sha256")


def _derive_keys(shared: bytes, msg_home: bytes, msg_car: bytes) -> _Keys:
    transcript = hashlib.sha256(
        _LABEL
        + struct.pack(">H", len(msg_home))
        + msg_home
        + struct.pack(">H", len(msg_car))
        + msg_car
    ).digest()
    okm = HKDF(
        algorithm=hashes.SHA256(), length=32 * 4, salt=transcript, info=_LABEL + b" keys"
    ).derive(shared)
    return _Keys(transcript, okm[0:32], okm[32:64], okm[64:96], okm[96:128])


class _Channel:
    """AES-256-GCM over frames; the per-direction frame counter is the nonce."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        send_key: bytes,
        recv_key: bytes,
        timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._send = AESGCM(send_key)
        self._recv = AESGCM(recv_key)
        self._send_n = 0
        self._recv_n = 0
        self._timeout = timeout

    async def send(self, obj: dict[str, Any]) -> None:
        nonce = self._send_n.to_bytes(12, "big")
        self._send_n += 1
        await _write_frame(self._writer, self._send.encrypt(nonce, _encode_json(obj), _AAD))

    async def recv(self) -> dict[str, Any]:
        payload = await _read_frame(self._reader, self._timeout)
        nonce = self._recv_n.to_bytes(12, "big")
        self._recv_n += 1
        try:
            plain = self._recv.decrypt(nonce, payload, _AAD)
        except InvalidTag as err:
            raise PairingError("a pairing frame failed authentication") from err
        return _decode_json(plain)

    async def send_error(self, code: _ErrorCode, message: str) -> None:
        with contextlib.suppress(PairingError, OSError):
            await self.send({"type": "error", "code": code.value, "message": message})


async def _send_clear_error(writer: asyncio.StreamWriter, code: _ErrorCode, message: str) -> None:
    with contextlib.suppress(PairingError, OSError):
        await _write_json(writer, {"type": "error", "code": code.value, "message": message})


def _spake_finish(spake: Any, msg: bytes) -> bytes:  # noqa: ANN401  (spake2 is untyped)
    # spake2 raises SPAKEError subclasses, ValueError or a bare Exception
    # subclass (NotOnCurve) for a message that is not a valid group element;
    # all mean "bad peer message".
    if len(msg) != _SPAKE_MSG_LEN:
        raise PairingError("bad SPAKE2 message length")
    try:
        key: bytes = spake.finish(msg)
    except Exception as err:
        raise PairingError("bad SPAKE2 message") from err
    return key


# -- validation of what the peer sends ------------------------------------------------------


def _check_url(value: object) -> str:
    """A direct hub URL: a valid address (``bridge.addresses.check_url``) that is wss/https."""
    try:
        url = check_address(value)
    except ProtocolError as err:
        raise PairingError(str(err)) from err
    if urlsplit(url).scheme not in _URL_SCHEMES:
        raise PairingError(f"hub URLs must be wss:// or https:// with a host: {url!r}")
    return url


def _parse_hub(frame: dict[str, Any]) -> tuple[HubInfo, bytes]:
    hub_id = _text(frame, "hub_id")
    if not is_valid_vehicle_id(hub_id):  # same safe alphabet: it names a directory
        raise PairingError(f"not a valid hub id: {hub_id!r}")
    urls = frame.get("lan_urls")
    if not isinstance(urls, list) or len(urls) > _MAX_URLS:
        raise PairingError(f"lan_urls must be a list of at most {_MAX_URLS} URLs")
    external = frame.get("external_url")
    remote = frame.get("remote_urls", [])
    if not isinstance(remote, list) or len(remote) > _MAX_URLS:
        raise PairingError(f"remote_urls must be a list of at most {_MAX_URLS} URLs")
    try:
        remote_urls = [check_address(u) for u in remote]
    except ProtocolError as err:
        raise PairingError(str(err)) from err
    hub = HubInfo(
        hub_id=hub_id,
        lan_urls=[_check_url(u) for u in urls],
        external_url=None if external is None else _check_url(external),
        remote_urls=remote_urls,
    )
    if not hub.lan_urls and hub.external_url is None:
        raise PairingError("the hub sent no URL to connect to")
    ca_pem = _pem(frame, "ca_pem")
    try:
        x509.load_pem_x509_certificate(ca_pem)
    except ValueError as err:
        raise PairingError("the hub sent an unreadable CA certificate") from err
    return hub, ca_pem


def _parse_vehicle(obj: object) -> VehicleInfo:
    if not isinstance(obj, dict):
        raise PairingError("vehicle info must be an object")
    vehicle = VehicleInfo(
        vehicle_id=_text(obj, "vehicle_id"),
        vin=_text(obj, "vin", max_len=32),
        make=_text(obj, "make"),
        model=_text(obj, "model"),
        agent_version=_text(obj, "agent_version", max_len=32),
    )
    if not is_valid_vehicle_id(vehicle.vehicle_id):
        raise PairingError(f"not a valid vehicle id: {vehicle.vehicle_id!r}")
    return vehicle


# -- car side ---------------------------------------------------------------------------------


class _State(StrEnum):
    NEW = "new"
    OPEN = "open"
    PAIRED = "paired"
    EXPIRED = "expired"
    LOCKED = "locked"
    CLOSED = "closed"


class PairingServer:
    """The car's pairing endpoint: one window, one code, at most one successful pairing.

    ``identity_factory(hub)`` is called (in an executor: it writes the new
    key) once the home has proven the code, to make the ``CarIdentity`` for
    that home; the car's ``HomeRegistry`` provides one. ``wait_paired()``
    returns the home's ``HubInfo`` after the certificate is stored, or raises
    ``PairingClosedError`` when the window expires or the failed attempts are
    exhausted. Failed attempts are handled one at a time, each followed by a
    delay of ``failure_delay_s * 2**(n-1)`` (capped at ``max_failure_delay_s``)
    before the next attempt is served.
    """

    def __init__(
        self,
        *,
        vehicle: VehicleInfo,
        identity_factory: Callable[[HubInfo], CarIdentity],
        code: str | None = None,
        host: str = "0.0.0.0",  # noqa: S104  (the home dials the car over the LAN)
        port: int = 0,
        window_s: float = DEFAULT_WINDOW_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        failure_delay_s: float = 0.5,
        max_failure_delay_s: float = 30.0,
        io_timeout_s: float = 10.0,
    ) -> None:
        """Prepare the server; nothing listens before ``start()``."""
        if not is_valid_vehicle_id(vehicle.vehicle_id):
            raise PairingError(f"not a valid vehicle id: {vehicle.vehicle_id!r}")
        self.vehicle = vehicle
        self.code: str = normalize_code(code) if code is not None else generate_pairing_code()
        self.port: int = port
        self._identity_factory = identity_factory
        self._host = host
        self._window_s = window_s
        self._max_attempts = max_attempts
        self._failure_delay_s = failure_delay_s
        self._max_failure_delay_s = max_failure_delay_s
        self._io_timeout_s = io_timeout_s
        self._state = _State.NEW
        self._failures = 0
        self._lock = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._result: asyncio.Future[HubInfo] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # The penalty sleep; tests swap it to observe the delays.
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def failed_attempts(self) -> int:
        """How many attempts failed key confirmation (or broke off during it)."""
        return self._failures

    @property
    def is_open(self) -> bool:
        """True while the window accepts attempts."""
        return self._state is _State.OPEN

    def _accepting(self) -> bool:
        # A call, not the property: the state changes across awaits.
        return self._state is _State.OPEN

    def failure_delay(self, failures: int) -> float:
        """The delay imposed after the ``failures``-th failed attempt."""
        if failures <= 0:
            return 0.0
        return float(min(self._failure_delay_s * 2 ** (failures - 1), self._max_failure_delay_s))

    async def start(self) -> None:
        """Listen on the pairing port and open the window."""
        if self._state is not _State.NEW:
            raise PairingError("a pairing server starts once")
        loop = asyncio.get_running_loop()
        self._result = loop.create_future()
        self._server = await asyncio.start_server(self._handle, self._host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._state = _State.OPEN
        self._timer = loop.call_later(self._window_s, self._shut, _State.EXPIRED)
        _LOGGER.info("pairing window open on port %d for %.0f s", self.port, self._window_s)

    async def wait_paired(self) -> HubInfo:
        """Wait for a successful pairing; ``PairingClosedError`` if the window closes first."""
        if self._result is None:
            raise PairingError("start() the pairing server first")
        return await asyncio.shield(self._result)

    async def close(self) -> None:
        """Stop listening and drop any connection in progress."""
        self._shut(_State.CLOSED)
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._server.wait_closed()
        self._server = None

    def _shut(self, state: _State) -> None:
        if self._state is _State.NEW or self._state is _State.OPEN:
            self._state = state
        if self._timer is not None:
            self._timer.cancel()
        self._finish_future(state)

    def _finish_future(self, state: _State) -> None:
        if self._result is None or self._result.done():
            return
        reason = {
            _State.EXPIRED: "the pairing window expired",
            _State.LOCKED: "too many wrong pairing codes",
        }.get(state, "the pairing server was closed")
        self._result.set_exception(PairingClosedError(reason))
        # Nobody may be waiting; mark the exception as seen to avoid a warning.
        self._result.exception()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(self._writers) >= _MAX_CONNECTIONS or self._server is None:
            _LOGGER.warning("refusing pairing connection from %s: too many", peer)
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._session(reader, writer)
        except PairingError as err:
            _LOGGER.info("pairing attempt from %s failed: %s", peer, err)
        except (OSError, CertificateError) as err:
            _LOGGER.warning("pairing attempt from %s failed: %s", peer, err)
        except Exception:
            # A bad peer must never take the pairing server down.
            _LOGGER.exception("unexpected error in a pairing attempt from %s", peer)
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await _read_json(reader, self._io_timeout_s)
        if not self._accepting():
            await _send_clear_error(writer, _ErrorCode.CLOSED, "the pairing window is closed")
            return
        try:
            _expect(first, "pake")
            if first.get("version") != PAIRING_VERSION:
                raise PairingError(f"unsupported pairing version {first.get('version')!r}")
            msg_home = _unb64(first.get("msg"))
        except PairingError as err:
            await _send_clear_error(writer, _ErrorCode.PROTOCOL, str(err))
            raise
        try:
            async with asyncio.timeout(self._io_timeout_s):
                await self._lock.acquire()
        except TimeoutError:
            await _send_clear_error(writer, _ErrorCode.BUSY, "another pairing attempt is running")
            return
        try:
            if not self._accepting():
                await _send_clear_error(writer, _ErrorCode.CLOSED, "the pairing window is closed")
                return
            keys = await self._key_exchange(reader, writer, msg_home)
            if keys is None:
                return
            channel = _Channel(
                reader,
                writer,
                send_key=keys.car_to_home,
                recv_key=keys.home_to_car,
                timeout=self._io_timeout_s,
            )
            hub = await self._enroll(channel)
            self._state = _State.PAIRED
            if self._timer is not None:
                self._timer.cancel()
            if self._result is not None and not self._result.done():
                self._result.set_result(hub)
            _LOGGER.info("paired with home %s", hub.hub_id)
        finally:
            self._lock.release()

    async def _key_exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, msg_home: bytes
    ) -> _Keys | None:
        """SPAKE2 + key confirmation; None (failure counted, delayed, reported) if wrong."""
        confirmed = False
        try:
            spake = SPAKE2_B(self.code.encode(), idA=_ID_HOME, idB=_ID_CAR)
            msg_car: bytes = spake.start()
            await _write_json(writer, {"type": "pake", "msg": _b64(msg_car)})
            keys = _derive_keys(_spake_finish(spake, msg_home), msg_home, msg_car)
            frame = _expect(await _read_json(reader, self._io_timeout_s), "confirm")
            mac = _unb64(frame.get("mac"))
            if not hmac.compare_digest(mac, keys.home_mac()):
                _LOGGER.warning("pairing attempt with a wrong code")
                return None
            if not self._accepting():
                await _send_clear_error(writer, _ErrorCode.CLOSED, "the pairing window is closed")
                raise PairingClosedError("the window closed during the attempt")
            confirmed = True
            await _write_json(writer, {"type": "confirm", "mac": _b64(keys.car_mac())})
            return keys
        finally:
            if not confirmed and self._state is _State.OPEN:
                await self._count_failure(writer)

    async def _count_failure(self, writer: asyncio.StreamWriter) -> None:
        self._failures += 1
        left = self._max_attempts - self._failures
        if left <= 0:
            self._shut(_State.LOCKED)
        # The delay runs while the attempt lock is held: guesses stay serial.
        await self._sleep(self.failure_delay(self._failures))
        await _send_clear_error(
            writer, _ErrorCode.BAD_CODE, f"wrong pairing code ({max(left, 0)} attempts left)"
        )

    async def _enroll(self, channel: _Channel) -> HubInfo:
        loop = asyncio.get_running_loop()
        try:
            hub, ca_pem = _parse_hub(_expect(await channel.recv(), "hub"))
        except PairingError as err:
            await channel.send_error(_ErrorCode.PROTOCOL, str(err))
            raise
        identity = await loop.run_in_executor(None, self._identity_factory, hub)
        csr = await loop.run_in_executor(None, identity.csr_pem, self.vehicle.vehicle_id)
        await channel.send(
            {"type": "csr", "csr_pem": csr.decode(), "vehicle": asdict(self.vehicle)}
        )
        frame = _expect(await channel.recv(), "certificate")
        cert_pem = _pem(frame, "certificate_pem")
        try:
            await loop.run_in_executor(None, identity.store_certificate, cert_pem, ca_pem)
        except CertificateError as err:
            await channel.send_error(_ErrorCode.REJECTED, f"certificate rejected: {err}")
            raise PairingError(f"the home's certificate was rejected: {err}") from err
        await channel.send({"type": "done"})
        return hub


# -- home side --------------------------------------------------------------------------------


async def pair_with_car(
    *,
    host: str,
    port: int,
    code: str,
    ca: HomeCA,
    hub: HubInfo,
    timeout: float = 30,  # noqa: ASYNC109  (the contract's name; enforced with asyncio.timeout)
) -> PairingResult:
    """Pair with the car at ``host:port`` using the code it shows (the home side).

    Raises ``PairingCodeError`` for a wrong code (the car's window stays open
    for a retry), ``PairingClosedError`` if the car's window is closed, and
    ``PairingError`` for anything else (unreachable, timeout, bad answer).
    Signing runs in an executor.
    """
    secret = normalize_code(code)
    for url in [*hub.lan_urls, *([hub.external_url] if hub.external_url else [])]:
        _check_url(url)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                return await _home_session(reader, writer, secret, ca, hub, timeout)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except TimeoutError as err:
        raise PairingError(f"pairing with {host}:{port} timed out") from err
    except OSError as err:
        raise PairingError(f"cannot reach the car at {host}:{port}: {err}") from err


async def _home_session(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    code: str,
    ca: HomeCA,
    hub: HubInfo,
    timeout_s: float,
) -> PairingResult:
    spake = SPAKE2_A(code.encode(), idA=_ID_HOME, idB=_ID_CAR)
    msg_home: bytes = spake.start()
    await _write_json(writer, {"type": "pake", "version": PAIRING_VERSION, "msg": _b64(msg_home)})
    msg_car = _unb64(_expect(await _read_json(reader, timeout_s), "pake").get("msg"))
    keys = _derive_keys(_spake_finish(spake, msg_car), msg_home, msg_car)
    await _write_json(writer, {"type": "confirm", "mac": _b64(keys.home_mac())})
    frame = _expect(await _read_json(reader, timeout_s), "confirm")
    if not hmac.compare_digest(_unb64(frame.get("mac")), keys.car_mac()):
        raise PairingCodeError("the car could not prove it knows the code")
    channel = _Channel(
        reader, writer, send_key=keys.home_to_car, recv_key=keys.car_to_home, timeout=timeout_s
    )
    await channel.send(
        {
            "type": "hub",
            "hub_id": hub.hub_id,
            "lan_urls": list(hub.lan_urls),
            "external_url": hub.external_url,
            "remote_urls": list(hub.remote_urls),
            "ca_pem": ca.ca_cert_pem.decode(),
        }
    )
    frame = _expect(await channel.recv(), "csr")
    try:
        vehicle = _parse_vehicle(frame.get("vehicle"))
        csr = _pem(frame, "csr_pem")
    except PairingError as err:
        await channel.send_error(_ErrorCode.PROTOCOL, str(err))
        raise
    loop = asyncio.get_running_loop()
    try:
        cert_pem = await loop.run_in_executor(
            None, partial(ca.sign_car_csr, csr, vehicle_id=vehicle.vehicle_id)
        )
    except CertificateError as err:
        await channel.send_error(_ErrorCode.REJECTED, f"CSR rejected: {err}")
        raise PairingError(f"the car's CSR was rejected: {err}") from err
    await channel.send({"type": "certificate", "certificate_pem": cert_pem.decode()})
    try:
        _expect(await channel.recv(), "done")
    except PairingError:
        # The car did not take the certificate: do not leave it valid.
        serial = x509.load_pem_x509_certificate(cert_pem).serial_number
        with contextlib.suppress(CertificateError):
            await loop.run_in_executor(None, ca.revoke, format(serial, "x"))
        raise
    return PairingResult(vehicle=vehicle, certificate_pem=cert_pem)
