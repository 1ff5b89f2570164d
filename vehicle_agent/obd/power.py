"""Is the car on? Decides when OBD-II polling may run without draining the battery.

Every OBD request wakes the ECUs on the bus. With the car parked that keeps
modules awake and flattens the 12 V battery, so polling only runs while the
car is on:

* an ignition signal, when the car provides one: ``False`` means off at once;
* the 12 V battery voltage, when known: below ``low_voltage_v`` (12.2 V: a
  resting battery that is discharging) for ``low_voltage_hold_s`` seconds means
  off. The hold keeps a cranking dip or a short load from stopping polling.
  Polling resumes once the voltage reaches ``resume_voltage_v`` (13.0 V: the
  alternator is charging, so the engine runs) or the ignition is switched on
  again after having been off (a new ignition cycle).

With neither signal available the car is assumed on: the operator asked for
OBD polling and the poller's timeout back-off stops hammering an ECU that does
not answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerPolicy:
    """Thresholds of :class:`PowerMonitor`."""

    low_voltage_v: float = 12.2
    low_voltage_hold_s: float = 60.0
    resume_voltage_v: float = 13.0


class PowerMonitor:
    """Combines an ignition signal and a battery voltage into "car on / off".

    ``ignition`` and ``battery_voltage`` are callables returning the latest
    known value, or ``None`` when unknown (e.g. reading them from the state
    store fed by the CAN decoder or an ADC). Time is injected for tests.
    """

    def __init__(
        self,
        *,
        ignition: Callable[[], bool | None] | None = None,
        battery_voltage: Callable[[], float | None] | None = None,
        policy: PowerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ignition = ignition
        self._voltage = battery_voltage
        self.policy = policy or PowerPolicy()
        self._clock = clock
        self._low_since: float | None = None
        self._battery_low = False
        self._last_ignition: bool | None = None
        self.reason = "on"
        """Why the car counts as on or off (for logs and the CLI)."""

    def is_on(self, now: float | None = None) -> bool:
        """Evaluate the signals now and return whether polling may run."""
        now = self._clock() if now is None else now
        ignition = self._ignition() if self._ignition is not None else None
        voltage = self._voltage() if self._voltage is not None else None
        policy = self.policy
        if ignition is True and self._last_ignition is False and self._battery_low:
            # A new ignition cycle: the driver wants the car; re-arm the hold.
            self._battery_low = False
            self._low_since = None
        self._last_ignition = ignition if ignition is not None else self._last_ignition
        if voltage is not None:
            if voltage < policy.low_voltage_v:
                if self._low_since is None:
                    self._low_since = now
                if now - self._low_since >= policy.low_voltage_hold_s and not self._battery_low:
                    self._battery_low = True
                    _LOGGER.info(
                        "12 V battery at %.2f V for %.0f s: treating the car as off",
                        voltage,
                        now - self._low_since,
                    )
            else:
                self._low_since = None
                if self._battery_low and voltage >= policy.resume_voltage_v:
                    self._battery_low = False
                    _LOGGER.info("12 V battery charging (%.2f V): car is on", voltage)
        if ignition is False:
            self.reason = "ignition off"
            return False
        if self._battery_low:
            self.reason = f"12 V battery below {policy.low_voltage_v:g} V"
            return False
        self.reason = "ignition on" if ignition else "on"
        return True
