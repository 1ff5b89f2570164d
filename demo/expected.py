"""What Home Assistant should show: the values decoded from the CAN log, per VSS path.

The check decodes the same log in its own process (with the agent's decoder,
mapper and the RAV4 profile, but none of the agent's runtime, link or state
store) and records every value each signal takes. An entity's state in Home
Assistant must be one of those values: that proves the whole chain
(replay -> decode -> state store -> outbox -> mTLS link -> integration ->
entity) delivered real decoded data and did not invent or garble any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from demo.paths import CAN_LOG, DBC_DIR, PROFILE

#: A signal value on the wire: a JSON scalar (docs/INTERFACES.md).
type Scalar = bool | int | float | str


@dataclass
class SignalValues:
    """Every value one VSS path took in the log."""

    values: set[Scalar] = field(default_factory=set)
    first: Scalar | None = None
    last: Scalar | None = None
    count: int = 0

    def add(self, value: Scalar) -> None:
        """Record one decoded value."""
        if self.count == 0:
            self.first = value
        self.last = value
        self.count += 1
        self.values.add(value)

    @property
    def numeric(self) -> bool:
        """True when every value is a number (bools excluded)."""
        return bool(self.values) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in self.values
        )

    def matches(self, state: str, *, rel_tol: float = 1e-6, abs_tol: float = 0.051) -> bool:
        """Is Home Assistant's ``state`` string one of the decoded values?

        Numbers compare with a tolerance of half the last shown digit (the
        integration may round to the profile's precision); booleans compare
        with ``on``/``off`` and enumerations case-insensitively.
        """
        if self.numeric:
            try:
                number = float(state)
            except ValueError:
                return False
            return any(
                math.isclose(number, float(v), rel_tol=rel_tol, abs_tol=abs_tol)
                for v in self.values
            )
        lowered = state.lower()
        for v in self.values:
            if isinstance(v, bool):
                if lowered == ("on" if v else "off") or lowered == str(v).lower():
                    return True
            elif str(v).lower() == lowered:
                return True
        return False

    def describe(self) -> str:
        """Short human description of the decoded values."""
        if self.numeric:
            nums = [float(v) for v in self.values]
            return f"{min(nums):g}..{max(nums):g} ({len(self.values)} distinct)"
        return "{" + ", ".join(sorted(str(v) for v in self.values)) + "}"


def decode_log(
    log: Path = CAN_LOG, *, profile: Path = PROFILE, dbc_dir: Path = DBC_DIR
) -> dict[str, SignalValues]:
    """Decode ``log`` with the car profile; return the values of every mapped VSS path."""
    # Imported here: the agent's CAN stack is only needed by the check.
    from vehicle_agent.can_input import read_log
    from vehicle_agent.pipeline import CanPipeline
    from vehicle_agent.profile import load_profile

    pipeline = CanPipeline.from_profile(load_profile(profile), dbc_dir=dbc_dir)
    decode = pipeline.decoder.decode_message
    mapper = pipeline.mapper.map
    out: dict[str, SignalValues] = {}
    for msg in read_log(log):
        frame = decode(msg)
        if frame is None:
            continue
        for path, value, _ts in mapper(frame):
            out.setdefault(path, SignalValues()).add(value)
    return out
