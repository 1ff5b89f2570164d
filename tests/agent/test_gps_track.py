"""Track replay scheduling with an injected clock, and load_track format detection."""

import math

import pytest

from vehicle_agent.gps.fix import GpsFix
from vehicle_agent.gps.track import load_track, replay


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def fixes(*times):
    return [GpsFix(time=1000.0 + t, lat=52.0 + t / 1000, lon=5.0) for t in times]


async def collect(clock, stream):
    out = []
    async for fix in stream:
        out.append((round(clock.now - 100.0, 6), fix))
    return out


async def test_recorded_pace():
    clock = FakeClock()
    got = await collect(
        clock, replay(fixes(0, 1, 2, 4), clock=clock, sleep=clock.sleep, wall=lambda: 5.0)
    )
    assert [t for t, _ in got] == [0, 1, 2, 4]
    assert all(f.time == 5.0 for _, f in got)  # restamped with the wall clock


async def test_speed_factor_and_recorded_times():
    clock = FakeClock()
    got = await collect(
        clock, replay(fixes(0, 1, 2, 4), speed=2, restamp=False, clock=clock, sleep=clock.sleep)
    )
    assert [t for t, _ in got] == [0, 0.5, 1, 2]
    assert [f.time for _, f in got] == [1000, 1001, 1002, 1004]


async def test_loop_continues_the_schedule():
    clock = FakeClock()
    got = await collect(
        clock,
        replay(fixes(0, 1, 2, 4), loop=True, max_loops=2, clock=clock, sleep=clock.sleep),
    )
    # Period = 4 s of track + the median gap (1 s).
    assert [t for t, _ in got] == [0, 1, 2, 4, 5, 6, 7, 9]
    assert got[4][1].lat == got[0][1].lat


async def test_late_consumer_does_not_accumulate_sleep():
    clock = FakeClock()
    out = []
    async for fix in replay(fixes(0, 1, 2, 3), clock=clock, sleep=clock.sleep):
        out.append(fix)
        clock.now += 1.5  # the consumer is slow
    assert clock.sleeps == []  # always behind schedule: never sleeps
    assert len(out) == 4


async def test_as_fast_as_possible_and_bad_speed():
    clock = FakeClock()
    got = await collect(
        clock, replay(fixes(0, 10, 20), speed=math.inf, clock=clock, sleep=clock.sleep)
    )
    assert len(got) == 3 and clock.sleeps == []
    with pytest.raises(ValueError, match="positive"):
        async for _ in replay(fixes(0), speed=0):
            pass
    assert [f async for f in replay([])] == []


def test_load_track_detects_format(tmp_path):
    nmea = tmp_path / "drive.log"
    nmea.write_text(
        "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\njunk line\n"
    )
    track = load_track(nmea)
    assert len(track.fixes) == 1 and track.skipped == 1
    gpx = tmp_path / "drive.xml"
    gpx.write_text(
        '<gpx><trk><trkseg><trkpt lat="1" lon="2"><time>2024-01-01T00:00:00Z</time>'
        "</trkpt></trkseg></trk></gpx>"
    )
    assert load_track(gpx).fixes[0].lon == 2.0


def test_fix_to_vss():
    fix = GpsFix(
        time=7.0,
        lat=52.123456789,
        lon=5.5,
        speed_kmh=101.234,
        track_deg=271.26,
        eph_m=4.44,
        alt_m=12.0,
        mode=3,
    )
    updates = {u.path: u.value for u in fix.to_vss()}
    assert updates == {
        "Vehicle.CurrentLocation.Latitude": 52.1234568,
        "Vehicle.CurrentLocation.Longitude": 5.5,
        "Vehicle.CurrentLocation.Heading": 271.3,
        "Vehicle.CurrentLocation.HorizontalAccuracy": 4.4,
        "Vehicle.CurrentLocation.Altitude": 12.0,
        "Vehicle.CurrentLocation.Speed": 101.23,
    }
    assert all(u.ts == 7.0 for u in fix.to_vss())
    bare = GpsFix(time=1.0, lat=1.0, lon=2.0)
    assert [u.path for u in bare.to_vss()] == [
        "Vehicle.CurrentLocation.Latitude",
        "Vehicle.CurrentLocation.Longitude",
    ]
