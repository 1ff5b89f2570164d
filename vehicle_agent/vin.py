"""Vehicle Identification Number checks (ISO 3779 / 49 CFR 565 check digit).

North American VINs carry a check digit in position 9: each character is
transliterated to a number, multiplied by a positional weight, and the sum
modulo 11 is the check digit ("X" for 10). European VINs need not use it, so
:func:`is_valid_vin` is strict and :func:`is_plausible_vin` only checks the
shape.
"""

from __future__ import annotations

import re

VIN_LENGTH = 17
# I, O and Q are never used (confusable with 1 and 0).
_VIN_RE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}


def is_plausible_vin(vin: str) -> bool:
    """True if *vin* has 17 characters from the VIN alphabet (no I, O, Q)."""
    return bool(_VIN_RE.match(vin))


def vin_check_digit(vin: str) -> str:
    """Return the check digit ("0".."9" or "X") that position 9 of *vin* should hold.

    Raises ValueError when *vin* is not 17 characters of the VIN alphabet.
    """
    vin = vin.upper()
    if not is_plausible_vin(vin):
        raise ValueError(f"not a 17-character VIN: {vin!r}")
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def is_valid_vin(vin: str) -> bool:
    """True if *vin* is plausible and its check digit (position 9) is correct."""
    vin = vin.upper()
    return is_plausible_vin(vin) and vin[8] == vin_check_digit(vin)
