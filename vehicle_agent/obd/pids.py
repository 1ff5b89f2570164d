"""Standard OBD-II mode 01 PIDs (SAE J1979) and how to decode their data bytes.

Every PID is described by a :class:`PidSpec`. Most PIDs are *linear*: the data
bytes are one big-endian unsigned integer ``raw`` and the physical value is
``raw * scale + offset``; those can also be encoded again (the simulated ECU
uses that). A few PIDs (supported-PID bitmaps, monitor status) have their own
decoder.

Decoding returns a dict of named fields; the field ``"value"`` is the PID's main
value. A PID with several meanings (0x01: MIL lamp and DTC count) has more
fields, which a profile can select with ``field:``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from vehicle_agent.obd.errors import ObdResponseError

type Scalar = float | int | bool | str
"""A decoded PID field: JSON scalar, as the wire protocol carries it."""

SUPPORTED_PID_BLOCKS: tuple[int, ...] = (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0)
"""Mode 01 PIDs whose 4 data bytes say which of the next 32 PIDs are supported."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PidSpec:
    """One mode 01 PID: its length, unit and decoding."""

    pid: int
    name: str
    description: str
    length: int
    """Number of data bytes after the service and PID echo."""
    unit: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    decoder: Callable[[bytes], dict[str, Scalar]] | None = None
    """Custom decoder; ``None`` means linear (``raw * scale + offset``)."""
    ndigits: int = 3
    """Decimal places kept by the linear decoder (removes float noise like 14.900000001)."""

    @property
    def linear(self) -> bool:
        """True when the PID is ``raw * scale + offset`` and can be encoded."""
        return self.decoder is None

    def decode(self, data: bytes) -> dict[str, Scalar]:
        """Decode the data bytes (without service byte and PID echo).

        Raises :class:`ObdResponseError` when fewer bytes than the PID needs
        arrived. Extra bytes are ignored (some ECUs pad responses).
        """
        if len(data) < self.length:
            raise ObdResponseError(
                f"PID 0x{self.pid:02X} ({self.name}) needs {self.length} data bytes, "
                f"got {len(data)}: {data.hex()}"
            )
        body = bytes(data[: self.length])
        if self.decoder is not None:
            return self.decoder(body)
        raw = int.from_bytes(body, "big")
        value = round(raw * self.scale + self.offset, self.ndigits)
        if float(value).is_integer() and self.scale == int(self.scale):
            return {"value": int(value)}
        return {"value": value}

    def encode(self, value: float) -> bytes:
        """Encode a physical value into data bytes (linear PIDs only)."""
        if self.decoder is not None:
            raise ValueError(f"PID 0x{self.pid:02X} has a custom decoder and cannot be encoded")
        raw = round((value - self.offset) / self.scale)
        limit = (1 << (8 * self.length)) - 1
        return max(0, min(limit, raw)).to_bytes(self.length, "big")


def decode_supported_bitmap(base: int, data: bytes) -> frozenset[int]:
    """Return the PIDs a supported-PID bitmap response (PID ``base``) marks as supported.

    Bit 7 of the first byte stands for PID ``base + 1``, bit 0 of the last byte
    for ``base + 0x20`` (which itself says whether the next block exists).
    """
    if len(data) < 4:
        raise ObdResponseError(f"supported-PID bitmap 0x{base:02X} needs 4 bytes, got {len(data)}")
    bits = int.from_bytes(data[:4], "big")
    return frozenset(base + i + 1 for i in range(32) if bits & (1 << (31 - i)))


def encode_supported_bitmap(base: int, pids: Iterable[int]) -> bytes:
    """Build the 4-byte bitmap for block ``base`` from a set of supported PIDs."""
    bits = 0
    for pid in pids:
        if base < pid <= base + 0x20:
            bits |= 1 << (31 - (pid - base - 1))
    return bits.to_bytes(4, "big")


def _bitmap_decoder(base: int) -> Callable[[bytes], dict[str, Scalar]]:
    def decode(data: bytes) -> dict[str, Scalar]:
        supported = decode_supported_bitmap(base, data)
        return {"value": int.from_bytes(data[:4], "big"), "count": len(supported)}

    return decode


def _decode_monitor_status(data: bytes) -> dict[str, Scalar]:
    # Byte A: bit 7 = MIL (check engine lamp) on, bits 0-6 = number of confirmed
    # emission-related DTCs. Bytes B-D describe readiness tests (not decoded here).
    mil_on = bool(data[0] & 0x80)
    return {"value": mil_on, "mil_on": mil_on, "dtc_count": data[0] & 0x7F}


def _decode_rpm(data: bytes) -> dict[str, Scalar]:
    rpm = round(int.from_bytes(data[:2], "big") / 4, 2)
    return {"value": rpm, "running": rpm > 0}


def encode_monitor_status(mil_on: bool, dtc_count: int) -> bytes:
    """Data bytes for PID 0x01 (used by the simulated ECU)."""
    # Bytes B-D: a spark-ignition engine with its usual continuous and
    # non-continuous monitors available and complete.
    return bytes([(0x80 if mil_on else 0) | min(dtc_count, 0x7F), 0x07, 0x65, 0x00])


def _pct(pid: int, name: str, description: str) -> PidSpec:
    """A one-byte 0..255 -> 0..100 % PID."""
    return PidSpec(
        pid=pid,
        name=name,
        description=description,
        length=1,
        unit="percent",
        scale=100 / 255,
        ndigits=2,
    )


def _temp(pid: int, name: str, description: str) -> PidSpec:
    """A one-byte ``A - 40`` celsius PID."""
    return PidSpec(
        pid=pid, name=name, description=description, length=1, unit="celsius", offset=-40
    )


def _torque(pid: int, name: str, description: str) -> PidSpec:
    """A one-byte ``A - 125`` percent-torque PID."""
    return PidSpec(
        pid=pid, name=name, description=description, length=1, unit="percent", offset=-125
    )


def _trim(pid: int, name: str, description: str) -> PidSpec:
    """A one-byte fuel trim: ``(A - 128) * 100 / 128`` percent."""
    return PidSpec(
        pid=pid,
        name=name,
        description=description,
        length=1,
        unit="percent",
        scale=100 / 128,
        offset=-100,
        ndigits=2,
    )


_SPECS: list[PidSpec] = [
    PidSpec(
        pid=0x01,
        name="monitor_status",
        length=4,
        decoder=_decode_monitor_status,
        description="Monitor status since DTCs cleared: MIL on/off and DTC count",
    ),
    _temp(0x05, "coolant_temp", "Engine coolant temperature"),
    _pct(0x04, "engine_load", "Calculated engine load"),
    _trim(0x06, "short_fuel_trim_1", "Short term fuel trim, bank 1"),
    _trim(0x07, "long_fuel_trim_1", "Long term fuel trim, bank 1"),
    _trim(0x08, "short_fuel_trim_2", "Short term fuel trim, bank 2"),
    _trim(0x09, "long_fuel_trim_2", "Long term fuel trim, bank 2"),
    PidSpec(
        pid=0x0A,
        name="fuel_pressure",
        description="Fuel pressure (gauge)",
        length=1,
        unit="kPa",
        scale=3,
    ),
    PidSpec(
        pid=0x0B,
        name="intake_pressure",
        description="Intake manifold absolute pressure",
        length=1,
        unit="kPa",
    ),
    PidSpec(
        pid=0x0C, name="rpm", description="Engine speed", length=2, unit="rpm", decoder=_decode_rpm
    ),
    PidSpec(pid=0x0D, name="speed", description="Vehicle speed", length=1, unit="km/h"),
    PidSpec(
        pid=0x0E,
        name="timing_advance",
        description="Ignition timing advance before TDC",
        length=1,
        unit="degrees",
        scale=0.5,
        offset=-64,
        ndigits=1,
    ),
    _temp(0x0F, "intake_temp", "Intake air temperature"),
    PidSpec(
        pid=0x10,
        name="maf",
        description="Mass air flow rate",
        length=2,
        unit="g/s",
        scale=0.01,
        ndigits=2,
    ),
    _pct(0x11, "throttle_pos", "Absolute throttle position"),
    PidSpec(
        pid=0x1C, name="obd_standard", description="OBD standard this vehicle conforms to", length=1
    ),
    PidSpec(
        pid=0x1F, name="run_time", description="Run time since engine start", length=2, unit="s"
    ),
    PidSpec(
        pid=0x21,
        name="distance_with_mil",
        description="Distance traveled with MIL on",
        length=2,
        unit="km",
    ),
    PidSpec(
        pid=0x22,
        name="fuel_rail_pressure_vac",
        description="Fuel rail pressure relative to manifold vacuum",
        length=2,
        unit="kPa",
        scale=0.079,
        ndigits=2,
    ),
    PidSpec(
        pid=0x23,
        name="fuel_rail_pressure_direct",
        description="Fuel rail gauge pressure (diesel or direct injection)",
        length=2,
        unit="kPa",
        scale=10,
    ),
    _pct(0x2C, "commanded_egr", "Commanded EGR"),
    _pct(0x2E, "commanded_evap_purge", "Commanded evaporative purge"),
    _pct(0x2F, "fuel_level", "Fuel tank level input"),
    PidSpec(
        pid=0x30,
        name="warmups_since_dtc_clear",
        description="Warm-ups since codes cleared",
        length=1,
    ),
    PidSpec(
        pid=0x31,
        name="distance_since_dtc_clear",
        description="Distance traveled since codes cleared",
        length=2,
        unit="km",
    ),
    PidSpec(
        pid=0x33,
        name="barometric_pressure",
        description="Absolute barometric pressure",
        length=1,
        unit="kPa",
    ),
    PidSpec(
        pid=0x42,
        name="control_module_voltage",
        description="Control module voltage",
        length=2,
        unit="V",
        scale=0.001,
    ),
    PidSpec(
        pid=0x43,
        name="absolute_load",
        description="Absolute load value",
        length=2,
        unit="percent",
        scale=100 / 255,
        ndigits=2,
    ),
    PidSpec(
        pid=0x44,
        name="commanded_equiv_ratio",
        description="Commanded air-fuel equivalence ratio (lambda)",
        length=2,
        scale=2 / 65536,
        ndigits=5,
    ),
    _pct(0x45, "relative_throttle_pos", "Relative throttle position"),
    _temp(0x46, "ambient_air_temp", "Ambient air temperature"),
    _pct(0x47, "throttle_pos_b", "Absolute throttle position B"),
    _pct(0x49, "accelerator_pos_d", "Accelerator pedal position D"),
    _pct(0x4A, "accelerator_pos_e", "Accelerator pedal position E"),
    _pct(0x4C, "commanded_throttle", "Commanded throttle actuator"),
    PidSpec(
        pid=0x4D, name="time_with_mil", description="Time run with MIL on", length=2, unit="min"
    ),
    PidSpec(
        pid=0x4E,
        name="time_since_dtc_clear",
        description="Time since trouble codes cleared",
        length=2,
        unit="min",
    ),
    PidSpec(pid=0x51, name="fuel_type", description="Fuel type (J1979 table code)", length=1),
    _pct(0x52, "ethanol_percent", "Ethanol fuel percentage"),
    _pct(0x5A, "relative_accelerator_pos", "Relative accelerator pedal position"),
    _pct(0x5B, "hybrid_battery_remaining", "Hybrid battery pack remaining life"),
    _temp(0x5C, "oil_temp", "Engine oil temperature"),
    PidSpec(
        pid=0x5D,
        name="fuel_injection_timing",
        description="Fuel injection timing",
        length=2,
        unit="degrees",
        scale=1 / 128,
        offset=-210,
        ndigits=2,
    ),
    PidSpec(
        pid=0x5E,
        name="fuel_rate",
        description="Engine fuel rate",
        length=2,
        unit="L/h",
        scale=0.05,
        ndigits=2,
    ),
    _torque(0x61, "demand_torque", "Driver's demand engine percent torque"),
    _torque(0x62, "actual_torque", "Actual engine percent torque"),
    PidSpec(
        pid=0x63,
        name="reference_torque",
        description="Engine reference torque",
        length=2,
        unit="Nm",
    ),
    _torque(0x8E, "friction_torque", "Engine friction percent torque"),
    PidSpec(
        pid=0xA6, name="odometer", description="Odometer", length=4, unit="km", scale=0.1, ndigits=1
    ),
]
_SPECS += [
    PidSpec(
        pid=base,
        name=f"pids_supported_{base + 1:02x}_{base + 0x20:02x}",
        length=4,
        description=f"PIDs supported [{base + 1:02X}-{base + 0x20:02X}]",
        decoder=_bitmap_decoder(base),
    )
    for base in SUPPORTED_PID_BLOCKS
]

PIDS: Mapping[int, PidSpec] = {spec.pid: spec for spec in sorted(_SPECS, key=lambda s: s.pid)}
"""Every mode 01 PID this module can decode, by number."""

PIDS_BY_NAME: Mapping[str, PidSpec] = {spec.name: spec for spec in PIDS.values()}
"""The same PIDs by their short name (used on the command line)."""


def get_pid(pid: int) -> PidSpec:
    """Return the spec of ``pid``; raises ``KeyError`` with a clear message if unknown."""
    try:
        return PIDS[pid]
    except KeyError:
        raise KeyError(f"mode 01 PID 0x{pid:02X} is not in the PID table") from None


def parse_pid(text: str) -> int:
    """Parse a PID given in hex (``0x0D`` or ``0D``, as PIDs are always written) or by name."""
    text = text.strip()
    if text.lower() in PIDS_BY_NAME:
        return PIDS_BY_NAME[text.lower()].pid
    try:
        value = int(text, 16)
    except ValueError:
        raise ValueError(f"not a PID (hex number or name): {text!r}") from None
    if not 0 <= value <= 0xFF:
        raise ValueError(f"PID out of range 0x00-0xFF: {text!r}")
    return value
