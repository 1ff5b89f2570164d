"""SignalMapper: decoded CAN signals -> VSS updates, as the car profile says.

The mapper is bound to the databases of each bus when it is built: every
message and signal the profile names is checked to exist, and value-map keys
written as the DBC's value names (``locked``, ``D``) are turned into the raw
numbers they stand for, so at run time a mapping is one dict lookup on the raw
value (the decoder runs with ``decode_choices=False``).

Texts spread over several messages (the VIN in three frames) are assembled
character by character and emitted once every character has been seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from cantools.database.can import Database, Message, Signal

from vehicle_agent.decoder import DecodedFrame
from vehicle_agent.profile import (
    AsciiSource,
    CanSource,
    CarProfile,
    ProfileError,
    SignalSpec,
)
from vehicle_agent.state_store import SignalPolicy

_LOGGER = logging.getLogger(__name__)


class VssUpdate(NamedTuple):
    """A new value for one VSS path."""

    path: str
    value: Any
    ts: float


def _converter(spec: SignalSpec) -> Callable[[Any], Any]:
    """Return the function that turns a scaled number into the spec's datatype."""
    precision = spec.precision
    if spec.datatype == "bool":
        return bool
    if spec.datatype == "int":
        return lambda v: round(v)
    if spec.datatype == "string":
        return str
    if spec.datatype == "float":
        if precision is None:
            return float
        return lambda v: round(float(v), precision)
    return lambda v: v


class _Binding:
    """One profile signal fed by one DBC signal."""

    __slots__ = (
        "convert",
        "default",
        "factor_signal",
        "factors",
        "has_map",
        "offset",
        "path",
        "scale",
        "signal",
        "value_map",
    )

    def __init__(
        self,
        spec: SignalSpec,
        signal: str,
        value_map: dict[Any, Any] | None,
        factors: tuple[str, dict[Any, Any]] | None = None,
    ) -> None:
        self.path = spec.path
        self.factor_signal = factors[0] if factors else None
        self.factors = factors[1] if factors else {}
        self.signal = signal
        self.scale = spec.scale
        self.offset = spec.offset
        self.value_map = value_map
        self.has_map = value_map is not None
        self.default = spec.default
        self.convert = _converter(spec)


class _TextAssembly:
    """Characters of an :class:`AsciiSource`, filled in as their messages arrive."""

    def __init__(self, spec: SignalSpec) -> None:
        assert isinstance(spec.source, AsciiSource)
        self.path = spec.path
        self.chars: list[str | None] = [None] * len(spec.source.parts)
        # message -> [(index, signal)]
        self.by_message: dict[str, list[tuple[int, str]]] = {}
        for index, (message, signal) in enumerate(spec.source.parts):
            self.by_message.setdefault(message, []).append((index, signal))

    def feed(self, message: str, signals: Mapping[str, Any]) -> str | None:
        for index, signal in self.by_message.get(message, ()):
            raw = signals.get(signal)
            if raw is None:
                continue
            code = int(raw)
            self.chars[index] = chr(code) if 0x20 <= code < 0x7F else None
        if any(c is None for c in self.chars):
            return None
        return "".join(c for c in self.chars if c is not None).strip()


class SignalMapper:
    """Turns :class:`DecodedFrame` objects into :class:`VssUpdate` lists."""

    def __init__(self, profile: CarProfile, databases: Mapping[str, Sequence[Database]]) -> None:
        self.profile = profile
        self._routes: dict[tuple[str, str], list[_Binding]] = {}
        self._texts: dict[tuple[str, str], list[_TextAssembly]] = {}
        self._wanted: dict[str, dict[str, set[str]]] = {}
        self._unmapped_logged: set[tuple[str, object]] = set()
        for spec in profile.can_signals():
            source = spec.source
            if isinstance(source, CanSource):
                message = _find_message(databases, source.bus, source.message, spec.path)
                signal = _find_signal(message, source.signal, spec.path)
                factors = None
                if spec.scale_by is not None:
                    selector = _find_signal(message, spec.scale_by.signal, spec.path)
                    factors = (
                        selector.name,
                        _resolve_keys(spec.path, spec.scale_by.factors, selector),
                    )
                    self._want(source.bus, message.name, selector.name)
                binding = _Binding(spec, signal.name, _resolve_map(spec, signal), factors)
                self._routes.setdefault((source.bus, message.name), []).append(binding)
                self._want(source.bus, message.name, signal.name)
            elif isinstance(source, AsciiSource):
                text = _TextAssembly(spec)
                for message_name, signal_name in source.parts:
                    message = _find_message(databases, source.bus, message_name, spec.path)
                    _find_signal(message, signal_name, spec.path)
                    self._want(source.bus, message_name, signal_name)
                for message_name in text.by_message:
                    self._texts.setdefault((source.bus, message_name), []).append(text)

    def _want(self, bus: str, message: str, signal: str) -> None:
        self._wanted.setdefault(bus, {}).setdefault(message, set()).add(signal)

    @property
    def wanted(self) -> dict[str, dict[str, set[str]]]:
        """bus -> message -> signals this mapper reads (give it to FrameDecoder)."""
        return self._wanted

    def policies(self) -> dict[str, SignalPolicy]:
        """The state-store policy of every profile path."""
        return {
            p: SignalPolicy(
                deadband=s.deadband, rate_limit=s.rate_limit, quiet_period=s.quiet_period
            )
            for p, s in self.profile.signals.items()
        }

    def map(self, frame: DecodedFrame) -> list[VssUpdate]:
        """The VSS updates carried by *frame* (empty if the profile uses none of it)."""
        key = (frame.bus, frame.message)
        out: list[VssUpdate] = []
        signals = frame.signals
        ts = frame.timestamp
        for b in self._routes.get(key, ()):
            raw = signals.get(b.signal)
            if raw is None:
                continue
            if b.has_map:
                value = b.value_map.get(raw, b.default)  # type: ignore[union-attr]
                if value is None:
                    self._log_unmapped(b.path, raw)
                    continue
                out.append(VssUpdate(b.path, value, ts))
                continue
            if b.factor_signal is not None:
                factor = b.factors.get(signals.get(b.factor_signal))
                if factor is None:
                    self._log_unmapped(b.path, signals.get(b.factor_signal))
                    continue
                raw = raw * factor
            if b.scale != 1.0 or b.offset != 0.0:
                raw = raw * b.scale + b.offset
            out.append(VssUpdate(b.path, b.convert(raw), ts))
        texts = self._texts.get(key)
        if texts:
            for text in texts:
                value = text.feed(frame.message, signals)
                if value:
                    out.append(VssUpdate(text.path, value, ts))
        return out

    def _log_unmapped(self, path: str, raw: object) -> None:
        if (path, raw) not in self._unmapped_logged:
            self._unmapped_logged.add((path, raw))
            _LOGGER.info("%s: raw value %r is not in the profile's map; ignored", path, raw)


def _find_message(
    databases: Mapping[str, Sequence[Database]], bus: str, name: str, path: str
) -> Message:
    dbs = databases.get(bus)
    if not dbs:
        raise ProfileError(f"{path}: no DBC loaded for bus {bus}")
    for db in dbs:
        try:
            message: Message = db.get_message_by_name(name)
        except KeyError:
            continue
        return message
    raise ProfileError(f"{path}: message {name} is not in the DBC files of bus {bus}")


def _find_signal(message: Message, name: str, path: str) -> Signal:
    try:
        signal: Signal = message.get_signal_by_name(name)
    except KeyError:
        raise ProfileError(f"{path}: signal {name} is not in message {message.name}") from None
    return signal


def _resolve_map(spec: SignalSpec, signal: Signal) -> dict[Any, Any] | None:
    """Turn the profile's map keys into raw numbers (DBC value names resolved)."""
    if spec.value_map is None:
        return None
    return _resolve_keys(spec.path, spec.value_map, signal)


def _resolve_keys(path: str, mapping: Mapping[Any, Any], signal: Signal) -> dict[Any, Any]:
    """Copy *mapping* with keys that are DBC value names replaced by raw numbers."""
    names: dict[str, int] = {}
    if signal.choices:
        names = {str(v): int(k) for k, v in signal.choices.items()}
    out: dict[Any, Any] = {}
    for key, value in mapping.items():
        if isinstance(key, bool):
            raw: Any = int(key)
        elif isinstance(key, int | float):
            raw = key
        elif str(key) in names:
            raw = names[str(key)]
        else:
            try:
                raw = int(str(key), 0)
            except ValueError:
                known = ", ".join(sorted(names)) or "none"
                raise ProfileError(
                    f"{path}: map key {key!r} is neither a number nor a value name of "
                    f"{signal.name} (value names: {known})"
                ) from None
        out[raw] = value
    return out
