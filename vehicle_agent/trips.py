"""Trips: detecting them (:class:`TripDetector`) and summarising them (:class:`TripRecorder`).

The runtime feeds the recorder every change the state store emits (the
values the home sees) and ticks it with the forward loop. The recorder keeps
the running trip in the car's :class:`~vehicle_agent.trip_log.TripLog` and
turns the detector's ``trip_start``/``trip_end`` into events whose ``data`` is
the trip summary:

==================== ==========================================================
``trip``             the trip's id in the car's log (increasing, never reused)
``reason``           ``stopped`` (stood still ``end_idle_s``), ``engine off``,
                     ``agent stopped`` (the agent shut down during the trip) or
                     ``interrupted`` (the agent died; ended at the last saved
                     progress, at most ``save_interval_s`` before)
``start_ts/end_ts``  unix time of the first move above ``start_kmh`` and of the
                     stop (the moment the car stood still, or the engine stopped)
``duration_s``       end - start
``distance_km``      see ``distance_source``
``distance_source``  ``odometer`` when the odometer advanced by at least
                     ``min_odometer_steps`` of its own steps during the trip (a
                     shorter trip would be rounded to whole odometer steps),
                     else ``gps`` (sum of great-circle legs between fixes),
                     else ``speed`` (speed integrated over time)
``distance_speed_km`` the speed integral (always; ``distance_gps_km`` with GPS)
``average_speed_kmh`` speed integrated over the trip / duration
``max_speed_kmh``    top speed seen
``start``/``end``    ``{"latitude", "longitude"}`` where known (Home Assistant
                     adds the zone names)
``odometer_start_km``/``odometer_end_km``, ``fuel_used_percent``
(fuel level drop), ``energy_used_percent`` (state-of-charge drop): where the
profile has the signal.
==================== ==========================================================

Speed is ``Vehicle.Speed``; a car without it uses the GNSS speed. Speed is
integrated sample-and-hold (each value holds until the next), the way the
state store emits it; with the store's deadband that stays within a fraction
of a percent of the raw signal (tests/agent/test_trips.py checks it on the
RAV4 log).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Final

from vehicle_agent.gps.fix import GNSS_SPEED, LATITUDE, LONGITUDE, distance_m
from vehicle_agent.trip_log import POINT_INTERVAL_S, TripLog
from vehicle_agent.values import finite_number

_LOGGER = logging.getLogger(__name__)

SPEED: Final = "Vehicle.Speed"
IS_RUNNING: Final = "Vehicle.Powertrain.CombustionEngine.IsRunning"
ODOMETER: Final = "Vehicle.TraveledDistance"
FUEL_LEVEL: Final = "Vehicle.Powertrain.FuelSystem.RelativeLevel"
STATE_OF_CHARGE: Final = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed"

Event = dict[str, Any]


class TripDetector:
    """Trip start/end from speed and ignition.

    A trip starts when the car moves faster than ``start_kmh``. It ends when the
    engine stops, or when the car has stood still (at most ``still_kmh``) for
    ``end_idle_s`` seconds.
    """

    def __init__(
        self, *, start_kmh: float = 5.0, still_kmh: float = 1.0, end_idle_s: float = 120.0
    ) -> None:
        self.start_kmh = start_kmh
        self.still_kmh = still_kmh
        self.end_idle_s = end_idle_s
        self.active = False
        self._start_ts = 0.0
        self._start_odo: float | None = None
        self._odo: float | None = None
        self._max_speed = 0.0
        self._still_since: float | None = None
        self._trips = 0

    def observe(self, path: str, value: object, ts: float) -> list[Event]:
        """Feed one value; return the event bodies it causes."""
        if path == ODOMETER and isinstance(value, int | float):
            self._odo = float(value)
            if self.active and self._start_odo is None:
                self._start_odo = self._odo
            return []
        if path == IS_RUNNING and value is False and self.active:
            return [self.end(ts, "engine off")]
        if path != SPEED or not isinstance(value, int | float):
            return []
        speed = float(value)
        if not self.active:
            if speed > self.start_kmh:
                return [self._start(ts, speed)]
            return []
        self._max_speed = max(self._max_speed, speed)
        if speed <= self.still_kmh:
            if self._still_since is None:
                self._still_since = ts
        else:
            self._still_since = None
        return self.tick(ts)

    def tick(self, now: float) -> list[Event]:
        """End a trip whose car has stood still long enough."""
        if (
            self.active
            and self._still_since is not None
            and now - self._still_since >= self.end_idle_s
        ):
            return [self.end(self._still_since, "stopped")]
        return []

    def _start(self, ts: float, speed: float) -> Event:
        self.active = True
        self._trips += 1
        self._start_ts = ts
        self._start_odo = self._odo
        self._max_speed = speed
        self._still_since = None
        return {"kind": "trip_start", "ts": ts, "data": {"trip": self._trips}}

    def end(self, ts: float, reason: str) -> Event:
        """End the active trip at *ts* (the caller checks :attr:`active`)."""
        self.active = False
        data: dict[str, Any] = {
            "trip": self._trips,
            "reason": reason,
            "duration_s": round(ts - self._start_ts, 1),
            "max_speed_kmh": round(self._max_speed, 1),
        }
        if self._start_odo is not None and self._odo is not None:
            data["distance_km"] = round(self._odo - self._start_odo, 1)
        self._still_since = None
        return {"kind": "trip_end", "ts": ts, "data": data}


@dataclass(slots=True)
class _Running:
    """What is being summed up for the trip in progress."""

    id: int
    start_ts: float
    start: dict[str, float] | None
    odometer_start: float | None
    fuel_start: float | None
    soc_start: float | None
    speed: float
    speed_ts: float
    last_ts: float
    max_speed: float
    speed_km: float = 0.0
    gps_km: float = 0.0
    gps_legs: int = 0
    last_point_ts: float = -math.inf
    saved_at: float = 0.0


class TripRecorder:
    """Trip events with full summaries, kept in a :class:`TripLog` (see the module docstring)."""

    def __init__(
        self,
        log: TripLog,
        detector: TripDetector | None = None,
        *,
        save_interval_s: float = 30.0,
        min_odometer_steps: int = 20,
    ) -> None:
        self.log = log
        self.detector = detector or TripDetector()
        self.save_interval_s = save_interval_s
        self.min_odometer_steps = min_odometer_steps
        self._trip: _Running | None = None
        self._car_speed = False  # Vehicle.Speed seen: GNSS speed is not used
        self._odometer: float | None = None
        self._odometer_step: float | None = None
        self._fuel: float | None = None
        self._soc: float | None = None
        # Position: lat/lon arrive as two values with one fix time; a point is
        # taken when a newer fix time shows up (or at a tick), so a leg never
        # pairs the new latitude with the old longitude.
        self._fix: dict[str, float] = {}
        self._fix_ts: float | None = None
        self._position: tuple[float, float] | None = None
        self._recovered = False

    @property
    def active(self) -> bool:
        """True while a trip runs."""
        return self._trip is not None

    # --- input ---

    def observe(self, path: str, value: object, ts: float) -> list[Event]:
        """Feed one emitted value; return the events it causes (never raises on bad values)."""
        events = self._recover()
        if path in (LATITUDE, LONGITUDE):
            self._observe_position(path, value, ts)
            return events
        if path == GNSS_SPEED and not self._car_speed:
            path = SPEED
        elif path == SPEED:
            self._car_speed = True
        number = finite_number(value)
        if path == ODOMETER and number is not None:
            self._observe_odometer(number)
        elif path == FUEL_LEVEL and number is not None:
            self._fuel = number
        elif path == STATE_OF_CHARGE and number is not None:
            self._soc = number
        trip = self._trip
        if trip is not None:
            self._fill_start(trip)
        if trip is not None and path == SPEED and number is not None:
            self._integrate(trip, ts)
            trip.speed = number
            trip.max_speed = max(trip.max_speed, number)
        if path in (SPEED, ODOMETER, IS_RUNNING) and (path != SPEED or number is not None):
            for event in self.detector.observe(path, number if path == SPEED else value, ts):
                events += self._handle(event, ts, number)
        return events

    def tick(self, now: float) -> list[Event]:
        """Time passes: end a trip that stood still long enough, save progress."""
        events = self._recover()
        self._commit_fix()
        for event in self.detector.tick(now):
            events += self._handle(event, now, None)
        trip = self._trip
        if trip is not None and now - trip.saved_at >= self.save_interval_s:
            trip.saved_at = now
            self._integrate(trip, now)  # the last speed holds until now
            self.log.progress(trip.id, self._summary(trip, trip.last_ts))
        return events

    def finish(self, now: float, reason: str = "agent stopped") -> list[Event]:
        """End the trip in progress now (the agent stops); return its ``trip_end``."""
        events = self.tick(now)
        if self._trip is not None and self.detector.active:
            events += self._handle(self.detector.end(now, reason), now, None)
        return events

    def mark_sent(self, events: list[Event]) -> None:
        """The ``trip_end`` events among *events* are in every outbox: never send them again."""
        ids = [
            int(e["data"]["trip"])
            for e in events
            if e.get("kind") == "trip_end" and isinstance(e.get("data", {}).get("trip"), int)
        ]
        if ids:
            self.log.mark_sent(ids)

    # --- internals ---

    def _recover(self) -> list[Event]:
        """Once: end trips a dead agent left open, and hand over unsent ones."""
        if self._recovered:
            return []
        self._recovered = True
        for record in self.log.unfinished():
            summary = dict(record.summary)
            end_ts = float(summary.get("end_ts") or record.start_ts)
            summary["reason"] = "interrupted"
            self.log.finish(record.id, end_ts, summary)
            _LOGGER.warning("trip %d was interrupted; ended at its last saved progress", record.id)
        return [
            {"kind": "trip_end", "ts": r.end_ts, "data": r.summary}
            for r in self.log.unsent()
            if r.end_ts is not None
        ]

    def _fill_start(self, trip: _Running) -> None:
        """Values first seen after the start count from their first value."""
        if trip.odometer_start is None:
            trip.odometer_start = self._odometer
        if trip.fuel_start is None:
            trip.fuel_start = self._fuel
        if trip.soc_start is None:
            trip.soc_start = self._soc

    def _observe_odometer(self, value: float) -> None:
        if self._odometer is not None and value > self._odometer:
            step = value - self._odometer
            if self._odometer_step is None or step < self._odometer_step:
                self._odometer_step = step
        self._odometer = value

    def _observe_position(self, path: str, value: object, ts: float) -> None:
        number = finite_number(value)
        if number is None:
            return
        if self._fix_ts is not None and ts != self._fix_ts:
            self._commit_fix()
        self._fix[path] = number
        self._fix_ts = ts

    def _commit_fix(self) -> None:
        lat, lon, ts = self._fix.get(LATITUDE), self._fix.get(LONGITUDE), self._fix_ts
        if lat is None or lon is None or ts is None:
            return
        self._fix_ts = None
        previous, self._position = self._position, (lat, lon)
        trip = self._trip
        if trip is None or previous == self._position:
            return
        if previous is not None:
            trip.gps_km += distance_m(previous[0], previous[1], lat, lon) / 1000.0
            trip.gps_legs += 1
        trip.last_ts = max(trip.last_ts, ts)
        if ts - trip.last_point_ts >= POINT_INTERVAL_S:
            trip.last_point_ts = ts
            self.log.add_point(trip.id, ts, lat, lon)

    def _integrate(self, trip: _Running, until: float) -> None:
        if until > trip.speed_ts:
            trip.speed_km += trip.speed * (until - trip.speed_ts) / 3600.0
            trip.speed_ts = until
            trip.last_ts = max(trip.last_ts, until)

    def _place(self) -> dict[str, float] | None:
        if self._position is None:
            return None
        return {"latitude": self._position[0], "longitude": self._position[1]}

    def _handle(self, event: Event, now: float, speed: float | None) -> list[Event]:
        ts = float(event["ts"])
        if event["kind"] == "trip_start":
            self._commit_fix()
            start = self._place()
            trip = _Running(
                id=0,
                start_ts=ts,
                start=start,
                odometer_start=self._odometer,
                fuel_start=self._fuel,
                soc_start=self._soc,
                speed=speed or 0.0,
                speed_ts=ts,
                last_ts=ts,
                max_speed=speed or 0.0,
                saved_at=now,
            )
            trip.id = self.log.begin(ts, self._summary(trip, ts))
            self._trip = trip
            if start is not None:
                trip.last_point_ts = ts
                self.log.add_point(trip.id, ts, start["latitude"], start["longitude"])
            return [{"kind": "trip_start", "ts": ts, "data": {"trip": trip.id, "start": start}}]
        running = self._trip
        if running is None:
            return []
        self._commit_fix()
        self._integrate(running, ts)
        summary = self._summary(running, ts)
        summary["reason"] = event["data"].get("reason", "stopped")
        self.log.finish(running.id, ts, summary)
        self._trip = None
        return [{"kind": "trip_end", "ts": ts, "data": summary}]

    def _summary(self, trip: _Running, end_ts: float) -> dict[str, Any]:
        duration = max(0.0, end_ts - trip.start_ts)
        summary: dict[str, Any] = {
            "trip": trip.id,
            "reason": None,
            "start_ts": trip.start_ts,
            "end_ts": end_ts,
            "duration_s": round(duration, 1),
            "distance_speed_km": round(trip.speed_km, 3),
            "average_speed_kmh": round(trip.speed_km / duration * 3600.0, 1) if duration else 0.0,
            "max_speed_kmh": round(trip.max_speed, 1),
            "start": trip.start,
            "end": self._place(),
        }
        distance, source = trip.speed_km, "speed"
        if trip.gps_legs:
            summary["distance_gps_km"] = round(trip.gps_km, 3)
            distance, source = trip.gps_km, "gps"
        if trip.odometer_start is not None and self._odometer is not None:
            summary["odometer_start_km"] = trip.odometer_start
            summary["odometer_end_km"] = self._odometer
            advanced = self._odometer - trip.odometer_start
            step = self._odometer_step
            if step and advanced >= self.min_odometer_steps * step:
                distance, source = advanced, "odometer"
        summary["distance_km"] = round(distance, 3)
        summary["distance_source"] = source
        if trip.fuel_start is not None and self._fuel is not None:
            summary["fuel_used_percent"] = round(trip.fuel_start - self._fuel, 1)
        if trip.soc_start is not None and self._soc is not None:
            summary["energy_used_percent"] = round(trip.soc_start - self._soc, 1)
        return summary
