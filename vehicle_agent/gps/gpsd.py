"""An asyncio client for gpsd's JSON protocol over TCP.

It sends ``?WATCH={"enable":true,"json":true}`` and turns every ``TPV``
report with a 2D or 3D fix into a :class:`GpsFix`. gpsd is a separate process
that may restart, and anything may sit on the other end of the socket, so:

* lines that are not JSON objects, too long, or TPV reports with impossible
  values are counted in :class:`GpsdStats`, logged, and skipped;
* a lost connection is re-established with exponential back-off
  (``reconnect_delay_s`` doubling up to ``max_reconnect_delay_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from vehicle_agent.gps.fix import MPS_TO_KMH, GpsFix, valid_position
from vehicle_agent.gps.gpx import parse_time

_LOGGER = logging.getLogger(__name__)

DEFAULT_PORT = 2947
WATCH_COMMAND = b'?WATCH={"enable":true,"json":true};\n'


@dataclass(slots=True)
class GpsdStats:
    """Counters of one client."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    lines: int = 0
    reports: int = 0
    """Well-formed JSON objects with a ``class``."""
    fixes: int = 0
    no_fix: int = 0
    """TPV reports without a position (mode 0/1)."""
    garbage: int = 0
    """Lines that were not JSON objects, too long, or invalid TPVs."""


def _number(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class TpvError(ValueError):
    """A TPV report that claims a fix but carries unusable values."""


def parse_tpv(obj: Mapping[str, Any], *, now: float | None = None) -> GpsFix | None:
    """Turn a TPV report into a fix; ``None`` when it has no fix (mode < 2).

    Raises :class:`TpvError` when it claims a fix but lat/lon are missing or
    impossible. ``now`` stamps reports that carry no time.
    """
    mode = obj.get("mode", 0)
    if not isinstance(mode, int) or isinstance(mode, bool) or mode < 2:
        return None
    lat, lon = obj.get("lat"), obj.get("lon")
    if not valid_position(lat, lon):
        raise TpvError(f"TPV mode {mode} without a valid position: lat={lat!r} lon={lon!r}")
    assert isinstance(lat, int | float) and isinstance(lon, int | float)
    ts = now if now is not None else time.time()
    raw_time = obj.get("time")
    if isinstance(raw_time, str):
        with contextlib.suppress(ValueError):
            ts = parse_time(raw_time)
    speed = _number(obj, "speed")
    track = _number(obj, "track")
    eph = _number(obj, "eph")
    if eph is None:
        epx, epy = _number(obj, "epx"), _number(obj, "epy")
        if epx is not None and epy is not None:
            eph = math.hypot(epx, epy)
    alt = _number(obj, "altMSL")
    if alt is None:
        alt = _number(obj, "alt")
    return GpsFix(
        time=ts,
        lat=float(lat),
        lon=float(lon),
        speed_kmh=None if speed is None else speed * MPS_TO_KMH,
        track_deg=None if track is None else track % 360.0,
        alt_m=alt if mode >= 3 else None,
        eph_m=eph,
        mode=mode,
    )


class GpsdClient:
    """Streams fixes from gpsd; iterate :meth:`fixes`, end with :meth:`stop`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        reconnect_delay_s: float = 1.0,
        max_reconnect_delay_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        max_line_bytes: int = 64 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.reconnect_delay_s = reconnect_delay_s
        self.max_reconnect_delay_s = max_reconnect_delay_s
        self.connect_timeout_s = connect_timeout_s
        self.max_line_bytes = max_line_bytes
        self.stats = GpsdStats()
        self.connected = False
        self._stop = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None

    def stop(self) -> None:
        """End :meth:`fixes` (closes the connection)."""
        self._stop.set()
        if self._writer is not None:
            self._writer.close()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def fixes(self) -> AsyncGenerator[GpsFix]:
        """Yield fixes until :meth:`stop`, reconnecting whenever gpsd goes away."""
        delay = self.reconnect_delay_s
        self._stop.clear()
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, limit=self.max_line_bytes),
                    self.connect_timeout_s,
                )
            except (OSError, TimeoutError) as err:
                self.stats.connect_failures += 1
                _LOGGER.warning(
                    "gpsd at %s:%d unreachable (%s); retrying in %.1f s",
                    self.host,
                    self.port,
                    err,
                    delay,
                )
                await self._pause(delay)
                delay = min(delay * 2, self.max_reconnect_delay_s)
                continue
            self._writer = writer
            self.connected = True
            self.stats.connects += 1
            _LOGGER.info("connected to gpsd at %s:%d", self.host, self.port)
            try:
                writer.write(WATCH_COMMAND)
                await writer.drain()
                async with contextlib.aclosing(self._read(reader)) as stream:
                    async for fix in stream:
                        delay = self.reconnect_delay_s  # a working link resets the back-off
                        yield fix
            except (OSError, asyncio.IncompleteReadError) as err:
                if not self._stop.is_set():
                    _LOGGER.warning("gpsd connection lost: %s", err)
            finally:
                self.connected = False
                self._writer = None
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            if self._stop.is_set():
                break
            self.stats.disconnects += 1
            await self._pause(delay)
            delay = min(delay * 2, self.max_reconnect_delay_s)

    async def _read(self, reader: asyncio.StreamReader) -> AsyncGenerator[GpsFix]:
        while not self._stop.is_set():
            try:
                line = await reader.readline()
            except ValueError:  # longer than max_line_bytes; the buffer was dropped
                self.stats.garbage += 1
                _LOGGER.warning("gpsd sent a line over %d bytes; skipped", self.max_line_bytes)
                continue
            if not line:
                return  # EOF: gpsd closed the connection
            self.stats.lines += 1
            fix = self._handle_line(line)
            if fix is not None:
                yield fix

    def _handle_line(self, line: bytes) -> GpsFix | None:
        text = line.decode("utf-8", errors="replace").strip()
        if not text:
            return None
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("class"), str):
            self.stats.garbage += 1
            _LOGGER.warning("ignoring non-report line from gpsd: %.80r", text)
            return None
        self.stats.reports += 1
        if obj["class"] != "TPV":
            return None
        try:
            fix = parse_tpv(obj)
        except TpvError as err:
            self.stats.garbage += 1
            _LOGGER.warning("ignoring TPV: %s", err)
            return None
        if fix is None:
            self.stats.no_fix += 1
            return None
        self.stats.fixes += 1
        return fix
