"""An asyncio-friendly OBD-II client over ISO-TP (ISO 15765-4) with can-isotp.

Requests go to the functional (broadcast) ID 0x7DF by default, or to the
engine ECU's physical ID 0x7E0; answers come from 0x7E8. Multi-frame answers
(VIN, long DTC lists) are reassembled by the ``isotp`` stack, which sends the
flow control frames to the physical ID 0x7E0 as ISO 15765-4 requires.

Every query *transmits* on the bus: OBD cannot work listen-only.

can-isotp runs its own threads and offers blocking ``recv``; each request runs
in a worker thread (``asyncio.to_thread``), serialised by a lock so request and
response stay paired. Junk the ECU sends (wrong echo, truncated data, broken
ISO-TP frames) is logged, counted in :class:`ObdStats` and never crashes the
caller: it ends in an :class:`ObdError` subclass for the one request affected.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import can
import isotp

from vehicle_agent.obd.errors import (
    ObdError,
    ObdTimeoutError,
    ObdTransportError,
    negative_response_error,
)
from vehicle_agent.obd.queries import ObdQueries, ObdStats, PidReading

_LOGGER = logging.getLogger(__name__)

FUNCTIONAL_ID = 0x7DF
"""Broadcast request ID every emission-related ECU listens to."""
ENGINE_REQUEST_ID = 0x7E0
"""Physical request ID of ECU #1 (engine); also where our flow control goes."""
ENGINE_RESPONSE_ID = 0x7E8
"""Response ID of ECU #1 (engine)."""

NRC_RESPONSE_PENDING = 0x78
PAD_BYTE = 0x55
"""Padding for request frames: OBD on CAN uses 8-byte frames."""


class ObdClient(ObdQueries):
    """Talks OBD-II to the engine ECU on a python-can bus.

    Use as ``async with ObdClient(bus) as obd: ...`` or call :meth:`start` and
    :meth:`close`. The bus belongs to the caller. A ``can.Notifier`` already
    running on the bus is reused (python-can allows only one per bus);
    otherwise the client creates one and stops it on close.
    """

    def __init__(
        self,
        bus: can.BusABC,
        *,
        notifier: can.Notifier | None = None,
        functional: bool = True,
        functional_id: int = FUNCTIONAL_ID,
        request_id: int = ENGINE_REQUEST_ID,
        response_id: int = ENGINE_RESPONSE_ID,
        timeout_s: float = 1.0,
        pending_timeout_s: float = 5.0,
    ) -> None:
        self._bus = bus
        self._notifier = notifier
        self._own_notifier = False
        self.functional = functional
        """Send requests to the broadcast ID (default) rather than the physical one."""
        self._functional_id = functional_id
        self._request_id = request_id
        self._response_id = response_id
        self.timeout_s = timeout_s
        """How long to wait for an answer (P2 with generous margin)."""
        self.pending_timeout_s = pending_timeout_s
        """Extended wait after the ECU said "response pending" (NRC 0x78)."""
        self.stats = ObdStats()
        self._stack: Any = None
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`close`."""
        return self._stack is not None

    async def start(self) -> None:
        """Start the ISO-TP stack (and a notifier if none runs on the bus)."""
        if self._stack is not None:
            return
        if self._notifier is None:
            existing = can.Notifier.find_instances(self._bus)
            if existing:
                self._notifier = existing[0]
            else:
                self._notifier = can.Notifier(self._bus, [], timeout=0.1)
                self._own_notifier = True
        address = isotp.Address(
            isotp.AddressingMode.Normal_11bits, txid=self._request_id, rxid=self._response_id
        )
        params = {
            "tx_padding": PAD_BYTE,
            "blocksize": 0,  # let the ECU send the whole answer after one flow control
            "stmin": 0,
            "rx_consecutive_frame_timeout": 1000,
            "rx_flowcontrol_timeout": 1000,
            "max_frame_size": 4095,
        }
        stack = isotp.NotifierBasedCanStack(
            self._bus,
            self._notifier,
            address=address,
            params=params,
            error_handler=self._on_isotp_error,
        )
        await asyncio.to_thread(stack.start)
        self._stack = stack

    async def close(self) -> None:
        """Stop the ISO-TP stack and the notifier if this client created it."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await asyncio.to_thread(stack.stop)
        if self._own_notifier and self._notifier is not None:
            await asyncio.to_thread(self._notifier.stop)
            self._notifier = None
            self._own_notifier = False

    def _on_isotp_error(self, error: Exception) -> None:
        # Called from the ISO-TP thread: broken frames from the ECU or the bus.
        self.stats.bump("transport_errors")
        _LOGGER.warning("ISO-TP error: %s: %s", type(error).__name__, error)

    # -- raw requests ---------------------------------------------------------

    async def request(self, payload: bytes, *, echo: int | None = None) -> bytes:
        """Send one request and return the positive response bytes.

        ``payload`` starts with the service byte. The response must start with
        ``service + 0x40``; when ``echo`` is given its second byte must equal it
        (the PID echo of modes 01/09). Raises :class:`ObdTimeoutError`,
        :class:`ObdNegativeResponseError` (or :class:`ObdNotSupportedError`),
        :class:`ObdTransportError`.
        """
        if not payload or len(payload) > 7:
            raise ValueError("an OBD request is 1 to 7 bytes (one CAN frame)")
        async with self._lock:
            return await asyncio.to_thread(self._transact, bytes(payload), echo)

    def _transact(self, payload: bytes, echo: int | None) -> bytes:
        with self._thread_lock:
            stack = self._stack
            if stack is None:
                raise ObdTransportError("OBD client is not started")
            while stack.available():  # a late answer to an earlier request
                stale = stack.recv()
                self.stats.bump("junk_responses")
                _LOGGER.debug("dropping stale response %s", bytes(stale or b"").hex())
            service = payload[0]
            self.stats.bump("requests")
            try:
                if self.functional:
                    # Functional requests are always single frames; send it
                    # ourselves to 0x7DF while the stack (txid 0x7E0) handles
                    # the answer and its flow control.
                    frame = bytes([len(payload)]) + payload
                    frame += bytes([PAD_BYTE]) * (8 - len(frame))
                    self._bus.send(
                        can.Message(
                            arbitration_id=self._functional_id, data=frame, is_extended_id=False
                        )
                    )
                else:
                    stack.send(payload)
            except (can.CanError, RuntimeError, ValueError) as err:
                self.stats.bump("transport_errors")
                raise ObdTransportError(f"cannot send request {payload.hex()}: {err}") from err
            deadline = time.monotonic() + self.timeout_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stats.bump("timeouts")
                    raise ObdTimeoutError(
                        f"no answer to {payload.hex()} within {self.timeout_s:g} s"
                    )
                data = stack.recv(block=True, timeout=min(remaining, 0.5))
                if data is None:
                    continue
                response = bytes(data)
                if len(response) >= 3 and response[0] == 0x7F and response[1] == service:
                    nrc = response[2]
                    if nrc == NRC_RESPONSE_PENDING:
                        deadline = time.monotonic() + self.pending_timeout_s
                        continue
                    self.stats.bump("negative_responses")
                    raise negative_response_error(service, nrc)
                if response[:1] == bytes([service + 0x40]) and (
                    echo is None or response[1:2] == bytes([echo])
                ):
                    self.stats.bump("responses")
                    return response
                self.stats.bump("junk_responses")
                _LOGGER.warning(
                    "ignoring response %s that does not answer %s", response.hex(), payload.hex()
                )


__all__ = [
    "ENGINE_REQUEST_ID",
    "ENGINE_RESPONSE_ID",
    "FUNCTIONAL_ID",
    "ObdClient",
    "ObdError",
    "ObdStats",
    "PidReading",
]
