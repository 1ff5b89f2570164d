"""Car profiles: which CAN signal or OBD-II PID feeds which VSS path, as data.

A profile is a YAML file (see ``vehicle_agent/profiles/``)::

    name: Toyota RAV4 (2017+)
    make: Toyota
    model: RAV4
    buses:                          # bus name -> DBC files (by file name)
      can0: {dbc: [toyota_new_mc_pt_generated.dbc]}
    defaults: {rate_limit: 10, quiet_period: 2.0}
    signals:
      Vehicle.Speed:
        source: {bus: can0, message: SPEED, signal: SPEED}
        unit: km/h
        datatype: float
        deadband: 0.5               # changes smaller than this wait for the quiet period
        rate_limit: 2               # at most 2 updates/s
        precision: 2                # round to 2 decimals
      Vehicle.Powertrain.Transmission.SelectedGear:
        source: {bus: can0, message: GEAR_PACKET, signal: GEAR}
        datatype: string
        map: {D: D, S: S, N: N, R: R, P: P}   # keys: raw numbers or the DBC's value names
      Vehicle.VehicleIdentification.VIN:
        source: {bus: can0, ascii: [VIN_PART_1.VIN_1, VIN_PART_1.VIN_2, ...]}
        datatype: string
      Vehicle.OBD.IntakeTemp:
        source: {pid: 0x0F}         # OBD-II mode 01 PID; optional mode, interval (s)
        unit: celsius

Numbers are scaled as ``raw * scale + offset`` (after the DBC's own scaling;
``scale_by: {signal: UNITS, map: {km: 1, miles: 1.609344}}`` multiplies by a
factor picked by a sibling signal), unless a ``map`` is given, which replaces
the value (unmapped raw values are dropped unless ``default`` is set). DBC
files are referenced by file name and resolved against ``--dbc`` files,
``--dbc-dir``, ``$CARHUB_DBC_DIR``, the DBC files bundled with the agent or an
installed ``opendbc`` (:func:`resolve_dbc_files`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from vehicle_agent.dbc_sources import find_dbc, source_names

PROFILES_DIR = Path(__file__).with_name("profiles")
DBC_DIR_ENV = "CARHUB_DBC_DIR"
BUNDLED_DBC_DIR = Path(__file__).resolve().parent / "data" / "dbc"
"""DBC files shipped with the agent (found without --dbc-dir)."""
DATATYPES = ("float", "int", "bool", "string", "list")
Datatype = Literal["float", "int", "bool", "string", "list"]
_VSS_RE = re.compile(r"^Vehicle(\.[A-Za-z0-9_]+)+$")
_TOP_KEYS = {"name", "make", "model", "year", "description", "buses", "defaults", "signals"}
_SIGNAL_KEYS = {
    "source",
    "unit",
    "datatype",
    "scale",
    "offset",
    "map",
    "default",
    "deadband",
    "rate_limit",
    "quiet_period",
    "precision",
    "scale_by",
    "description",
}
_DEFAULT_KEYS = {"deadband", "rate_limit", "quiet_period"}


class ProfileError(Exception):
    """The profile file is missing, is not valid YAML, or breaks the schema."""


@dataclass(frozen=True, slots=True)
class CanSource:
    """One DBC signal on one bus."""

    bus: str
    message: str
    signal: str


@dataclass(frozen=True, slots=True)
class AsciiSource:
    """A text assembled from one-character signals spread over messages (e.g. VIN)."""

    bus: str
    parts: tuple[tuple[str, str], ...]  # (message, signal) per character, in order


@dataclass(frozen=True, slots=True)
class ObdSource:
    """An OBD-II PID (polled by vehicle_agent.obd)."""

    pid: int
    mode: int = 1
    interval: float | None = None  # seconds between polls; None: the poller's default


Source = CanSource | AsciiSource | ObdSource


@dataclass(frozen=True, slots=True)
class ScaleBy:
    """A scale factor chosen by another signal of the same message (e.g. km vs miles)."""

    signal: str
    factors: Mapping[Any, float]  # raw value or DBC value name -> factor


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """How one VSS path is produced and how often it may be sent."""

    path: str
    source: Source
    datatype: Datatype = "float"
    unit: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    value_map: Mapping[Any, Any] | None = None
    default: Any = None
    deadband: float = 0.0
    rate_limit: float | None = None  # max updates per second; None: unlimited
    quiet_period: float = 2.0  # seconds without change before a held value is sent
    precision: int | None = None
    scale_by: ScaleBy | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class CarProfile:
    """A whole car profile (see module docstring)."""

    name: str
    make: str
    model: str
    buses: Mapping[str, tuple[str, ...]]  # bus -> DBC file names
    signals: Mapping[str, SignalSpec]
    origin: Path | None = None
    year: str | None = None
    description: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def profile_id(self) -> str:
        """Short identifier: the file stem, or the name."""
        return self.origin.stem if self.origin else self.name

    def can_signals(self) -> list[SignalSpec]:
        """Specs fed by the CAN decoder (single signals and assembled texts)."""
        return [s for s in self.signals.values() if isinstance(s.source, CanSource | AsciiSource)]

    def obd_signals(self) -> list[SignalSpec]:
        """Specs fed by the OBD-II poller."""
        return [s for s in self.signals.values() if isinstance(s.source, ObdSource)]

    def hello_signals(self) -> dict[str, dict[str, Any]]:
        """The ``signals`` part of the hello body: unit and datatype per path."""
        return {p: {"unit": s.unit, "datatype": s.datatype} for p, s in self.signals.items()}


def load_profile(path: str | Path) -> CarProfile:
    """Read and validate a profile file. *path* may also name a bundled profile."""
    path = find_profile(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: invalid YAML: {exc}") from exc
    return parse_profile(data, origin=path)


def find_profile(name: str | Path) -> Path:
    """Return the file for *name*: a path, or a bundled profile's stem (``toyota_rav4``)."""
    path = Path(name)
    if path.is_file():
        return path
    bundled = PROFILES_DIR / f"{path.stem}.yaml"
    if path.parent == Path() and bundled.is_file():
        return bundled
    raise ProfileError(f"profile not found: {name}")


def bundled_profiles() -> list[Path]:
    """The profiles shipped with the agent."""
    return sorted(PROFILES_DIR.glob("*.yaml"))


def parse_profile(data: object, *, origin: Path | None = None) -> CarProfile:
    """Validate already-parsed YAML *data* and build a :class:`CarProfile`."""
    where = str(origin) if origin else "<profile>"
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: a profile must be a mapping at top level")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ProfileError(f"{where}: unknown top-level keys: {', '.join(sorted(unknown))}")
    name = _req_str(data, "name", where)
    buses = _parse_buses(data.get("buses") or {}, where)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - _DEFAULT_KEYS:
        raise ProfileError(f"{where}: defaults may only set {', '.join(sorted(_DEFAULT_KEYS))}")
    raw_signals = data.get("signals")
    if not isinstance(raw_signals, dict) or not raw_signals:
        raise ProfileError(f"{where}: 'signals' must be a non-empty mapping of VSS paths")
    signals: dict[str, SignalSpec] = {}
    for vss_path, spec in raw_signals.items():
        sig = _parse_signal(str(vss_path), spec, defaults, f"{where}: signals.{vss_path}")
        if isinstance(sig.source, CanSource | AsciiSource) and sig.source.bus not in buses:
            raise ProfileError(
                f"{where}: signals.{vss_path}: bus {sig.source.bus!r} is not declared under buses"
            )
        signals[sig.path] = sig
    return CarProfile(
        name=name,
        make=str(data.get("make", "")),
        model=str(data.get("model", "")),
        year=None if data.get("year") is None else str(data["year"]),
        description=data.get("description"),
        buses=buses,
        signals=signals,
        origin=origin,
    )


def _req_str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ProfileError(f"{where}: '{key}' must be a non-empty string")
    return value


def _parse_buses(raw: object, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: 'buses' must map bus names to {{dbc: [files]}}")
    buses: dict[str, tuple[str, ...]] = {}
    for bus, spec in raw.items():
        dbc = spec.get("dbc") if isinstance(spec, dict) else None
        if isinstance(dbc, str):
            dbc = [dbc]
        if not isinstance(dbc, list) or not dbc or not all(isinstance(d, str) for d in dbc):
            raise ProfileError(f"{where}: buses.{bus}: 'dbc' must be a file name or a list")
        buses[str(bus)] = tuple(dbc)
    return buses


def _number(value: object, what: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ProfileError(f"{what} must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ProfileError(f"{what} must be >= {minimum}, got {value!r}")
    return float(value)


def _parse_source(raw: object, where: str) -> Source:
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}.source must be a mapping")
    if "pid" in raw:
        pid = raw["pid"]
        mode = raw.get("mode", 1)
        if not isinstance(pid, int) or not 0 <= pid <= 0xFF:
            raise ProfileError(f"{where}.source.pid must be an integer 0x00..0xFF, got {pid!r}")
        if not isinstance(mode, int) or not 1 <= mode <= 0x0A:
            raise ProfileError(f"{where}.source.mode must be an OBD-II mode 1..10, got {mode!r}")
        interval = raw.get("interval")
        return ObdSource(
            pid=pid,
            mode=mode,
            interval=None
            if interval is None
            else _number(interval, f"{where}.source.interval", minimum=0.01),
        )
    bus = raw.get("bus")
    if not isinstance(bus, str) or not bus:
        raise ProfileError(f"{where}.source needs 'pid' (OBD-II) or 'bus' (CAN)")
    if "ascii" in raw:
        parts = raw["ascii"]
        if not isinstance(parts, list) or not parts:
            raise ProfileError(f"{where}.source.ascii must be a list of MESSAGE.SIGNAL")
        pairs: list[tuple[str, str]] = []
        for part in parts:
            message, dot, signal = str(part).partition(".")
            if not dot or not message or not signal:
                raise ProfileError(f"{where}.source.ascii: {part!r} is not MESSAGE.SIGNAL")
            pairs.append((message, signal))
        return AsciiSource(bus=bus, parts=tuple(pairs))
    message_name = raw.get("message")
    signal_name = raw.get("signal")
    if not isinstance(message_name, str) or not isinstance(signal_name, str):
        raise ProfileError(f"{where}.source needs 'message' and 'signal' names")
    return CanSource(bus=bus, message=message_name, signal=signal_name)


def _parse_signal(path: str, spec: object, defaults: Mapping[str, Any], where: str) -> SignalSpec:
    if not _VSS_RE.match(path):
        raise ProfileError(f"{where}: not a VSS path (Vehicle.Branch.Leaf)")
    if not isinstance(spec, dict):
        raise ProfileError(f"{where}: must be a mapping")
    unknown = set(spec) - _SIGNAL_KEYS
    if unknown:
        raise ProfileError(f"{where}: unknown keys: {', '.join(sorted(unknown))}")
    source = _parse_source(spec.get("source"), where)
    value_map = spec.get("map")
    if value_map is not None and (not isinstance(value_map, dict) or not value_map):
        raise ProfileError(f"{where}.map must be a non-empty mapping")
    datatype = spec.get("datatype")
    if datatype is None:
        datatype = "string" if isinstance(source, AsciiSource) else "float"
    if datatype not in DATATYPES:
        raise ProfileError(f"{where}.datatype must be one of {', '.join(DATATYPES)}")
    merged = {**defaults, **{k: spec[k] for k in _DEFAULT_KEYS if k in spec}}
    rate = merged.get("rate_limit")
    precision = spec.get("precision")
    if precision is not None and (not isinstance(precision, int) or precision < 0):
        raise ProfileError(f"{where}.precision must be a non-negative integer")
    unit = spec.get("unit")
    scale_by = _parse_scale_by(spec.get("scale_by"), source, where)
    return SignalSpec(
        path=path,
        source=source,
        datatype=cast(Datatype, datatype),
        unit=None if unit is None else str(unit),
        scale=_number(spec.get("scale", 1.0), f"{where}.scale"),
        offset=_number(spec.get("offset", 0.0), f"{where}.offset"),
        value_map=value_map,
        default=spec.get("default"),
        deadband=_number(merged.get("deadband", 0.0), f"{where}.deadband", minimum=0),
        rate_limit=None if rate is None else _number(rate, f"{where}.rate_limit", minimum=1e-6),
        quiet_period=_number(merged.get("quiet_period", 2.0), f"{where}.quiet_period", minimum=0),
        precision=precision,
        scale_by=scale_by,
        description=spec.get("description"),
    )


def _parse_scale_by(raw: object, source: Source, where: str) -> ScaleBy | None:
    if raw is None:
        return None
    if not isinstance(source, CanSource):
        raise ProfileError(f"{where}.scale_by only applies to a CAN signal source")
    if not isinstance(raw, dict) or not isinstance(raw.get("signal"), str):
        raise ProfileError(f"{where}.scale_by needs 'signal' and 'map'")
    factors = raw.get("map")
    if not isinstance(factors, dict) or not factors:
        raise ProfileError(f"{where}.scale_by.map must map values to factors")
    return ScaleBy(
        signal=raw["signal"],
        factors={k: _number(v, f"{where}.scale_by.map.{k}") for k, v in factors.items()},
    )


def resolve_dbc_files(
    profile: CarProfile,
    *,
    dbc_dir: str | Path | None = None,
    dbc_files: Sequence[str | Path] = (),
) -> dict[str, list[Path]]:
    """Map each bus of *profile* to the DBC files it names.

    A name is looked up among *dbc_files* (by file name), then in *dbc_dir*,
    then in ``$CARHUB_DBC_DIR``, then among the bundled DBC files and in an
    installed ``opendbc`` (:mod:`vehicle_agent.dbc_sources`). Raises
    ProfileError naming what is missing and where it looked.
    """
    by_name = {Path(f).name: Path(f) for f in dbc_files}
    dirs = [Path(d) for d in (dbc_dir, os.environ.get(DBC_DIR_ENV)) if d]
    dirs.append(BUNDLED_DBC_DIR)
    out: dict[str, list[Path]] = {}
    for bus, names in profile.buses.items():
        files: list[Path] = []
        for name in names:
            candidates = [by_name[name]] if name in by_name else []
            candidates += [d / name for d in dirs]
            found = next((c for c in candidates if c.is_file()), None) or find_dbc(name)
            if found is None:
                searched = ", ".join([*(str(d) for d in dirs), source_names()])
                raise ProfileError(
                    f"DBC file {name} for bus {bus} not found; searched {searched} (give --dbc-dir)"
                )
            files.append(found)
        out[bus] = files
    return out
