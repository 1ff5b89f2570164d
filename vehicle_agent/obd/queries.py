"""The standard OBD-II questions (modes 01, 03/07/0A, 04, 09), whatever carries them.

:class:`ObdQueries` turns requests and answers (service byte first, as on the
wire) into decoded PIDs, trouble codes and the VIN. A transport subclasses it
and provides :meth:`ObdQueries.request`: ISO-TP on a CAN bus
(:class:`~vehicle_agent.obd.client.ObdClient`) or an ELM327 dongle
(:class:`~vehicle_agent.obd.elm327.Elm327Client`). A transport that hears
several ECUs answer one request overrides :meth:`ObdQueries.request_each`, so
supported PIDs and trouble codes are gathered from all of them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from vehicle_agent.obd.dtc import SERVICE_FOR_KIND, Dtc, DtcKind, make_dtc, parse_dtc_payload
from vehicle_agent.obd.errors import ObdNotSupportedError, ObdResponseError
from vehicle_agent.obd.pids import (
    SUPPORTED_PID_BLOCKS,
    PidSpec,
    Scalar,
    decode_supported_bitmap,
    get_pid,
)

_LOGGER = logging.getLogger(__name__)


@dataclass(slots=True)
class ObdStats:
    """Counters of what happened on the link (read them, do not write)."""

    requests: int = 0
    responses: int = 0
    timeouts: int = 0
    negative_responses: int = 0
    junk_responses: int = 0
    """Responses that did not match the request or were malformed."""
    transport_errors: int = 0
    """Transport failures (ISO-TP errors, a dongle that vanished or stopped answering)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str) -> None:
        """Increment counter ``name`` (thread-safe: the ISO-TP thread calls it too)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def as_dict(self) -> dict[str, int]:
        """Counters as a plain dict."""
        return {
            "requests": self.requests,
            "responses": self.responses,
            "timeouts": self.timeouts,
            "negative_responses": self.negative_responses,
            "junk_responses": self.junk_responses,
            "transport_errors": self.transport_errors,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PidReading:
    """One decoded mode 01 answer."""

    pid: int
    spec: PidSpec
    fields: dict[str, Scalar]
    raw: bytes
    ts: float
    """Unix time the answer arrived."""

    @property
    def value(self) -> Scalar:
        """The PID's main value."""
        return self.fields["value"]


class ObdQueries:
    """Modes 01/03/04/07/09/0A on top of :meth:`request`; see the module docs."""

    stats: ObdStats

    async def request(self, payload: bytes, *, echo: int | None = None) -> bytes:
        """Send one request; return the positive answer (service byte + 0x40 first).

        ``echo``, when given, is the PID the answer's second byte must repeat.
        Raises an :class:`~vehicle_agent.obd.errors.ObdError` subclass.
        """
        raise NotImplementedError

    async def request_each(self, payload: bytes, *, echo: int | None = None) -> list[bytes]:
        """The positive answers of every ECU that answered (one, on a single-ECU link)."""
        return [await self.request(payload, echo=echo)]

    async def start(self) -> None:
        """Open the link (nothing to open here)."""

    async def close(self) -> None:
        """Release the link (nothing to release here)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def enter_low_power(self) -> None:
        """The car went off: let the adapter sleep, if it has such a mode (no-op here)."""

    async def read_adapter_voltage(self) -> float | None:
        """12 V as the adapter itself measures it, without asking any ECU; None if it cannot."""
        return None

    def parse_dtcs(self, answer: bytes) -> list[str]:
        """The codes in one mode 03/07/0A answer (ISO 15765-4: count byte, then pairs)."""
        return parse_dtc_payload(answer[1:])

    # -- mode 01 --------------------------------------------------------------

    async def read_pid(self, pid: int) -> PidReading:
        """Read and decode one mode 01 PID."""
        spec = get_pid(pid)
        response = await self.request(bytes([0x01, pid]), echo=pid)
        data = response[2:]
        try:
            fields = spec.decode(data)
        except ObdResponseError:
            self.stats.bump("junk_responses")
            raise
        return PidReading(pid=pid, spec=spec, fields=fields, raw=data, ts=time.time())

    async def supported_pids(self) -> frozenset[int]:
        """Walk the supported-PID bitmaps (0x00, 0x20, ...) and return every supported PID.

        Block ``n`` is only asked for when block ``n - 0x20`` says it exists, as
        the standard requires. The block PIDs themselves are included. With
        several ECUs answering, a PID any of them supports counts.
        """
        supported: set[int] = set()
        for base in SUPPORTED_PID_BLOCKS:
            if base and base not in supported:
                break
            try:
                answers = await self.request_each(bytes([0x01, base]), echo=base)
            except ObdNotSupportedError:
                break
            for response in answers:
                try:
                    block = decode_supported_bitmap(base, response[2:])
                except ObdResponseError:
                    self.stats.bump("junk_responses")
                    raise
                supported |= block
            if base == 0x00:
                supported.add(0x00)
        return frozenset(supported)

    # -- DTCs -----------------------------------------------------------------

    async def read_dtcs(self, kind: DtcKind = DtcKind.STORED) -> list[Dtc]:
        """Read stored (03), pending (07) or permanent (0A) trouble codes of every ECU."""
        service = SERVICE_FOR_KIND[kind]
        codes: list[str] = []
        for response in await self.request_each(bytes([service])):
            try:
                found = self.parse_dtcs(response)
            except ObdResponseError:
                self.stats.bump("junk_responses")
                raise
            codes += [c for c in found if c not in codes]
        return [make_dtc(code, kind) for code in codes]

    async def read_all_dtcs(self) -> list[Dtc]:
        """Stored, pending and permanent codes; a list the ECU does not support is skipped."""
        result: list[Dtc] = []
        for kind in DtcKind:
            try:
                result += await self.read_dtcs(kind)
            except ObdNotSupportedError:
                _LOGGER.info("ECU does not support %s DTCs", kind)
        return result

    async def clear_dtcs(self) -> None:
        """Mode 04: clear stored and pending DTCs and freeze frames, turn the MIL off.

        This changes the car's state (readiness monitors reset too): call it only
        on an explicit user request. Permanent codes stay until the ECU itself
        sees the fault gone.
        """
        await self.request(b"\x04")

    # -- mode 09 --------------------------------------------------------------

    async def read_vin(self) -> str:
        """Mode 09 PID 02: the 17-character VIN (a multi-frame answer)."""
        response = await self.request(b"\x09\x02", echo=0x02)
        # On CAN the answer is 49 02 01 + 17 characters (01 = one data item);
        # some ECUs pad with leading 00 bytes. Keep the printable characters.
        vin = "".join(chr(b) for b in response[2:] if 0x20 < b < 0x7F)
        if len(vin) != 17:
            self.stats.bump("junk_responses")
            raise ObdResponseError(f"VIN answer does not hold 17 characters: {response.hex()}")
        return vin
