"""OBD-II inside the run loop: poller, power inputs from the state store, clear DTCs.

The poller (:mod:`vehicle_agent.obd.poller`) only polls while its
:class:`~vehicle_agent.obd.power.PowerMonitor` says the car is on. In the
running agent the monitor's two inputs come from the state store, which the
CAN decoder and the poller itself feed (:class:`StorePowerInputs`):

* ignition: ``Vehicle.LowVoltageSystemState`` (VSS: ``ON``/``START`` on,
  ``OFF``/``LOCK`` off) when the profile maps it, else
  ``Vehicle.Powertrain.CombustionEngine.IsRunning``. A CAN-fed ignition that
  has not been seen for ``signal_max_age_s`` counts as *off*: a silent bus
  means the car sleeps, and an OBD request would wake it.
* 12 V battery: ``Vehicle.LowVoltageBattery.CurrentVoltage``, from CAN or from
  OBD PID 0x42 (control module voltage). A stale value counts as unknown.

Voltage read through OBD cannot be watched while polling is paused, so when
the battery rule paused polling and no ignition signal says the car is off,
:meth:`ObdService.probe_loop` asks for PID 0x42 alone every
``probe_interval_s`` seconds; once the alternator charges again (13 V) polling
resumes. One request every two minutes by default, instead of a full cycle.
An adapter that measures the 12 V itself (an ELM327's ``ATRV``) is asked
instead, so the probe wakes no ECU; after the probe an adapter with a
low-power mode goes back to sleep.

Timestamps: every value in the live store is unix time (``time.time``), the
clock the wire protocol uses, so ages here are ``time.time() - ts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from vehicle_agent.mapper import VssUpdate
from vehicle_agent.obd.errors import ObdError
from vehicle_agent.obd.poller import DTC_PATH, ObdPoller, convert_value
from vehicle_agent.obd.power import PowerMonitor, PowerPolicy
from vehicle_agent.obd.queries import ObdQueries
from vehicle_agent.profile import CarProfile, ObdSource, SignalSpec
from vehicle_agent.state_store import StateStore

_LOGGER = logging.getLogger(__name__)

SYSTEM_STATE = "Vehicle.LowVoltageSystemState"
IS_RUNNING = "Vehicle.Powertrain.CombustionEngine.IsRunning"
BATTERY_VOLTAGE = "Vehicle.LowVoltageBattery.CurrentVoltage"
IGNITION_PATHS = (SYSTEM_STATE, IS_RUNNING)
"""Candidate ignition paths, preferred first."""
VOLTAGE_PID = 0x42

_ON_STATES = frozenset({"ON", "START"})
_OFF_STATES = frozenset({"OFF", "LOCK"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ObdOptions:
    """Knobs of OBD-II in the run loop (defaults suit a real car)."""

    power: PowerPolicy = field(default_factory=PowerPolicy)
    signal_max_age_s: float = 5.0
    """A CAN-fed ignition or voltage older than this is stale."""
    probe_interval_s: float = 120.0
    """Seconds between PID 0x42 probes while paused by the OBD-read battery voltage."""
    dtc_interval_s: float | None = 60.0
    idle_check_s: float = 1.0
    timeout_s: float = 1.0


class StorePowerInputs:
    """The ignition and battery inputs of a :class:`PowerMonitor`, read from the store."""

    def __init__(
        self,
        store: StateStore,
        profile: CarProfile,
        *,
        max_age_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._clock = clock
        self.ignition_path = next((p for p in IGNITION_PATHS if p in profile.signals), None)
        spec = profile.signals.get(BATTERY_VOLTAGE)
        self.voltage_path = BATTERY_VOLTAGE if spec is not None else None
        self.voltage_spec: SignalSpec | None = spec
        self.voltage_from_obd = spec is not None and isinstance(spec.source, ObdSource)
        ignition_spec = profile.signals.get(self.ignition_path) if self.ignition_path else None
        self._ignition_from_obd = ignition_spec is not None and isinstance(
            ignition_spec.source, ObdSource
        )
        self._ignition_max_age = max_age_s
        # A polled voltage is as old as its poll interval; allow three missed polls.
        interval = (
            spec.source.interval or 1.0
            if spec is not None and isinstance(spec.source, ObdSource)
            else 0.0
        )
        self._voltage_max_age = max(max_age_s, 3 * interval)

    def _fresh(self, path: str, max_age: float) -> object | None:
        got = self._store.get(path)
        if got is None:
            return None
        value, ts = got
        if self._clock() - ts > max_age:
            return None
        return value

    def ignition(self) -> bool | None:
        """True/False from the ignition signal; None when the profile has none."""
        path = self.ignition_path
        if path is None:
            return None
        value = self._fresh(path, self._ignition_max_age)
        if value is None:
            # Not seen lately: a CAN signal falls silent when the car sleeps.
            return None if self._ignition_from_obd else False
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            state = value.upper()
            if state in _ON_STATES:
                return True
            if state in _OFF_STATES:
                return False
        return None  # ACC, UNDEFINED, unexpected types: let the battery decide

    def battery_voltage(self) -> float | None:
        """The 12 V battery voltage if known and fresh."""
        if self.voltage_path is None:
            return None
        value = self._fresh(self.voltage_path, self._voltage_max_age)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None


class ObdService:
    """OBD-II for :class:`~vehicle_agent.runtime.AgentRuntime` (its ``obd`` actions).

    Feed :meth:`updates` to the runtime as a source and run :meth:`probe_loop`
    as a runtime task; :meth:`close` stops the poller and the client.
    """

    def __init__(
        self,
        client: ObdQueries,
        store: StateStore,
        profile: CarProfile,
        *,
        options: ObdOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options or ObdOptions()
        self.client = client
        self._store = store
        self._clock = clock
        self.inputs = StorePowerInputs(
            store, profile, max_age_s=self.options.signal_max_age_s, clock=clock
        )
        self.monitor = PowerMonitor(
            ignition=self.inputs.ignition,
            battery_voltage=self.inputs.battery_voltage,
            policy=self.options.power,
        )
        self.poller = ObdPoller(
            client,
            profile.obd_signals(),
            power=self.monitor,
            dtc_interval_s=self.options.dtc_interval_s,
            idle_check_s=self.options.idle_check_s,
        )
        self.probes = 0
        """PID 0x42 probes sent while paused."""
        self._stop = asyncio.Event()
        if self.inputs.ignition_path:
            _LOGGER.info("OBD polling follows ignition signal %s", self.inputs.ignition_path)
        if self.inputs.voltage_path:
            _LOGGER.info(
                "OBD polling follows the 12 V battery (%s)",
                "OBD PID 0x42" if self.inputs.voltage_from_obd else "CAN",
            )

    def updates(self) -> AsyncIterator[VssUpdate]:
        """The poller's updates (a runtime source)."""
        return self.poller.updates()

    async def clear_dtcs(self) -> None:
        """Mode 04, then read the DTCs again so the store (and the home) sees them go."""
        await self.client.clear_dtcs()
        try:
            dtcs = await self.client.read_all_dtcs()
        except ObdError as err:
            _LOGGER.warning("DTCs cleared, but reading them back failed: %s", err)
            return
        self._store.update(DTC_PATH, [d.to_dict() for d in dtcs], self._clock())

    def _should_probe(self) -> bool:
        return (
            self.inputs.voltage_from_obd
            and not self.poller.polling
            and self.inputs.ignition() is not False
            and not self.monitor.is_on()
        )

    async def probe_loop(self) -> None:
        """While paused by the OBD-read battery voltage, read PID 0x42 now and then."""
        spec = self.inputs.voltage_spec
        if spec is None or not self.inputs.voltage_from_obd:
            return
        interval = self.options.probe_interval_s
        last = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), min(interval, 1.0))
            if self._stop.is_set() or time.monotonic() - last < interval:
                continue
            if not self._should_probe():
                last = time.monotonic()
                continue
            last = time.monotonic()
            self.probes += 1
            try:
                value = await self._probe_voltage(spec)
            except ObdError as err:
                _LOGGER.debug("battery probe: %s", err)
                value = None
            if value is not None:
                _LOGGER.info("battery probe while paused: %.2f V", value)
                self._store.update(BATTERY_VOLTAGE, value, self._clock())
            if self._should_probe():  # still paused: let the adapter sleep again
                with contextlib.suppress(ObdError):
                    await self.client.enter_low_power()

    async def _probe_voltage(self, spec: SignalSpec) -> float | None:
        # An adapter that measures 12 V itself (ELM327 ATRV) answers without
        # waking any ECU; otherwise ask the ECU for PID 0x42.
        measured = await self.client.read_adapter_voltage()
        if measured is not None:
            return measured
        reading = await self.client.read_pid(VOLTAGE_PID)
        value = convert_value(spec, reading.value)
        return float(value) if isinstance(value, int | float) else None

    async def close(self) -> None:
        """Stop polling and probing; stop the client's ISO-TP stack."""
        self._stop.set()
        self.poller.stop()
        await self.client.close()
