"""NMEA 0183 parsing of the two sentences that carry a position: RMC and GGA.

Malformed input never raises out of :func:`parse_nmea`: a line with a bad
checksum, missing fields or impossible values is counted in
:class:`NmeaStats`, logged at debug level and skipped. RMC and GGA sentences
of the same epoch (same time of day) are merged into one :class:`GpsFix`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from vehicle_agent.gps.fix import KNOTS_TO_KMH, GpsFix, valid_position

_LOGGER = logging.getLogger(__name__)

_TALKERS = ("GP", "GN", "GL", "GA", "GB", "BD", "GQ")


class NmeaError(ValueError):
    """One sentence could not be understood."""


@dataclass(slots=True)
class NmeaStats:
    """Counters from parsing one stream."""

    lines: int = 0
    sentences: int = 0
    """Well-formed RMC/GGA sentences."""
    fixes: int = 0
    bad_checksum: int = 0
    malformed: int = 0
    ignored: int = 0
    """Well-formed sentences of other types (GSV, VTG, ...)."""
    no_fix: int = 0
    """Sentences that say the receiver has no position (RMC 'V', GGA quality 0)."""
    errors: list[str] = field(default_factory=list)
    """The first few problems, for error messages."""

    def problem(self, lineno: int, message: str) -> None:
        """Record a problem with line ``lineno``."""
        if len(self.errors) < 20:
            self.errors.append(f"line {lineno}: {message}")
        _LOGGER.debug("NMEA line %d: %s", lineno, message)


@dataclass(frozen=True, slots=True)
class Rmc:
    """Recommended minimum data: time, date, position, speed, course."""

    tod: time
    day: date | None
    valid: bool
    lat: float | None
    lon: float | None
    speed_kmh: float | None
    track_deg: float | None


@dataclass(frozen=True, slots=True)
class Gga:
    """Fix data: time, position, fix quality, satellites, HDOP, altitude."""

    tod: time
    quality: int
    lat: float | None
    lon: float | None
    satellites: int | None
    hdop: float | None
    alt_m: float | None


def checksum(body: str) -> int:
    """XOR of the characters between ``$`` and ``*``."""
    value = 0
    for char in body:
        value ^= ord(char)
    return value


def _split(line: str) -> list[str]:
    start = line.find("$")
    if start < 0:
        raise NmeaError("no '$' sentence start")
    body = line[start + 1 :].strip()
    if "*" in body:
        body, _, given = body.partition("*")
        try:
            expected = int(given[:2], 16)
        except ValueError:
            raise NmeaError(f"unreadable checksum {given!r}") from None
        if len(given) < 2 or checksum(body) != expected:
            raise _ChecksumError(f"checksum {given!r} does not match {checksum(body):02X}")
    if not body.isascii():
        raise NmeaError("non-ASCII characters")
    return body.split(",")


class _ChecksumError(NmeaError):
    pass


def _tod(text: str) -> time:
    if len(text) < 6 or not text[:6].isdigit():
        raise NmeaError(f"bad time {text!r}")
    seconds = float(text[4:])
    if not 0 <= seconds < 61:
        raise NmeaError(f"bad time {text!r}")
    whole = int(seconds)
    return time(
        int(text[:2]), int(text[2:4]), min(whole, 59), round((seconds - whole) * 1e6) % 1_000_000
    )


def _coord(value: str, hemi: str, degree_digits: int) -> float | None:
    if not value and not hemi:
        return None
    if hemi not in ("N", "S", "E", "W") or "." not in value or len(value) < degree_digits + 2:
        raise NmeaError(f"bad coordinate {value!r} {hemi!r}")
    try:
        degrees = int(value[:degree_digits])
        minutes = float(value[degree_digits:])
    except ValueError:
        raise NmeaError(f"bad coordinate {value!r}") from None
    if not 0 <= minutes < 60:
        raise NmeaError(f"bad minutes in {value!r}")
    result = degrees + minutes / 60
    return -result if hemi in ("S", "W") else result


def _float(text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise NmeaError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise NmeaError(f"not a number: {text!r}")
    return value


def parse_sentence(line: str) -> Rmc | Gga | None:
    """Parse one line; ``None`` for well-formed sentences of other types.

    Raises :class:`NmeaError` for anything malformed.
    """
    fields = _split(line)
    kind = fields[0]
    if len(kind) != 5 or kind[:2] not in _TALKERS:
        if len(kind) == 5 and kind.isalpha():
            return None
        raise NmeaError(f"unknown sentence id {kind!r}")
    try:
        if kind[2:] == "RMC":
            if len(fields) < 10:
                raise NmeaError("RMC needs at least 10 fields")
            day = None
            if fields[9]:
                if len(fields[9]) != 6 or not fields[9].isdigit():
                    raise NmeaError(f"bad date {fields[9]!r}")
                dd, mm, yy = int(fields[9][:2]), int(fields[9][2:4]), int(fields[9][4:])
                day = date(2000 + yy if yy < 80 else 1900 + yy, mm, dd)
            speed = _float(fields[7])
            lat, lon = _coord(fields[3], fields[4], 2), _coord(fields[5], fields[6], 3)
            return Rmc(
                tod=_tod(fields[1]),
                day=day,
                valid=fields[2] == "A",
                lat=lat,
                lon=lon,
                speed_kmh=None if speed is None else speed * KNOTS_TO_KMH,
                track_deg=_float(fields[8]),
            )
        if kind[2:] == "GGA":
            if len(fields) < 10:
                raise NmeaError("GGA needs at least 10 fields")
            sats = fields[7]
            return Gga(
                tod=_tod(fields[1]),
                quality=int(fields[6] or 0),
                lat=_coord(fields[2], fields[3], 2),
                lon=_coord(fields[4], fields[5], 3),
                satellites=int(sats) if sats else None,
                hdop=_float(fields[8]),
                alt_m=_float(fields[9]),
            )
    except (ValueError, IndexError) as err:  # int() of junk, impossible dates
        if isinstance(err, NmeaError):
            raise
        raise NmeaError(str(err)) from None
    return None


@dataclass(slots=True)
class _Epoch:
    tod: time
    rmc: Rmc | None = None
    gga: Gga | None = None


def parse_nmea(lines: Iterable[str], stats: NmeaStats | None = None) -> list[GpsFix]:
    """Parse NMEA lines into fixes, one per epoch that has a valid position.

    The date comes from RMC sentences; fixes before the first RMC date use the
    first date seen anywhere in the stream (or 1970-01-01 when none), and a
    time of day going backwards by more than 12 hours rolls over to the next day.
    """
    stats = stats if stats is not None else NmeaStats()
    epochs: list[_Epoch] = []
    first_day: date | None = None
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        stats.lines += 1
        try:
            sentence = parse_sentence(line)
        except _ChecksumError as err:
            stats.bad_checksum += 1
            stats.problem(lineno, str(err))
            continue
        except NmeaError as err:
            stats.malformed += 1
            stats.problem(lineno, str(err))
            continue
        if sentence is None:
            stats.ignored += 1
            continue
        stats.sentences += 1
        if not epochs or epochs[-1].tod != sentence.tod:
            epochs.append(_Epoch(sentence.tod))
        if isinstance(sentence, Rmc):
            epochs[-1].rmc = sentence
            if first_day is None and sentence.day is not None:
                first_day = sentence.day
        else:
            epochs[-1].gga = sentence
    day = first_day or date(1970, 1, 1)
    fixes: list[GpsFix] = []
    previous: datetime | None = None
    for epoch in epochs:
        if epoch.rmc is not None and epoch.rmc.day is not None:
            day = epoch.rmc.day
        when = datetime.combine(day, epoch.tod, tzinfo=UTC)
        if previous is not None and when < previous - timedelta(hours=12):
            when += timedelta(days=1)
            day = when.date()
        previous = when
        fix = _merge(epoch, when.timestamp())
        if fix is None:
            stats.no_fix += 1
        else:
            fixes.append(fix)
            stats.fixes += 1
    return fixes


def _merge(epoch: _Epoch, ts: float) -> GpsFix | None:
    rmc, gga = epoch.rmc, epoch.gga
    lat = lon = None
    if rmc is not None and rmc.valid:
        lat, lon = rmc.lat, rmc.lon
    if (lat is None or lon is None) and gga is not None and gga.quality > 0:
        lat, lon = gga.lat, gga.lon
    if lat is None or lon is None or not valid_position(lat, lon):
        return None
    alt = gga.alt_m if gga is not None and gga.quality > 0 else None
    return GpsFix(
        time=ts,
        lat=lat,
        lon=lon,
        speed_kmh=rmc.speed_kmh if rmc is not None and rmc.valid else None,
        track_deg=rmc.track_deg if rmc is not None and rmc.valid else None,
        alt_m=alt,
        mode=3 if alt is not None else 2,
    )
