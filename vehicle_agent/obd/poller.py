"""Polls OBD-II PIDs while the car is on and turns the answers into VSS updates.

Which PIDs to poll, how often, and which VSS path each feeds come from the
car profile (``source: {pid: 0x0D, interval: 1.0}`` entries; see
:mod:`vehicle_agent.profile`). The poller first walks the ECU's supported-PID
bitmaps and never asks for a PID the ECU does not list. It pauses whenever the
:class:`~vehicle_agent.obd.power.PowerMonitor` says the car is off (and puts an
adapter that has a low-power mode to sleep) and resumes when it is on again.
The client is any :class:`~vehicle_agent.obd.queries.ObdQueries`: ISO-TP on
CAN or an ELM327 dongle.

Mode 09 PID 02 entries (the VIN) are read once per power-on. Optionally the
stored, pending and permanent DTCs are read every ``dtc_interval_s`` seconds
and published as ``Vehicle.Diagnostics.DTCs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from vehicle_agent.mapper import VssUpdate
from vehicle_agent.obd.errors import (
    ObdError,
    ObdNotSupportedError,
    ObdTimeoutError,
)
from vehicle_agent.obd.pids import PIDS, Scalar
from vehicle_agent.obd.power import PowerMonitor
from vehicle_agent.obd.queries import ObdQueries, PidReading
from vehicle_agent.profile import ObdSource, SignalSpec

_LOGGER = logging.getLogger(__name__)

DTC_PATH = "Vehicle.Diagnostics.DTCs"
VIN_PATH = "Vehicle.VehicleIdentification.VIN"


@dataclass(slots=True)
class PollerStats:
    """What the poller did (for logs and tests)."""

    cycles: int = 0
    readings: int = 0
    errors: int = 0
    timeouts: int = 0
    pauses: int = 0
    """How many times polling stopped because the car went off."""
    resumes: int = 0


def convert_value(spec: SignalSpec, value: Scalar) -> Any:  # noqa: ANN401 - profile-typed
    """Apply a profile entry's map / scale / offset / datatype / precision to a PID value.

    Returns ``None`` when a ``map`` does not cover the value and no ``default``
    is set (the value is dropped).
    """
    result: Any
    if spec.value_map is not None:
        if value in spec.value_map:
            return spec.value_map[value]
        if str(value) in spec.value_map:
            return spec.value_map[str(value)]
        return spec.default
    if isinstance(value, bool) or not isinstance(value, int | float):
        result = value
    else:
        result = value * spec.scale + spec.offset
    if spec.datatype == "int" and isinstance(result, int | float):
        result = round(result)
    elif spec.datatype == "float" and isinstance(result, int | float):
        result = float(result)
    elif spec.datatype == "bool":
        result = bool(result)
    elif spec.datatype == "string":
        result = str(result)
    if spec.precision is not None and isinstance(result, float):
        result = round(result, spec.precision)
    return result


@dataclass(slots=True)
class _Poll:
    pid: int
    interval: float
    specs: list[SignalSpec]
    due: float = 0.0


class ObdPoller:
    """Yields :class:`~vehicle_agent.mapper.VssUpdate` from OBD-II polling; see module docs.

    Iterate :meth:`updates` from one task; call :meth:`stop` to end it.
    """

    def __init__(
        self,
        client: ObdQueries,
        signals: Sequence[SignalSpec],
        *,
        power: PowerMonitor | None = None,
        default_interval_s: float = 1.0,
        dtc_interval_s: float | None = 60.0,
        idle_check_s: float = 1.0,
        max_consecutive_timeouts: int = 3,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        self.client = client
        self.power = power or PowerMonitor()
        self.default_interval_s = default_interval_s
        self.dtc_interval_s = dtc_interval_s
        self.idle_check_s = idle_check_s
        self.max_consecutive_timeouts = max_consecutive_timeouts
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats = PollerStats()
        self.polling = False
        """True while the car is on and PIDs are being polled."""
        self.supported: frozenset[int] | None = None
        """PIDs the ECU reported supported (``None`` until first asked)."""
        self.unsupported: set[int] = set()
        """Configured PIDs that are not polled (not supported, or unknown)."""
        self._mode01: dict[int, _Poll] = {}
        self._vin_specs: list[SignalSpec] = []
        for spec in signals:
            source = spec.source
            if not isinstance(source, ObdSource):
                continue
            if source.mode == 9 and source.pid == 0x02:
                self._vin_specs.append(spec)
            elif source.mode != 1:
                _LOGGER.warning(
                    "%s: OBD mode %d is not polled (only 01 and 09/02)", spec.path, source.mode
                )
            elif source.pid not in PIDS:
                _LOGGER.warning(
                    "%s: PID 0x%02X is not in the PID table; not polled", spec.path, source.pid
                )
                self.unsupported.add(source.pid)
            else:
                interval = source.interval or default_interval_s
                poll = self._mode01.setdefault(source.pid, _Poll(source.pid, interval, []))
                poll.interval = min(poll.interval, interval)
                poll.specs.append(spec)
        self._vin_read = False
        self._adapter_resting = False
        self._dtc_due = 0.0
        self._stop = asyncio.Event()
        self._timeouts_in_row = 0
        self._backoff = initial_backoff_s

    @property
    def polled_pids(self) -> list[int]:
        """Mode 01 PIDs currently polled (configured and supported)."""
        return sorted(self._mode01)

    def stop(self) -> None:
        """Make :meth:`updates` return at its next wait."""
        self._stop.set()

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), max(0.0, seconds))

    def _car_on(self) -> bool:
        on = self.power.is_on()
        if on and not self.polling:
            self.polling = True
            self.stats.resumes += 1
            _LOGGER.info("car on (%s): OBD polling runs", self.power.reason)
        elif not on and self.polling:
            self.polling = False
            self.stats.pauses += 1
            self._vin_read = False
            _LOGGER.info("car off (%s): OBD polling paused", self.power.reason)
        return on

    def _apply_supported(self, supported: frozenset[int]) -> None:
        self.supported = supported
        for pid in list(self._mode01):
            if pid not in supported:
                _LOGGER.info(
                    "ECU does not support PID 0x%02X (%s); not polling it", pid, PIDS[pid].name
                )
                del self._mode01[pid]
                self.unsupported.add(pid)

    async def _on_error(self, err: ObdError) -> None:
        self.stats.errors += 1
        if isinstance(err, ObdTimeoutError):
            self.stats.timeouts += 1
            self._timeouts_in_row += 1
            if self._timeouts_in_row >= self.max_consecutive_timeouts:
                _LOGGER.warning(
                    "ECU not answering (%d timeouts); retrying in %.0f s",
                    self._timeouts_in_row,
                    self._backoff,
                )
                await self._wait(self._backoff)
                self._backoff = min(self._backoff * 2, self.max_backoff_s)
                self._timeouts_in_row = 0
        else:
            _LOGGER.warning("OBD error: %s", err)

    def _answered(self) -> None:
        self._timeouts_in_row = 0
        self._backoff = self.initial_backoff_s

    def _to_updates(self, poll: _Poll, reading: PidReading) -> list[VssUpdate]:
        out: list[VssUpdate] = []
        for spec in poll.specs:
            value = convert_value(spec, reading.value)
            if value is not None:
                out.append(VssUpdate(spec.path, value, reading.ts))
        return out

    async def updates(self) -> AsyncGenerator[VssUpdate]:
        """Poll until :meth:`stop`; yields each new value as it arrives."""
        self._stop.clear()
        while not self._stop.is_set():
            if not self._car_on():
                if not self._adapter_resting:
                    # An adapter with a low-power mode (ELM327 ATLP) sleeps too.
                    self._adapter_resting = True
                    with contextlib.suppress(ObdError):
                        await self.client.enter_low_power()
                await self._wait(self.idle_check_s)
                continue
            self._adapter_resting = False
            if self.supported is None:
                try:
                    self._apply_supported(await self.client.supported_pids())
                    self._answered()
                except ObdError as err:
                    await self._on_error(err)
                    await self._wait(min(self.idle_check_s, self._backoff))
                    continue
            async with contextlib.aclosing(self._one_shot_reads()) as once:
                async for update in once:
                    yield update
            self.stats.cycles += 1
            now = time.monotonic()
            for poll in sorted(self._mode01.values(), key=lambda p: p.due):
                if poll.due > now:
                    continue
                if self._stop.is_set() or not self._car_on():
                    break
                poll.due = now + poll.interval
                try:
                    reading = await self.client.read_pid(poll.pid)
                except ObdNotSupportedError:
                    _LOGGER.info("ECU rejected PID 0x%02X; not polling it", poll.pid)
                    self._mode01.pop(poll.pid, None)
                    self.unsupported.add(poll.pid)
                    continue
                except ObdError as err:
                    await self._on_error(err)
                    continue
                self._answered()
                self.stats.readings += 1
                for update in self._to_updates(poll, reading):
                    yield update
            next_due = min((p.due for p in self._mode01.values()), default=now + self.idle_check_s)
            await self._wait(min(next_due - time.monotonic(), self.idle_check_s))

    async def _one_shot_reads(self) -> AsyncGenerator[VssUpdate]:
        if self._vin_specs and not self._vin_read:
            self._vin_read = True
            try:
                vin = await self.client.read_vin()
            except ObdNotSupportedError:
                _LOGGER.info("ECU does not report its VIN")
            except ObdError as err:
                self._vin_read = False
                await self._on_error(err)
            else:
                for spec in self._vin_specs:
                    yield VssUpdate(spec.path, vin, time.time())
        if self.dtc_interval_s is not None and time.monotonic() >= self._dtc_due:
            self._dtc_due = time.monotonic() + self.dtc_interval_s
            try:
                dtcs = await self.client.read_all_dtcs()
            except ObdError as err:
                await self._on_error(err)
            else:
                yield VssUpdate(DTC_PATH, [d.to_dict() for d in dtcs], time.time())
