"""VSS paths the integration understands (see docs/INTERFACES.md)."""

from __future__ import annotations

from typing import Final

SPEED: Final = "Vehicle.Speed"
ODOMETER: Final = "Vehicle.TraveledDistance"
ENGINE_SPEED: Final = "Vehicle.Powertrain.CombustionEngine.Speed"
COOLANT_TEMPERATURE: Final = "Vehicle.Powertrain.CombustionEngine.ECT"
ENGINE_RUNNING: Final = "Vehicle.Powertrain.CombustionEngine.IsRunning"
ENGINE_LOAD: Final = "Vehicle.Powertrain.CombustionEngine.EngineLoad"
FUEL_LEVEL: Final = "Vehicle.Powertrain.FuelSystem.RelativeLevel"
FUEL_RANGE: Final = "Vehicle.Powertrain.FuelSystem.Range"
BATTERY_LEVEL: Final = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed"
BATTERY_RANGE: Final = "Vehicle.Powertrain.TractionBattery.Range"
GEAR: Final = "Vehicle.Powertrain.Transmission.SelectedGear"
LOW_VOLTAGE_BATTERY: Final = "Vehicle.LowVoltageBattery.CurrentVoltage"
OUTSIDE_TEMPERATURE: Final = "Vehicle.Exterior.AirTemperature"
INTAKE_TEMPERATURE: Final = "Vehicle.OBD.IntakeTemp"
TRUNK_OPEN: Final = "Vehicle.Body.Trunk.Rear.IsOpen"
LOCKED: Final = "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"
DRIVER_BELTED: Final = "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted"
CHECK_ENGINE: Final = "Vehicle.OBD.Status.IsMILOn"
VIN: Final = "Vehicle.VehicleIdentification.VIN"
LATITUDE: Final = "Vehicle.CurrentLocation.Latitude"
LONGITUDE: Final = "Vehicle.CurrentLocation.Longitude"
HEADING: Final = "Vehicle.CurrentLocation.Heading"
LOCATION_ACCURACY: Final = "Vehicle.CurrentLocation.HorizontalAccuracy"
ALTITUDE: Final = "Vehicle.CurrentLocation.Altitude"
GNSS_SPEED: Final = "Vehicle.CurrentLocation.Speed"
DTCS: Final = "Vehicle.Diagnostics.DTCs"


def door_open(row: int, side: str) -> str:
    """Path of a door's open state; ``side`` is DriverSide or PassengerSide."""
    return f"Vehicle.Cabin.Door.Row{row}.{side}.IsOpen"


def tire_pressure(row: int, side: str) -> str:
    """Path of a tyre's pressure; ``side`` is Left or Right."""
    return f"Vehicle.Chassis.Axle.Row{row}.Wheel.{side}.Tire.Pressure"


# Paths whose values are personal data: redacted in diagnostics. Altitude and
# GNSS speed come with the position fix (altitude narrows down where the car is).
SENSITIVE_PATHS: Final = frozenset(
    {VIN, LATITUDE, LONGITUDE, HEADING, LOCATION_ACCURACY, ALTITUDE, GNSS_SPEED}
)
