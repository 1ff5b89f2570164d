"""Diagnostic trouble codes: the 2-byte wire form, P/C/B/U codes, descriptions.

A DTC travels as two bytes ``A B``: bits 7-6 of ``A`` pick the system letter
(P powertrain, C chassis, B body, U network), bits 5-4 the first digit (0-3),
bits 3-0 the second digit and ``B`` the last two, all in hex: ``01 33`` is
``P0133``.

The descriptions are the generic (SAE J2012 / ISO 15031-6) meanings of common
codes, written for this project. Codes whose meaning the manufacturer defines
(P1xxx, P30xx-P33xx, B1/B2, C1/C2, U1/U2) are described as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vehicle_agent.obd.errors import ObdResponseError

_LETTERS = "PCBU"


class DtcKind(StrEnum):
    """Which list a DTC came from (and which OBD service reads it)."""

    STORED = "stored"
    """Confirmed codes, mode 03; these light the MIL."""
    PENDING = "pending"
    """Detected in the current or last drive cycle but not yet confirmed, mode 07."""
    PERMANENT = "permanent"
    """Codes that only the ECU itself may erase after the fault is gone, mode 0A."""


SERVICE_FOR_KIND: Mapping[DtcKind, int] = {
    DtcKind.STORED: 0x03,
    DtcKind.PENDING: 0x07,
    DtcKind.PERMANENT: 0x0A,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtc:
    """One trouble code as read from the car."""

    code: str
    kind: DtcKind
    description: str

    def to_dict(self) -> dict[str, Any]:
        """The wire form used for ``Vehicle.Diagnostics.DTCs``."""
        return {"code": self.code, "description": self.description, "kind": str(self.kind)}


def decode_dtc(a: int, b: int) -> str:
    """Turn the two wire bytes into a code like ``P0133``."""
    return f"{_LETTERS[(a >> 6) & 0x3]}{(a >> 4) & 0x3}{a & 0xF:X}{b & 0xFF:02X}"


def encode_dtc(code: str) -> bytes:
    """Inverse of :func:`decode_dtc`: ``"P0133"`` -> ``b"\\x01\\x33"``."""
    code = code.strip().upper()
    if len(code) != 5 or code[0] not in _LETTERS or code[1] not in "0123":
        raise ValueError(f"not a DTC: {code!r}")
    try:
        low = int(code[2:], 16)
    except ValueError:
        raise ValueError(f"not a DTC: {code!r}") from None
    high = (_LETTERS.index(code[0]) << 6) | (int(code[1]) << 4) | (low >> 8)
    return bytes([high, low & 0xFF])


def parse_dtc_payload(data: bytes) -> list[str]:
    """Parse the bytes after the service byte of a mode 03/07/0A response.

    On CAN (ISO 15765-4) the first byte is the number of codes, followed by two
    bytes per code; bytes beyond that are padding. ``00 00`` entries are padding
    too and are dropped. Raises :class:`ObdResponseError` when the answer is
    shorter than its count says.
    """
    if not data:
        raise ObdResponseError("DTC response without its count byte")
    count, pairs = data[0], data[1:]
    if count * 2 > len(pairs):
        raise ObdResponseError(
            f"DTC response announces {count} codes but carries {len(pairs) // 2}: {data.hex()}"
        )
    return [
        decode_dtc(pairs[i], pairs[i + 1])
        for i in range(0, count * 2, 2)
        if pairs[i] or pairs[i + 1]
    ]


def _bank_sensor(bank: int, sensor: int) -> str:
    return f"(Bank {bank} Sensor {sensor})"


def _build_descriptions() -> dict[str, str]:
    d: dict[str, str] = {}

    # Camshaft timing and crank/cam correlation.
    for base, bank in ((0x10, 1), (0x20, 2)):
        for off, cam in ((0, "A"), (3, "B")):
            code = base + off
            d[f"P{code:04X}"] = f'"{cam}" Camshaft Position Actuator Circuit (Bank {bank})'
            d[f"P{code + 1:04X}"] = (
                f'"{cam}" Camshaft Position - Timing Over-Advanced or System Performance '
                f"(Bank {bank})"
            )
            d[f"P{code + 2:04X}"] = (
                f'"{cam}" Camshaft Position - Timing Over-Retarded (Bank {bank})'
            )
    for name, bank, cam_sensor in (
        ("P0016", 1, "A"),
        ("P0017", 1, "B"),
        ("P0018", 2, "A"),
        ("P0019", 2, "B"),
    ):
        d[name] = (
            f"Crankshaft Position - Camshaft Position Correlation (Bank {bank} Sensor {cam_sensor})"
        )

    # Oxygen sensor heater control circuits.
    for first, bank, sensor in ((30, 1, 1), (36, 1, 2), (50, 2, 1), (56, 2, 2)):
        where = _bank_sensor(bank, sensor)
        d[f"P00{first}"] = f"HO2S Heater Control Circuit {where}"
        d[f"P00{first + 1}"] = f"HO2S Heater Control Circuit Low {where}"
        d[f"P00{first + 2}"] = f"HO2S Heater Control Circuit High {where}"

    # Sensor circuit families: base code, name; suffixes follow the usual
    # circuit / range-performance / low / high / intermittent order.
    families = (
        (70, "Ambient Air Temperature Sensor Circuit"),
        (100, 'Mass or Volume Air Flow Sensor "A" Circuit'),
        (105, "Manifold Absolute Pressure/Barometric Pressure Sensor Circuit"),
        (110, "Intake Air Temperature Sensor 1 Circuit"),
        (115, "Engine Coolant Temperature Sensor 1 Circuit"),
        (120, 'Throttle/Pedal Position Sensor/Switch "A" Circuit'),
        (335, 'Crankshaft Position Sensor "A" Circuit'),
        (340, 'Camshaft Position Sensor "A" Circuit (Bank 1 or Single Sensor)'),
        (345, 'Camshaft Position Sensor "A" Circuit (Bank 2)'),
        (450, "Evaporative Emission System Pressure Sensor/Switch"),
        (460, 'Fuel Level Sensor "A" Circuit'),
        (710, 'Transmission Fluid Temperature Sensor "A" Circuit'),
    )
    for base, name in families:
        d[f"P{base:04d}"] = name
        d[f"P{base + 1:04d}"] = f"{name} Range/Performance"
        d[f"P{base + 2:04d}"] = f"{name} Low"
        d[f"P{base + 3:04d}"] = f"{name} High"
        d[f"P{base + 4:04d}"] = f"{name} Intermittent"
    # Families with circuit / range / low / high only.
    for base, name in (
        (180, 'Fuel Temperature Sensor "A" Circuit'),
        (190, 'Fuel Rail Pressure Sensor "A" Circuit'),
        (220, 'Throttle/Pedal Position Sensor/Switch "B" Circuit'),
        (225, 'Throttle/Pedal Position Sensor/Switch "C" Circuit'),
        (520, "Engine Oil Pressure Sensor/Switch Circuit"),
        (530, 'A/C Refrigerant Pressure Sensor "A" Circuit'),
        (550, "Power Steering Pressure Sensor/Switch Circuit"),
    ):
        d[f"P{base:04d}"] = name
        d[f"P{base + 1:04d}"] = f"{name} Range/Performance"
        d[f"P{base + 2:04d}"] = f"{name} Low"
        d[f"P{base + 3:04d}"] = f"{name} High"
    d["P0119"] = "Engine Coolant Temperature Sensor 1 Circuit Intermittent/Erratic"

    d.update(
        {
            "P0068": "MAP/MAF - Throttle Position Correlation",
            "P0087": "Fuel Rail/System Pressure - Too Low",
            "P0088": "Fuel Rail/System Pressure - Too High",
            "P0089": "Fuel Pressure Regulator 1 Performance",
            "P0090": "Fuel Pressure Regulator 1 Control Circuit",
            "P0091": "Fuel Pressure Regulator 1 Control Circuit Low",
            "P0092": "Fuel Pressure Regulator 1 Control Circuit High",
            "P0093": "Fuel System Leak Detected - Large Leak",
            "P0125": "Insufficient Coolant Temperature for Closed Loop Fuel Control",
            "P0126": "Insufficient Coolant Temperature for Stable Operation",
            "P0127": "Intake Air Temperature Too High",
            "P0128": "Coolant Thermostat (Coolant Temperature Below Thermostat Regulating "
            "Temperature)",
            "P0170": "Fuel Trim (Bank 1)",
            "P0171": "System Too Lean (Bank 1)",
            "P0172": "System Too Rich (Bank 1)",
            "P0173": "Fuel Trim (Bank 2)",
            "P0174": "System Too Lean (Bank 2)",
            "P0175": "System Too Rich (Bank 2)",
            "P0200": "Injector Circuit/Open",
            "P0217": "Engine Coolant Over Temperature Condition",
            "P0218": "Transmission Fluid Over Temperature Condition",
            "P0219": "Engine Overspeed Condition",
            "P0230": "Fuel Pump Primary Circuit",
            "P0234": 'Turbocharger/Supercharger "A" Overboost Condition',
            "P0299": 'Turbocharger/Supercharger "A" Underboost Condition',
            "P0300": "Random/Multiple Cylinder Misfire Detected",
            "P0313": "Misfire Detected with Low Fuel",
            "P0314": "Single Cylinder Misfire (Cylinder not Specified)",
            "P0316": "Engine Misfire Detected on Startup (First 1000 Revolutions)",
            "P0320": "Ignition/Distributor Engine Speed Input Circuit",
            "P0325": "Knock Sensor 1 Circuit (Bank 1 or Single Sensor)",
            "P0326": "Knock Sensor 1 Circuit Range/Performance (Bank 1 or Single Sensor)",
            "P0327": "Knock Sensor 1 Circuit Low (Bank 1 or Single Sensor)",
            "P0328": "Knock Sensor 1 Circuit High (Bank 1 or Single Sensor)",
            "P0330": "Knock Sensor 2 Circuit (Bank 2)",
            "P0331": "Knock Sensor 2 Circuit Range/Performance (Bank 2)",
            "P0332": "Knock Sensor 2 Circuit Low (Bank 2)",
            "P0333": "Knock Sensor 2 Circuit High (Bank 2)",
            "P0350": "Ignition Coil Primary/Secondary Circuit",
            "P0400": 'Exhaust Gas Recirculation "A" Flow',
            "P0401": 'Exhaust Gas Recirculation "A" Flow Insufficient Detected',
            "P0402": 'Exhaust Gas Recirculation "A" Flow Excessive Detected',
            "P0403": 'Exhaust Gas Recirculation "A" Control Circuit',
            "P0404": 'Exhaust Gas Recirculation "A" Control Circuit Range/Performance',
            "P0405": 'Exhaust Gas Recirculation Sensor "A" Circuit Low',
            "P0406": 'Exhaust Gas Recirculation Sensor "A" Circuit High',
            "P0407": 'Exhaust Gas Recirculation Sensor "B" Circuit Low',
            "P0408": 'Exhaust Gas Recirculation Sensor "B" Circuit High',
            "P0409": 'Exhaust Gas Recirculation Sensor "A" Circuit',
            "P0410": "Secondary Air Injection System",
            "P0411": "Secondary Air Injection System Incorrect Flow Detected",
            "P0412": 'Secondary Air Injection System Switching Valve "A" Circuit',
            "P0418": 'Secondary Air Injection System Control "A" Circuit',
            "P0420": "Catalyst System Efficiency Below Threshold (Bank 1)",
            "P0421": "Warm Up Catalyst Efficiency Below Threshold (Bank 1)",
            "P0430": "Catalyst System Efficiency Below Threshold (Bank 2)",
            "P0431": "Warm Up Catalyst Efficiency Below Threshold (Bank 2)",
            "P0440": "Evaporative Emission System",
            "P0441": "Evaporative Emission System Incorrect Purge Flow",
            "P0442": "Evaporative Emission System Leak Detected (Small Leak)",
            "P0443": "Evaporative Emission System Purge Control Valve Circuit",
            "P0444": "Evaporative Emission System Purge Control Valve Circuit Open",
            "P0445": "Evaporative Emission System Purge Control Valve Circuit Shorted",
            "P0446": "Evaporative Emission System Vent Control Circuit",
            "P0447": "Evaporative Emission System Vent Control Circuit Open",
            "P0448": "Evaporative Emission System Vent Control Circuit Shorted",
            "P0449": "Evaporative Emission System Vent Valve/Solenoid Circuit",
            "P0455": "Evaporative Emission System Leak Detected (Large Leak)",
            "P0456": "Evaporative Emission System Leak Detected (Very Small Leak)",
            "P0457": "Evaporative Emission System Leak Detected (Fuel Cap Loose/Off)",
            "P0480": "Fan 1 Control Circuit",
            "P0481": "Fan 2 Control Circuit",
            "P0500": 'Vehicle Speed Sensor "A"',
            "P0501": 'Vehicle Speed Sensor "A" Range/Performance',
            "P0502": 'Vehicle Speed Sensor "A" Circuit Low Input',
            "P0503": 'Vehicle Speed Sensor "A" Intermittent/Erratic/High',
            "P0505": "Idle Air Control System",
            "P0506": "Idle Control System RPM Lower Than Expected",
            "P0507": "Idle Control System RPM Higher Than Expected",
            "P0560": "System Voltage",
            "P0561": "System Voltage Unstable",
            "P0562": "System Voltage Low",
            "P0563": "System Voltage High",
            "P0571": 'Brake Switch "A" Circuit',
            "P0600": "Serial Communication Link",
            "P0601": "Internal Control Module Memory Check Sum Error",
            "P0602": "Control Module Programming Error",
            "P0603": "Internal Control Module Keep Alive Memory (KAM) Error",
            "P0604": "Internal Control Module Random Access Memory (RAM) Error",
            "P0605": "Internal Control Module Read Only Memory (ROM) Error",
            "P0606": "Control Module Processor",
            "P0620": "Generator Control Circuit",
            "P0621": 'Generator Lamp/"L" Terminal Control Circuit',
            "P0622": 'Generator Field/"F" Terminal Control Circuit',
            "P0627": 'Fuel Pump "A" Control Circuit/Open',
            "P0641": 'Sensor Reference Voltage "A" Circuit/Open',
            "P0700": "Transmission Control System (MIL Request)",
            "P0705": 'Transmission Range Sensor "A" Circuit (PRNDL Input)',
            "P0706": 'Transmission Range Sensor "A" Circuit Range/Performance',
            "P0715": 'Input/Turbine Speed Sensor "A" Circuit',
            "P0716": 'Input/Turbine Speed Sensor "A" Circuit Range/Performance',
            "P0717": 'Input/Turbine Speed Sensor "A" Circuit No Signal',
            "P0720": "Output Speed Sensor Circuit",
            "P0725": "Engine Speed Input Circuit",
            "P0730": "Incorrect Gear Ratio",
            "P0736": "Reverse Incorrect Ratio",
            "P0740": "Torque Converter Clutch Solenoid Circuit/Open",
            "P0741": "Torque Converter Clutch Solenoid Circuit Performance/Stuck Off",
            "P0742": "Torque Converter Clutch Solenoid Circuit Stuck On",
            "P0743": "Torque Converter Clutch Solenoid Circuit Electrical",
            "P2004": "Intake Manifold Runner Control Stuck Open (Bank 1)",
            "P2096": "Post Catalyst Fuel Trim System Too Lean (Bank 1)",
            "P2097": "Post Catalyst Fuel Trim System Too Rich (Bank 1)",
            "P2098": "Post Catalyst Fuel Trim System Too Lean (Bank 2)",
            "P2099": "Post Catalyst Fuel Trim System Too Rich (Bank 2)",
            "P2101": 'Throttle Actuator "A" Control Motor Circuit Range/Performance',
            "P2111": 'Throttle Actuator "A" Control System - Stuck Open',
            "P2112": 'Throttle Actuator "A" Control System - Stuck Closed',
            "P2119": 'Throttle Actuator "A" Control Throttle Body Range/Performance',
            "P2135": 'Throttle/Pedal Position Sensor/Switch "A"/"B" Voltage Correlation',
            "P2138": 'Throttle/Pedal Position Sensor/Switch "D"/"E" Voltage Correlation',
            "P2187": "System Too Lean at Idle (Bank 1)",
            "P2188": "System Too Rich at Idle (Bank 1)",
            "P2189": "System Too Lean at Idle (Bank 2)",
            "P2190": "System Too Rich at Idle (Bank 2)",
            "P2195": "O2 Sensor Signal Biased/Stuck Lean (Bank 1 Sensor 1)",
            "P2196": "O2 Sensor Signal Biased/Stuck Rich (Bank 1 Sensor 1)",
            "P2197": "O2 Sensor Signal Biased/Stuck Lean (Bank 2 Sensor 1)",
            "P2198": "O2 Sensor Signal Biased/Stuck Rich (Bank 2 Sensor 1)",
            "P2270": "O2 Sensor Signal Biased/Stuck Lean (Bank 1 Sensor 2)",
            "P2271": "O2 Sensor Signal Biased/Stuck Rich (Bank 1 Sensor 2)",
            "P2272": "O2 Sensor Signal Biased/Stuck Lean (Bank 2 Sensor 2)",
            "P2273": "O2 Sensor Signal Biased/Stuck Rich (Bank 2 Sensor 2)",
            "P2A00": "O2 Sensor Circuit Range/Performance (Bank 1 Sensor 1)",
            "U0001": "High Speed CAN Communication Bus",
            "U0073": 'Control Module Communication Bus "A" Off',
            "U0100": 'Lost Communication With ECM/PCM "A"',
            "U0101": "Lost Communication With TCM",
            "U0121": "Lost Communication With Anti-Lock Brake System (ABS) Control Module",
            "U0140": "Lost Communication With Body Control Module",
            "U0151": "Lost Communication With Restraints Control Module",
            "U0155": "Lost Communication With Instrument Panel Cluster (IPC) Control Module",
        }
    )

    # Oxygen sensor circuits: six codes per sensor position.
    o2_suffixes = (
        "Circuit",
        "Circuit Low Voltage",
        "Circuit High Voltage",
        "Circuit Slow Response",
        "Circuit No Activity Detected",
        "Heater Circuit",
    )
    for first, bank, sensor in (
        (130, 1, 1),
        (136, 1, 2),
        (142, 1, 3),
        (150, 2, 1),
        (156, 2, 2),
        (162, 2, 3),
    ):
        for i, suffix in enumerate(o2_suffixes):
            d[f"P{first + i:04d}"] = f"O2 Sensor {suffix} {_bank_sensor(bank, sensor)}"

    # Per-cylinder families (cylinders 1-12).
    for cyl in range(1, 13):
        d[f"P{200 + cyl:04d}"] = f"Injector Circuit/Open - Cylinder {cyl}"
        d[f"P{300 + cyl:04d}"] = f"Cylinder {cyl} Misfire Detected"
        base = 261 + 3 * (cyl - 1)
        d[f"P{base:04d}"] = f'Cylinder {cyl} Injector "A" Circuit Low'
        d[f"P{base + 1:04d}"] = f'Cylinder {cyl} Injector "A" Circuit High'
        d[f"P{base + 2:04d}"] = f"Cylinder {cyl} Contribution/Balance"
        coil = "ABCDEFGHIJKL"[cyl - 1]
        d[f"P{350 + cyl:04d}"] = f'Ignition Coil "{coil}" Primary/Secondary Circuit'

    # Automatic transmission gear ratios and shift solenoids.
    for gear in range(1, 6):
        d[f"P{730 + gear:04d}"] = f"Gear {gear} Incorrect Ratio"
    for base, sol in ((750, "A"), (755, "B"), (760, "C"), (765, "D")):
        d[f"P{base:04d}"] = f'Shift Solenoid "{sol}"'
        d[f"P{base + 1:04d}"] = f'Shift Solenoid "{sol}" Performance/Stuck Off'
        d[f"P{base + 2:04d}"] = f'Shift Solenoid "{sol}" Stuck On'
        d[f"P{base + 3:04d}"] = f'Shift Solenoid "{sol}" Electrical'
    return d


DESCRIPTIONS: Mapping[str, str] = _build_descriptions()
"""Generic descriptions of common codes, by code."""

_SYSTEMS = {"P": "powertrain", "C": "chassis", "B": "body", "U": "network"}


def is_manufacturer_specific(code: str) -> bool:
    """True when the manufacturer, not SAE, defines what ``code`` means."""
    letter, first = code[0], code[1]
    if letter == "P":
        return first == "1" or (first == "3" and code[2] in "0123")
    return first in "12"


def describe(code: str) -> str:
    """Human description of ``code``; never raises, says so when unknown."""
    code = code.strip().upper()
    if code in DESCRIPTIONS:
        return DESCRIPTIONS[code]
    if len(code) != 5 or code[0] not in _SYSTEMS:
        return "Unrecognised code"
    system = _SYSTEMS[code[0]]
    if is_manufacturer_specific(code):
        return f"Manufacturer-specific {system} code (see the manufacturer's service information)"
    return f"Generic {system} code (no description in the built-in table)"


def make_dtc(code: str, kind: DtcKind) -> Dtc:
    """Build a :class:`Dtc` with its description."""
    return Dtc(code=code, kind=kind, description=describe(code))
