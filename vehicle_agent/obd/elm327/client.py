"""OBD-II through an ELM327 dongle (or a clone, or WiCAN in ELM327 mode), under asyncio.

The AT layer is written here rather than taken from python-OBD: python-OBD is
synchronous (pyserial calls that block, a polling thread for async use), opens
serial ports only, decodes PIDs its own way, and knows neither low-power mode
nor a dongle that comes back. This client speaks the AT command set over an
asyncio transport (:mod:`.wire`: pyserial-asyncio-fast or TCP) and reuses the
project's PID and DTC decoding (:class:`~vehicle_agent.obd.queries.ObdQueries`),
so the poller and the run loop treat it exactly like the CAN client.

Set-up after every (re)connect: ``ATZ`` (reset; the banner gives the version),
``ATE0`` echo off, ``ATL0`` linefeeds off, ``ATS0`` spaces off, ``ATH1``
headers on (to tell ECUs apart), ``ATAT1`` adaptive timing, ``ATSP0`` protocol
auto-detect; ``ATDPN`` reports the protocol once the first request found it.
A clone that answers ``?`` to one of them (many "v1.5" clones lack commands) is
noted in :attr:`Elm327Client.missing_commands` and used without it.

A dongle that vanishes (unplugged, Bluetooth out of range, Wi-Fi dropped) or
stops answering (no prompt within the timeout) fails the request in flight with
:class:`ObdTransportError`; the next request reconnects, no sooner than the
back-off allows (1 s, doubling to 30 s), and until then fails at once without
touching the link. Nothing here raises anything but :class:`ObdError`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass

from vehicle_agent.obd.dtc import decode_dtc
from vehicle_agent.obd.elm327.answers import (
    ElmStatus,
    ParsedAnswer,
    is_can,
    legacy_dtc_codes,
    parse_answer,
    split_lines,
    status_of,
)
from vehicle_agent.obd.elm327.wire import (
    DEFAULT_BAUDRATE,
    ElmTarget,
    ElmWire,
    open_wire,
    parse_target,
)
from vehicle_agent.obd.errors import (
    ObdError,
    ObdResponseError,
    ObdTimeoutError,
    ObdTransportError,
    negative_response_error,
)
from vehicle_agent.obd.queries import ObdQueries, ObdStats

_LOGGER = logging.getLogger(__name__)

SETUP_COMMANDS = ("ATE0", "ATL0", "ATS0", "ATH1", "ATAT1", "ATSP0")
"""Sent after ``ATZ`` on every (re)connect, in this order."""
PRIMARY_HEADERS = ("7E8", "18DAF110")
"""The engine ECU's answer header on 11-bit and 29-bit CAN."""
NRC_RESPONSE_PENDING = 0x78
DTC_SERVICES = frozenset({0x03, 0x07, 0x0A})
_VOLTAGE = re.compile(r"(\d+(?:\.\d+)?)V?$")
_RETRIED = frozenset({ElmStatus.STOPPED, ElmStatus.BUFFER_FULL, ElmStatus.DATA_ERROR})


@dataclass(frozen=True, slots=True, kw_only=True)
class ElmOptions:
    """Knobs of :class:`Elm327Client` (defaults suit real dongles)."""

    baudrate: int = DEFAULT_BAUDRATE
    """Serial speed (ignored for TCP and by Bluetooth rfcomm)."""
    request_timeout_s: float = 5.0
    """Wait for the prompt after an OBD request."""
    search_timeout_s: float = 20.0
    """Wait after the dongle said ``SEARCHING...`` (trying protocols one by one)."""
    command_timeout_s: float = 2.0
    """Wait for the prompt after an AT command."""
    reset_timeout_s: float = 5.0
    """Wait for the prompt after ``ATZ``."""
    connect_timeout_s: float = 5.0
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    low_power: bool = True
    """Send ``ATLP`` when the car goes off (dongles that have it draw micro-amps then)."""


class Elm327Client(ObdQueries):
    """An ELM327 dongle as an OBD-II client; see the module docs.

    Use as ``async with Elm327Client("/dev/ttyUSB0") as obd: ...`` or call
    :meth:`start` (raises :class:`ObdTransportError` if the dongle is not
    there; requests retry later anyway) and :meth:`close`.
    """

    def __init__(self, target: ElmTarget | str, *, options: ElmOptions | None = None) -> None:
        self.target = parse_target(target) if isinstance(target, str) else target
        self.options = options or ElmOptions()
        self.stats = ObdStats()
        self.version: str | None = None
        """The dongle's ``ATI`` answer, e.g. ``ELM327 v1.5``."""
        self.protocol: str | None = None
        """The ``ATDPN`` answer once a protocol was found, e.g. ``A6`` (auto, CAN 11/500)."""
        self.missing_commands: set[str] = set()
        """AT commands the dongle answered ``?`` to."""
        self.connects = 0
        """Successful connect + set-up sequences (1 + reconnects)."""
        self.sleeps = 0
        """Times the dongle was put into low-power mode."""
        self.asleep = False
        self._wire: ElmWire | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._retry_at = 0.0
        self._backoff = self.options.initial_backoff_s

    @property
    def running(self) -> bool:
        """True while a link to the dongle is open and set up."""
        return self._wire is not None and not self._wire.lost

    async def start(self) -> None:
        """Connect and set the dongle up now (raises :class:`ObdTransportError` if absent)."""
        self._closed = False
        async with self._lock:
            await self._ensure_ready()

    async def close(self) -> None:
        """Close the link; later requests fail until :meth:`start` is called again."""
        async with self._lock:
            self._closed = True
            self._drop()

    # -- link management ------------------------------------------------------

    def _drop(self) -> None:
        if self._wire is not None:
            self._wire.close()
        self._wire = None
        self.asleep = False

    async def _ensure_ready(self) -> ElmWire:
        if self._closed:
            raise ObdTransportError("the ELM327 client is closed")
        wire = self._wire
        if wire is not None and not wire.lost:
            if self.asleep:
                await self._wake(wire)
            return wire
        if wire is not None:
            _LOGGER.warning("ELM327 at %s went away; reconnecting", self.target)
            self._drop()
        now = time.monotonic()
        if now < self._retry_at:
            raise ObdTransportError(
                f"ELM327 at {self.target} unreachable; next try in {self._retry_at - now:.1f} s"
            )
        try:
            wire = await open_wire(
                self.target,
                baudrate=self.options.baudrate,
                timeout_s=self.options.connect_timeout_s,
            )
            self._wire = wire
            await self._set_up(wire)
        except ObdError as err:
            self._drop()
            self.stats.bump("transport_errors")
            self._retry_at = time.monotonic() + self._backoff
            _LOGGER.warning("ELM327 at %s: %s; retrying in %.1f s", self.target, err, self._backoff)
            self._backoff = min(self._backoff * 2, self.options.max_backoff_s)
            raise ObdTransportError(f"ELM327 at {self.target}: {err}") from err
        self._backoff = self.options.initial_backoff_s
        self.connects += 1
        _LOGGER.info(
            "ELM327 at %s ready: %s%s",
            self.target,
            self.version or "unknown version",
            f" (lacks {', '.join(sorted(self.missing_commands))})" if self.missing_commands else "",
        )
        return wire

    async def _set_up(self, wire: ElmWire) -> None:
        wire.discard_input()
        banner = await self._exchange(wire, "ATZ", self.options.reset_timeout_s)
        self.version = next(
            (line for line in reversed(split_lines(banner)) if line.startswith("ELM")), None
        )
        for command in SETUP_COMMANDS:
            await self._setting(wire, command)
        # split_lines drops spaces, which the version string keeps ("ELM327 v1.5").
        text = (await self._at(wire, "ATI")).replace("\x00", "").replace("\n", "\r")
        answer = [line.strip() for line in text.split("\r") if line.strip() not in ("", "ATI")]
        if answer and status_of(answer[-1].upper().replace(" ", "")) in (None, ElmStatus.RESET):
            self.version = answer[-1]
        self.protocol = None
        self.asleep = False

    async def _setting(self, wire: ElmWire, command: str) -> None:
        lines = split_lines(await self._at(wire, command))
        if any(status_of(line) is ElmStatus.UNKNOWN_COMMAND for line in lines):
            if command not in self.missing_commands:
                _LOGGER.info("ELM327 at %s does not know %s (a clone?)", self.target, command)
            self.missing_commands.add(command)

    async def _wake(self, wire: ElmWire) -> None:
        # Any byte wakes a sleeping ELM327, which then restarts: set it up again.
        _LOGGER.info("waking the ELM327 at %s from low-power mode", self.target)
        wire.discard_input()
        wire.write(b"ATI\r")
        try:
            await wire.read_until_prompt(self.options.command_timeout_s)
        except ObdResponseError:
            pass
        except ObdTransportError:
            if wire.lost:
                self._drop()
                raise
        self.asleep = False
        try:
            await self._set_up(wire)
        except ObdError:
            self._drop()
            raise

    async def _exchange(
        self, wire: ElmWire, command: str, timeout_s: float, searching_s: float = 0.0
    ) -> str:
        stale = wire.discard_input()
        if stale.strip(b"\r\n\x00 >"):
            self.stats.bump("junk_responses")
            _LOGGER.debug("dropping unasked bytes from the ELM327: %r", stale[:80])
        try:
            wire.write(command.encode("ascii") + b"\r")
            return await wire.read_until_prompt(timeout_s, searching_s=searching_s)
        except ObdTransportError:
            self.stats.bump("transport_errors")
            self._drop()
            raise
        except ObdResponseError:
            self.stats.bump("junk_responses")
            raise

    async def _at(self, wire: ElmWire, command: str) -> str:
        return await self._exchange(wire, command, self.options.command_timeout_s)

    # -- requests -------------------------------------------------------------

    async def request(self, payload: bytes, *, echo: int | None = None) -> bytes:
        """One request; the engine ECU's answer (or the only ECU that answered)."""
        answers = await self._ask(payload, echo)
        for header in PRIMARY_HEADERS:
            if header in answers:
                return answers[header]
        legacy_engine = [h for h in answers if len(h) == 6 and h[4:] == "10"]
        return answers[legacy_engine[0] if legacy_engine else next(iter(answers))]

    async def request_each(self, payload: bytes, *, echo: int | None = None) -> list[bytes]:
        """One request; the positive answers of every ECU that answered."""
        return list((await self._ask(payload, echo)).values())

    async def _ask(self, payload: bytes, echo: int | None) -> dict[str, bytes]:
        if not payload or len(payload) > 7:
            raise ValueError("an OBD request is 1 to 7 bytes")
        command = payload.hex().upper()
        async with self._lock:
            for attempt in range(2):
                wire = await self._ensure_ready()
                self.stats.bump("requests")
                text = await self._exchange(
                    wire, command, self.options.request_timeout_s, self.options.search_timeout_s
                )
                if self.protocol is None:
                    await self._learn_protocol(wire, text, command)
                parsed = parse_answer(text, self.protocol or "6", sent=command)
                if parsed.junk:
                    self.stats.bump("junk_responses")
                    _LOGGER.debug("ELM327 junk for %s: %s", command, parsed.junk[:5])
                answers = self._positive(parsed, payload, echo)
                if answers:
                    self.stats.bump("responses")
                    return answers
                if attempt == 0 and any(s in _RETRIED for s in parsed.statuses):
                    continue
                raise self._failure(parsed, command)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _learn_protocol(self, wire: ElmWire, text: str, command: str) -> None:
        lines = [line for line in split_lines(text) if line != command]
        if not any(status_of(line) is None and not line.startswith("SEARCHING") for line in lines):
            return  # nothing answered: no protocol found yet
        answer = [line for line in split_lines(await self._at(wire, "ATDPN")) if line != "ATDPN"]
        number = answer[-1] if answer else ""
        if number and number.removeprefix("A") not in ("", "0") and status_of(number) is None:
            self.protocol = number
            _LOGGER.info("ELM327 at %s talks OBD protocol %s", self.target, number)

    def _positive(self, parsed: ParsedAnswer, payload: bytes, echo: int | None) -> dict[str, bytes]:
        service = payload[0]
        answers: dict[str, bytes] = {}
        negative: tuple[int, int] | None = None
        for header, message in parsed.payloads.items():
            if len(message) >= 3 and message[0] == 0x7F and message[1] == service:
                if message[2] != NRC_RESPONSE_PENDING:
                    negative = (service, message[2])
                continue
            if message[:1] != bytes([service + 0x40]) or (
                echo is not None and message[1:2] != bytes([echo])
            ):
                self.stats.bump("junk_responses")
                _LOGGER.debug(
                    "ignoring %s from %s: does not answer %s", message.hex(), header, payload.hex()
                )
                continue
            if service in DTC_SERVICES and self.protocol and not is_can(self.protocol):
                # Legacy protocols carry no count byte: build the CAN form.
                codes = legacy_dtc_codes(parsed.frames[header])
                message = bytes([service + 0x40, len(codes)]) + b"".join(codes)
            answers[header] = message
        if not answers and negative is not None:
            self.stats.bump("negative_responses")
            raise negative_response_error(*negative)
        return answers

    def _failure(self, parsed: ParsedAnswer, command: str) -> ObdError:
        statuses = parsed.statuses
        if ElmStatus.RESET in statuses:
            # The dongle restarted under us (brown-out, LV RESET): set it up again.
            self.stats.bump("transport_errors")
            self._drop()
            return ObdTransportError(f"ELM327 restarted while answering {command}")
        if not statuses:
            self.stats.bump("junk_responses")
            return ObdResponseError(f"no usable answer to {command}: {parsed.junk[:3]}")
        status = statuses[0]
        if status in (ElmStatus.NO_DATA, ElmStatus.UNABLE_TO_CONNECT, ElmStatus.BUS_ERROR):
            # No ECU answered: the car sleeps or the bus is down. Timeouts make
            # the poller back off, which is what a silent car needs.
            self.stats.bump("timeouts")
            return ObdTimeoutError(f"{status.value} for {command}")
        self.stats.bump("junk_responses")
        return ObdResponseError(f"ELM327 said {status.value!r} to {command}")

    def parse_dtcs(self, answer: bytes) -> list[str]:
        """Codes in a mode 03/07/0A answer, with or without the ISO 15765-4 count byte.

        The ELM327 shows the exact ISO-TP length, so the parity tells: service
        byte + count + pairs is even in total; some ECUs (and the emulator)
        leave the count out, as legacy protocols do, which makes it odd.
        """
        body = answer[1:]
        if len(body) % 2:
            return super().parse_dtcs(answer)
        pairs = [body[i : i + 2] for i in range(0, len(body), 2)]
        return [decode_dtc(a, b) for a, b in pairs if a or b]

    # -- power ----------------------------------------------------------------

    async def enter_low_power(self) -> None:
        """Send ``ATLP`` (the car went off); the next request wakes the dongle and sets it up.

        Skipped for dongles without it (``?``: noted in :attr:`missing_commands`),
        when disabled in the options, or when no link is open.
        """
        if not self.options.low_power or "ATLP" in self.missing_commands:
            return
        async with self._lock:
            wire = self._wire
            if wire is None or wire.lost or self.asleep:
                return
            try:
                lines = split_lines(await self._at(wire, "ATLP"))
            except ObdError as err:
                _LOGGER.debug("ATLP failed: %s", err)
                return
            if any(status_of(line) is ElmStatus.UNKNOWN_COMMAND for line in lines):
                self.missing_commands.add("ATLP")
                _LOGGER.info("ELM327 at %s has no low-power mode (ATLP)", self.target)
                return
            self.asleep = True
            self.sleeps += 1
            _LOGGER.info("ELM327 at %s in low-power mode", self.target)

    async def read_adapter_voltage(self) -> float | None:
        """``ATRV``: the 12 V the dongle measures on OBD pin 16; no ECU is asked.

        None when the dongle lacks ``ATRV`` or prints something that is not a
        voltage. Transport errors propagate as :class:`ObdError`.
        """
        if "ATRV" in self.missing_commands:
            return None
        async with self._lock:
            wire = await self._ensure_ready()
            lines = [line for line in split_lines(await self._at(wire, "ATRV")) if line != "ATRV"]
        if any(status_of(line) is ElmStatus.UNKNOWN_COMMAND for line in lines):
            self.missing_commands.add("ATRV")
            return None
        match = _VOLTAGE.match(lines[-1]) if lines else None
        return float(match.group(1)) if match else None
