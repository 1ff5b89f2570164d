"""Car intents answered from the state, in three languages."""

from __future__ import annotations

import pytest

from vehicle_agent.voice.answers import CarAnswers
from vehicle_agent.voice.intents import IntentMatch

from .conftest import FakeState

FULL = {
    "Vehicle.Speed": 87.4,
    "Vehicle.Powertrain.FuelSystem.RelativeLevel": 42.0,
    "Vehicle.Powertrain.FuelSystem.Range": 380.2,
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": 230.0,
    "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure": 228.0,
    "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked": False,
    "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen": False,
    "Vehicle.Body.Trunk.Rear.IsOpen": True,
    "Vehicle.Diagnostics.DTCs": [
        {"code": "P0420", "description": "Catalyst efficiency below threshold", "kind": "stored"}
    ],
    "Vehicle.LowVoltageBattery.CurrentVoltage": 12.46,
}


def ask(name: str, language: str = "en", values: dict[str, object] | None = None) -> str:
    return CarAnswers(FakeState(FULL if values is None else values), language).answer(
        IntentMatch(name=name)
    )


def test_english_answers_from_the_state() -> None:
    assert ask("CarSpeed") == "You are driving at 87 kilometres per hour."
    assert ask("CarFuel") == "The tank is 42 percent full, good for about 380 kilometres."
    assert ask("CarRange") == "You can drive about 380 kilometres."
    assert ask("CarBattery") == "The 12 volt battery reads 12.5 volts."
    assert "front left 230 kilopascals" in ask("CarTyres")
    assert ask("CarLocks") == "The car is not locked."
    assert ask("CarDoors") == "Open: trunk."
    assert ask("CarWarnings") == "1 warning(s): P0420 Catalyst efficiency below threshold."


def test_korean_and_chinese_answers() -> None:
    assert ask("CarSpeed", "ko") == "현재 속도는 시속 87 킬로미터입니다."
    assert ask("CarDoors", "ko") == "열려 있는 곳: 트렁크."
    assert ask("CarSpeed", "zh") == "当前车速每小时87公里。"
    assert ask("CarWarnings", "zh-cn").startswith("1个警告：P0420")


def test_electric_car_battery_and_range() -> None:
    ev = {
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed": 76,
        "Vehicle.Powertrain.TractionBattery.Range": 301,
    }
    assert (
        ask("CarBattery", values=ev)
        == "The battery is at 76 percent, good for about 301 kilometres."
    )
    assert ask("CarFuel", values=ev).startswith("The battery is at 76 percent")
    assert ask("CarRange", values=ev) == "You can drive about 301 kilometres."


@pytest.mark.parametrize(
    "name",
    [
        "CarSpeed",
        "CarFuel",
        "CarTyres",
        "CarLocks",
        "CarDoors",
        "CarWarnings",
        "CarRange",
        "CarBattery",
    ],
)
def test_unknown_or_bad_values_are_said_so(name: str) -> None:
    bad = {
        "Vehicle.Speed": "fast",
        "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked": "maybe",
        "Vehicle.Diagnostics.DTCs": "broken",
    }
    assert ask(name, values=bad).startswith("I do not know the")


def test_no_warnings() -> None:
    assert (
        ask("CarWarnings", "ko", {"Vehicle.Diagnostics.DTCs": []})
        == "경고가 없어요. 모두 정상입니다."
    )
