"""Charging sessions from the battery's signals (cars whose profile has them).

A session starts when ``Vehicle.Powertrain.TractionBattery.Charging.IsCharging``
turns true and ends when it turns false. Events (``data``):

* ``charging_start``: ``{"start_ts", "soc_percent"?, "energy_kwh"?}``
* ``charging_end``: ``{"start_ts", "end_ts", "duration_s", "soc_start_percent"?,
  "soc_end_percent"?, "soc_added_percent"?, "energy_added_kwh"?}``, where
  ``energy_added_kwh`` is the rise of the battery's usable energy
  (``StateOfCharge.CurrentEnergy``) and the state of charge is
  ``StateOfCharge.Displayed`` (``?``: only when the car sends the signal).

Sessions are kept in memory: a session the agent does not see end (it was
stopped while charging) is not reported.
"""

from __future__ import annotations

from typing import Any, Final

from vehicle_agent.values import finite_number

IS_CHARGING: Final = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"
SOC: Final = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed"
ENERGY: Final = "Vehicle.Powertrain.TractionBattery.StateOfCharge.CurrentEnergy"


class ChargingRecorder:
    """Turns the charging signals into ``charging_start``/``charging_end`` events."""

    def __init__(self) -> None:
        self._soc: float | None = None
        self._energy: float | None = None
        self._start: dict[str, Any] | None = None

    @property
    def charging(self) -> bool:
        """True during a session."""
        return self._start is not None

    def observe(self, path: str, value: object, ts: float) -> list[dict[str, Any]]:
        """Feed one emitted value; return the events it causes."""
        number = finite_number(value)
        if path in (SOC, ENERGY):
            if number is not None and path == SOC:
                self._soc = number
            elif number is not None:
                self._energy = number
            return []
        if path != IS_CHARGING or not isinstance(value, bool):
            return []
        if value and self._start is None:
            self._start = {"start_ts": ts, "soc": self._soc, "energy": self._energy}
            data: dict[str, Any] = {"start_ts": ts}
            if self._soc is not None:
                data["soc_percent"] = self._soc
            if self._energy is not None:
                data["energy_kwh"] = self._energy
            return [{"kind": "charging_start", "ts": ts, "data": data}]
        if not value and self._start is not None:
            start, self._start = self._start, None
            end: dict[str, Any] = {
                "start_ts": start["start_ts"],
                "end_ts": ts,
                "duration_s": round(ts - start["start_ts"], 1),
            }
            if start["soc"] is not None and self._soc is not None:
                end["soc_start_percent"] = start["soc"]
                end["soc_end_percent"] = self._soc
                end["soc_added_percent"] = round(self._soc - start["soc"], 2)
            if start["energy"] is not None and self._energy is not None:
                end["energy_added_kwh"] = round(self._energy - start["energy"], 3)
            return [{"kind": "charging_end", "ts": ts, "data": end}]
        return []
