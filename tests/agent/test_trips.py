"""Trip summaries on real data, checked against an independent computation.

The RAV4 highway log goes through the real pipeline (DBC decode, profile,
state store) into the TripRecorder. The reference values are computed here
from the raw frame bytes (SPEED 0xB4 and UI_SETTING 0x611 decoded by hand,
no cantools, every frame, not the store's thinned stream).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from tests.data_paths import CAN_LOG, DBC_DIR
from vehicle_agent.can_input import read_log
from vehicle_agent.gps import load_track
from vehicle_agent.pipeline import CanPipeline
from vehicle_agent.profile import load_profile
from vehicle_agent.trip_log import TripLog
from vehicle_agent.trips import (
    FUEL_LEVEL,
    IS_RUNNING,
    ODOMETER,
    SPEED,
    TripDetector,
    TripRecorder,
)

ROOT = Path(__file__).resolve().parents[2]
LOG = CAN_LOG
TRACK = ROOT / "vehicle_agent" / "data" / "demo_track.gpx"
MILE_KM = 1.609344


def raw_reference() -> dict[str, float]:
    """Speed and odometer straight from the frame bytes of can0."""
    speeds: list[tuple[float, float]] = []
    odometer: list[float] = []
    for msg in read_log(LOG):
        if msg.channel != "can0":
            continue
        if msg.arbitration_id == 0xB4:  # SPEED: 16 bits big-endian at byte 5, 0.01 km/h
            speeds.append((msg.timestamp, int.from_bytes(msg.data[5:7], "big") * 0.01))
        elif msg.arbitration_id == 0x611:  # UI_SETTING: ODOMETER bytes 4-7, UNITS bits 1-2
            units = (msg.data[3] >> 1) & 3
            odometer.append(int.from_bytes(msg.data[4:8], "big") * (MILE_KM if units == 2 else 1))
    # Trapezoids over every frame (the recorder holds each emitted value instead).
    km = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(speeds)) / 3600
    duration = speeds[-1][0] - speeds[0][0]
    return {
        "start_ts": speeds[0][0],
        "end_ts": speeds[-1][0],
        "km": km,
        "avg": km / duration * 3600,
        "max": max(s for _, s in speeds),
        "odo_start": odometer[0],
        "odo_end": odometer[-1],
    }


@pytest.fixture(scope="module")
def rav4_trip(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], TripLog]:
    pipeline = CanPipeline.from_profile(load_profile("toyota_rav4"), dbc_dir=DBC_DIR)
    log = TripLog(tmp_path_factory.mktemp("trips") / "trips.db")
    recorder = TripRecorder(log)
    events: list[dict] = []
    last_ts = 0.0
    for msg in read_log(LOG):
        pipeline.feed(msg)
        for path, value, ts in pipeline.store.drain():
            events += recorder.observe(path, value, ts)
        last_ts = msg.timestamp
    for path, value, ts in pipeline.store.flush():
        events += recorder.observe(path, value, ts)
    events += recorder.finish(last_ts)
    return events, log


def test_rav4_trip_matches_the_raw_frames(rav4_trip: tuple[list[dict], TripLog]) -> None:
    events, _ = rav4_trip
    ref = raw_reference()
    assert [e["kind"] for e in events] == ["trip_start", "trip_end"]
    start, end = events
    assert start["ts"] == pytest.approx(ref["start_ts"], abs=1e-6)  # 29 km/h from the first frame
    trip = end["data"]
    assert trip["reason"] == "agent stopped"
    assert trip["trip"] == start["data"]["trip"] == 1
    assert trip["duration_s"] == pytest.approx(ref["end_ts"] - ref["start_ts"], abs=0.15)
    # The store emits speed with a 0.5 km/h deadband at 2/s: within 1 % of every frame.
    assert trip["distance_speed_km"] == pytest.approx(ref["km"], rel=0.01)
    assert trip["average_speed_kmh"] == pytest.approx(ref["avg"], rel=0.01)
    assert ref["max"] - 0.6 <= trip["max_speed_kmh"] <= ref["max"]
    # One odometer step (1 mile) in 60 s: too coarse, the speed integral is used.
    assert trip["odometer_start_km"] == pytest.approx(ref["odo_start"], abs=0.06)
    assert trip["odometer_end_km"] == pytest.approx(ref["odo_end"], abs=0.06)
    assert trip["odometer_end_km"] - trip["odometer_start_km"] == pytest.approx(MILE_KM, abs=0.1)
    assert trip["distance_source"] == "speed"
    assert trip["distance_km"] == trip["distance_speed_km"]
    assert trip["start"] is None and trip["end"] is None  # no GPS on this car
    assert "fuel_used_percent" not in trip  # the profile has no fuel level


def test_rav4_trip_is_in_the_log(rav4_trip: tuple[list[dict], TripLog]) -> None:
    events, log = rav4_trip
    [record] = log.trips()
    assert record.id == 1 and record.end_ts == events[1]["ts"]
    assert record.summary == events[1]["data"]
    assert not record.sent  # nobody called mark_sent
    assert log.unfinished() == []


def gps_updates(track_path: Path) -> list[tuple[str, object, float]]:
    out: list[tuple[str, object, float]] = []
    for fix in load_track(track_path).fixes:
        out += [(p, v, t) for p, v, t in fix.to_vss()]
    return out


def test_gps_only_trip_distance_and_places() -> None:
    fixes = load_track(TRACK).fixes
    recorder = TripRecorder(TripLog(None))
    events: list[dict] = []
    for path, value, ts in gps_updates(TRACK):
        events += recorder.observe(path, value, ts)
    events += recorder.finish(fixes[-1].time)
    start, end = events
    trip = end["data"]
    # Independent: the equirectangular approximation of each leg (fine at 30 m legs).
    ref_km = 0.0
    for a, b in itertools.pairwise(fixes):
        mean_lat = math.radians((a.lat + b.lat) / 2)
        dx = math.radians(b.lon - a.lon) * math.cos(mean_lat)
        dy = math.radians(b.lat - a.lat)
        ref_km += 6371.0088 * math.hypot(dx, dy)
    assert trip["distance_source"] == "gps"
    assert trip["distance_km"] == pytest.approx(ref_km, rel=0.002)
    # The GNSS speed stands in for Vehicle.Speed: its integral agrees with the legs.
    assert trip["distance_speed_km"] == pytest.approx(ref_km, rel=0.03)
    assert start["data"]["start"] == {
        "latitude": round(fixes[0].lat, 7),
        "longitude": round(fixes[0].lon, 7),
    }
    assert trip["end"] == {
        "latitude": round(fixes[-1].lat, 7),
        "longitude": round(fixes[-1].lon, 7),
    }
    points = recorder.log.points(trip["trip"])
    assert points[0][0] == fixes[0].time and len(points) >= 60 // 5
    assert all(b[0] - a[0] >= 5 for a, b in itertools.pairwise(points))


def test_odometer_is_used_when_it_advanced_enough_and_fuel_drop() -> None:
    recorder = TripRecorder(TripLog(None), TripDetector(end_idle_s=60))
    feed = [(ODOMETER, 1000.0, 0.0), (ODOMETER, 1000.1, 1.0), (FUEL_LEVEL, 80.0, 1.0)]
    feed += [(SPEED, 60.0, 10.0)]
    feed += [(ODOMETER, round(1000.1 + 0.1 * i, 1), 10.0 + 6 * i) for i in range(1, 51)]
    feed += [(FUEL_LEVEL, 79.0, 300.0), (SPEED, 0.0, 310.0)]
    events = []
    for path, value, ts in feed:
        events += recorder.observe(path, value, ts)
    events += recorder.tick(369.0)
    assert events == [events[0]]  # still standing, not long enough yet
    events += recorder.tick(370.0)
    trip = events[1]["data"]
    assert trip["reason"] == "stopped" and events[1]["ts"] == 310.0
    assert trip["distance_source"] == "odometer"
    assert trip["distance_km"] == pytest.approx(5.0, abs=1e-6)
    assert trip["distance_speed_km"] == pytest.approx(60 * 300 / 3600, abs=1e-6)
    assert trip["average_speed_kmh"] == 60.0 and trip["duration_s"] == 300.0
    assert trip["fuel_used_percent"] == 1.0


def test_engine_off_ends_and_bad_values_are_ignored() -> None:
    recorder = TripRecorder(TripLog(None))
    events = []
    for path, value, ts in [
        (SPEED, "fast", 1.0),
        (SPEED, float("nan"), 2.0),
        (SPEED, None, 3.0),
        (ODOMETER, [1, 2], 3.0),
        ("Vehicle.CurrentLocation.Latitude", "north", 3.0),
        (SPEED, 20.0, 4.0),
        (SPEED, True, 5.0),
        (IS_RUNNING, False, 10.0),
    ]:
        events += recorder.observe(path, value, ts)
    assert [e["kind"] for e in events] == ["trip_start", "trip_end"]
    assert events[1]["data"]["reason"] == "engine off"
    assert events[1]["data"]["distance_km"] == pytest.approx(20 * 6 / 3600, abs=1e-3)


def test_a_trip_survives_an_agent_crash_and_is_sent_once(tmp_path: Path) -> None:
    db = tmp_path / "trips.db"
    first = TripRecorder(TripLog(db), save_interval_s=10)
    assert first.observe(SPEED, 50.0, 100.0)[0]["kind"] == "trip_start"
    first.observe(SPEED, 52.0, 115.0)
    first.tick(120.0)  # progress saved: running until 120 s
    first.observe(SPEED, 54.0, 125.0)  # lost: the agent dies before the next save
    # No finish(): power cut. The next start ends the trip at its last saved progress.
    second = TripRecorder(TripLog(db))
    [end] = second.tick(500.0)
    assert end["kind"] == "trip_end" and end["ts"] == 120.0
    assert end["data"]["reason"] == "interrupted" and end["data"]["trip"] == 1
    assert end["data"]["distance_speed_km"] == pytest.approx((50 * 15 + 52 * 5) / 3600, abs=1e-3)
    # Not marked sent (the runtime had no time to hand it over): the next start sends it again.
    third = TripRecorder(TripLog(db))
    assert [e["data"]["trip"] for e in third.tick(600.0)] == [1]
    third.mark_sent([end])
    assert TripRecorder(TripLog(db)).tick(700.0) == []
    # Ids are never reused.
    fourth = TripRecorder(TripLog(db))
    assert fourth.observe(SPEED, 30.0, 800.0)[0]["data"]["trip"] == 2
