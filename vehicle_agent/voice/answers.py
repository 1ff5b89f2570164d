"""Car intents answered in the car from the latest signal values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from vehicle_agent.voice.intents import IntentMatch
from vehicle_agent.voice.replies import join, reply

SPEED = "Vehicle.Speed"
FUEL_LEVEL = "Vehicle.Powertrain.FuelSystem.RelativeLevel"
FUEL_RANGE = "Vehicle.Powertrain.FuelSystem.Range"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed"
EV_RANGE = "Vehicle.Powertrain.TractionBattery.Range"
LV_VOLTAGE = "Vehicle.LowVoltageBattery.CurrentVoltage"
LOCKED = "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"
DTCS = "Vehicle.Diagnostics.DTCs"
MIL = "Vehicle.OBD.Status.IsMILOn"
TYRES: tuple[tuple[str, str], ...] = (
    ("front_left", "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure"),
    ("front_right", "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure"),
    ("rear_left", "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure"),
    ("rear_right", "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure"),
)
DOORS: tuple[tuple[str, str], ...] = (
    ("driver_door", "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen"),
    ("passenger_door", "Vehicle.Cabin.Door.Row1.PassengerSide.IsOpen"),
    ("rear_left_door", "Vehicle.Cabin.Door.Row2.DriverSide.IsOpen"),
    ("rear_right_door", "Vehicle.Cabin.Door.Row2.PassengerSide.IsOpen"),
    ("trunk", "Vehicle.Body.Trunk.Rear.IsOpen"),
)


class StateReader(Protocol):
    """What answers need from the state store (``StateStore.value``)."""

    def value(self, path: str, default: Any = None) -> Any:  # noqa: ANN401
        """Latest value of *path*, or *default*."""
        ...


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fmt(value: float) -> str:
    return str(round(value))


class CarAnswers:
    """Turns car intents into spoken answers from a :class:`StateReader`."""

    def __init__(self, state: StateReader, language: str) -> None:
        self._state = state
        self.language = language
        self._handlers: dict[str, Callable[[], str]] = {
            "CarSpeed": self._speed,
            "CarFuel": self._fuel,
            "CarRange": self._range,
            "CarBattery": self._battery,
            "CarTyres": self._tyres,
            "CarLocks": self._locks,
            "CarDoors": self._doors,
            "CarWarnings": self._warnings,
        }

    def answer(self, intent: IntentMatch) -> str:
        """The spoken answer to a car intent."""
        handler = self._handlers.get(intent.name)
        if handler is None:
            return self._r("not_understood")
        return handler()

    def _r(self, key: str, **values: object) -> str:
        return reply(self.language, key, **values)

    def _unknown(self, what: str) -> str:
        return self._r("unknown_value", what=self._r(f"what_{what}"))

    def _speed(self) -> str:
        speed = _num(self._state.value(SPEED))
        return self._unknown("speed") if speed is None else self._r("speed", speed=_fmt(speed))

    def _fuel(self) -> str:
        level = _num(self._state.value(FUEL_LEVEL))
        if level is None:
            return (
                self._battery()
                if _num(self._state.value(SOC)) is not None
                else self._unknown("fuel")
            )
        rng = _num(self._state.value(FUEL_RANGE))
        if rng is None:
            return self._r("fuel", level=_fmt(level))
        return self._r("fuel_range", level=_fmt(level), range=_fmt(rng))

    def _range(self) -> str:
        for path in (FUEL_RANGE, EV_RANGE):
            rng = _num(self._state.value(path))
            if rng is not None:
                return self._r("range", range=_fmt(rng))
        return self._unknown("range")

    def _battery(self) -> str:
        soc = _num(self._state.value(SOC))
        if soc is not None:
            rng = _num(self._state.value(EV_RANGE))
            if rng is None:
                return self._r("battery", level=_fmt(soc))
            return self._r("battery_range", level=_fmt(soc), range=_fmt(rng))
        volts = _num(self._state.value(LV_VOLTAGE))
        if volts is not None:
            return self._r("low_voltage", volts=f"{volts:.1f}")
        return self._unknown("battery")

    def _tyres(self) -> str:
        parts = []
        for label, path in TYRES:
            value = _num(self._state.value(path))
            if value is not None:
                parts.append(f"{self._r(label)} {self._r('kpa', value=_fmt(value))}")
        return (
            self._r("tyres", list=join(self.language, parts)) if parts else self._unknown("tyres")
        )

    def _locks(self) -> str:
        locked = self._state.value(LOCKED)
        if not isinstance(locked, bool):
            return self._unknown("locks")
        return self._r("locked" if locked else "unlocked")

    def _doors(self) -> str:
        known = [(label, self._state.value(path)) for label, path in DOORS]
        known = [(label, v) for label, v in known if isinstance(v, bool)]
        if not known:
            return self._unknown("doors")
        opened = [self._r(label) for label, v in known if v]
        if not opened:
            return self._r("doors_closed")
        return self._r("doors_open", list=join(self.language, opened))

    def _warnings(self) -> str:
        dtcs = self._state.value(DTCS)
        mil = self._state.value(MIL)
        if not isinstance(dtcs, list):
            if mil is None:
                return self._unknown("warnings")
            dtcs = []
        items = []
        for dtc in dtcs:
            if isinstance(dtc, dict) and dtc.get("code"):
                desc = str(dtc.get("description") or "").strip()
                items.append(f"{dtc['code']} {desc}".strip())
        if not items:
            return self._r("no_warnings")
        return self._r("warnings", count=len(items), list=join(self.language, items))
