"""Reading VSS values defensively (a bad value from a profile or source never raises)."""

from __future__ import annotations

import math


def finite_number(value: object) -> float | None:
    """*value* as a finite float, or None for booleans, non-numbers, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None
