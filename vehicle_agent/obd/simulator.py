"""A simulated engine ECU on a python-can bus, answering OBD-II like a real one.

Used by the tests and the demo. It listens on the functional ID 0x7DF (single
frames, as real functional requests are) and on its physical ID 0x7E0 (through
an ISO-TP stack), and answers from 0x7E8 with ISO-TP, so long answers (VIN,
DTC lists) go out as first frame + consecutive frames after the tester's flow
control. It answers:

* mode 01: supported-PID bitmaps built from the configured PIDs, PID 0x01 from
  the DTC list, configured PID values; ``7F 01 31`` for PIDs it lacks;
* modes 03 / 07 / 0A: stored, pending and permanent DTCs;
* mode 04: clears stored and pending DTCs (permanent ones stay, as on a car);
* mode 09: PID 00 bitmap, PID 02 VIN, PID 0A ECU name;
* any other service: ``7F <sid> 11`` (service not supported).

Knobs for tests: ``silent_pids`` (never answered: timeouts), ``junk`` (a raw
answer to send instead of the right one), ``pending_responses`` (send NRC 0x78
"response pending" first), ``powered`` (False = asleep, answers nothing).
Every request it receives is recorded in :attr:`SimulatedEcu.requests`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

import can
import isotp

from vehicle_agent.obd.dtc import encode_dtc
from vehicle_agent.obd.pids import (
    SUPPORTED_PID_BLOCKS,
    encode_monitor_status,
    encode_supported_bitmap,
    get_pid,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_VIN = "1CARHUB0XPS000006"
"""A fictional VIN whose check digit (position 9, 'X') is valid."""

DEFAULT_PIDS: Mapping[int, float] = {
    0x04: 23.5,  # engine load, percent
    0x05: 88,  # coolant, celsius
    0x0C: 780.0,  # rpm
    0x0D: 0,  # speed, km/h
    0x0F: 31,  # intake air, celsius
    0x2F: 62.7,  # fuel level, percent
    0x42: 14.1,  # control module voltage, V
    0x46: 18,  # ambient air, celsius
    0x5B: 57.3,  # hybrid battery pack remaining life, percent
    0xA6: 48213.4,  # odometer, km
}
"""Values of a warm hybrid idling (physical units); what the demo ECU answers."""


def encode_pid_value(pid: int, value: float | bytes) -> bytes:
    """Data bytes for ``pid`` from a physical value (or raw bytes passed through)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if pid == 0x0C:  # rpm: quarter-rpm steps, decoded by a custom decoder
        return max(0, min(0xFFFF, round(value * 4))).to_bytes(2, "big")
    return get_pid(pid).encode(value)


class SimulatedEcu:
    """ECU #1 (engine) on ``bus``; start with :meth:`start` or ``with``.

    The bus belongs to the caller and must be a separate bus instance from the
    tester's (python-can's virtual bus does not echo a sender's own frames).
    """

    def __init__(
        self,
        bus: can.BusABC,
        *,
        pids: Mapping[int, float | bytes] | None = None,
        vin: str = DEFAULT_VIN,
        ecu_name: str = "ECM-EngineControl",
        stored_dtcs: Iterable[str] = (),
        pending_dtcs: Iterable[str] = (),
        permanent_dtcs: Iterable[str] = (),
        mil_on: bool | None = None,
        request_id: int = 0x7E0,
        response_id: int = 0x7E8,
        functional_id: int = 0x7DF,
        silent_pids: Iterable[int] = (),
        junk: Mapping[bytes, bytes] | None = None,
        pending_responses: int = 0,
    ) -> None:
        self._bus = bus
        initial = DEFAULT_PIDS if pids is None else pids
        self.values: dict[int, bytes] = {
            pid: encode_pid_value(pid, v) for pid, v in initial.items()
        }
        self.vin = vin
        self.ecu_name = ecu_name
        self.stored_dtcs: list[str] = list(stored_dtcs)
        self.pending_dtcs: list[str] = list(pending_dtcs)
        self.permanent_dtcs: list[str] = list(permanent_dtcs)
        self.mil_on = mil_on
        """MIL state; ``None`` means "on when stored DTCs exist"."""
        self.silent_pids = set(silent_pids)
        self.junk: dict[bytes, bytes] = dict(junk or {})
        self.pending_responses = pending_responses
        self.powered = True
        """False: the ECU sleeps and answers nothing."""
        self.requests: list[bytes] = []
        """Every request payload received, in order."""
        self.clear_count = 0
        self._request_id = request_id
        self._response_id = response_id
        self._functional_id = functional_id
        self._inbox: queue.Queue[bytes] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._notifier: can.Notifier | None = None
        self._stack: Any = None

    def set_pid(self, pid: int, value: float | bytes) -> None:
        """Set the value a PID answers with (physical units or raw data bytes)."""
        self.values[pid] = encode_pid_value(pid, value)

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start listening and answering."""
        if self._stack is not None:
            return
        self._stop.clear()
        self._notifier = can.Notifier(self._bus, [self._on_frame], timeout=0.1)
        address = isotp.Address(
            isotp.AddressingMode.Normal_11bits, txid=self._response_id, rxid=self._request_id
        )
        params = {"tx_padding": 0xAA, "blocksize": 0, "stmin": 0}
        self._stack = isotp.NotifierBasedCanStack(
            self._bus, self._notifier, address=address, params=params
        )
        self._stack.start()
        self._threads = [
            threading.Thread(target=self._relay_physical, name="ecu-sim-rx", daemon=True),
            threading.Thread(target=self._serve, name="ecu-sim", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop answering and release the notifier (the bus stays open)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(2.0)
        self._threads = []
        if self._stack is not None:
            self._stack.stop()
            self._stack = None
        if self._notifier is not None:
            self._notifier.stop()
            self._notifier = None

    # -- receiving ------------------------------------------------------------

    def _on_frame(self, msg: can.Message) -> None:
        # Functional requests: single frames on 0x7DF (PCI 0x0N, N = length).
        if msg.arbitration_id != self._functional_id or msg.is_extended_id or not msg.data:
            return
        pci = msg.data[0]
        if pci >> 4 == 0 and 0 < pci <= min(7, len(msg.data) - 1):
            self._inbox.put(bytes(msg.data[1 : 1 + pci]))

    def _relay_physical(self) -> None:
        while not self._stop.is_set():
            stack = self._stack
            data = stack.recv(block=True, timeout=0.05) if stack is not None else None
            if data:
                self._inbox.put(bytes(data))

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                request = self._inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                self._handle(request)
            except Exception:  # a simulator bug must not kill the test bus silently
                _LOGGER.exception("simulated ECU failed on request %s", request.hex())

    # -- answering ------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        if self._stack is not None:
            self._stack.send(payload)

    def _handle(self, request: bytes) -> None:
        self.requests.append(request)
        if not self.powered:
            return
        if request in self.junk:
            self._send(self.junk[request])
            return
        response = self._answer(request)
        if response is None:
            return
        for _ in range(self.pending_responses):
            self._send(bytes([0x7F, request[0], 0x78]))
        self._send(response)

    def _answer(self, request: bytes) -> bytes | None:
        service = request[0]
        if service == 0x01 and len(request) >= 2:
            return self._mode01(request[1:])
        if service in (0x03, 0x07, 0x0A) and len(request) == 1:
            codes = {0x03: self.stored_dtcs, 0x07: self.pending_dtcs, 0x0A: self.permanent_dtcs}[
                service
            ]
            return bytes([service + 0x40, len(codes)]) + b"".join(encode_dtc(c) for c in codes)
        if service == 0x04 and len(request) == 1:
            self.stored_dtcs.clear()
            self.pending_dtcs.clear()
            self.mil_on = None
            self.clear_count += 1
            return b"\x44"
        if service == 0x09 and len(request) == 2:
            return self._mode09(request[1])
        if service in (0x01, 0x03, 0x04, 0x07, 0x09, 0x0A):
            return bytes([0x7F, service, 0x13])  # wrong length for a service we know
        return bytes([0x7F, service, 0x11])

    def supported_pids(self) -> set[int]:
        """Mode 01 PIDs this ECU answers (block PIDs included)."""
        supported = set(self.values) | {0x01}
        top = max(supported)
        supported |= {b for b in SUPPORTED_PID_BLOCKS[1:] if top > b}
        return supported

    def _mode01(self, pids: bytes) -> bytes | None:
        supported = self.supported_pids()
        out = bytearray([0x41])
        for pid in pids[:6]:
            if pid in self.silent_pids:
                continue
            if pid in SUPPORTED_PID_BLOCKS:
                if pid == 0 or pid in supported:
                    out += bytes([pid]) + encode_supported_bitmap(pid, supported)
            elif pid == 0x01:
                mil = bool(self.stored_dtcs) if self.mil_on is None else self.mil_on
                out += bytes([pid]) + encode_monitor_status(mil, len(self.stored_dtcs))
            elif pid in self.values:
                out += bytes([pid]) + self.values[pid]
        if len(out) > 1:
            return bytes(out)
        if all(pid in self.silent_pids for pid in pids[:6]):
            return None
        return bytes([0x7F, 0x01, 0x31])

    def _mode09(self, pid: int) -> bytes:
        if pid == 0x00:
            return b"\x49\x00" + encode_supported_bitmap(0x00, {0x02, 0x0A})
        if pid == 0x02:
            return b"\x49\x02\x01" + self.vin.encode("ascii")
        if pid == 0x0A:
            return b"\x49\x0a\x01" + self.ecu_name.encode("ascii")[:20].ljust(20, b"\x00")
        return bytes([0x7F, 0x09, 0x31])
