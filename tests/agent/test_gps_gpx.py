"""GPX parsing and the shipped demo track."""

from pathlib import Path

import pytest

from vehicle_agent.gps.gpx import GpxError, GpxStats, parse_gpx
from vehicle_agent.gps.track import TrackError, load_track

DEMO = Path(__file__).resolve().parents[2] / "vehicle_agent" / "data" / "demo_track.gpx"

GPX11 = """<?xml version="1.0"?>
<gpx version="1.1" creator="t" xmlns="http://www.topografix.com/GPX/1/1">
 <trk><trkseg>
  <trkpt lat="52.0000" lon="5.0000"><ele>3.5</ele><time>2024-05-18T10:00:00Z</time></trkpt>
  <trkpt lat="52.0001" lon="5.0000"><time>2024-05-18T10:00:01Z</time></trkpt>
  <trkpt lat="52.0001" lon="5.000146"><time>2024-05-18T10:00:02+00:00</time></trkpt>
  <trkpt lat="95.0" lon="5.0"><time>2024-05-18T10:00:03Z</time></trkpt>
  <trkpt lat="abc" lon="5.0"><time>2024-05-18T10:00:04Z</time></trkpt>
  <trkpt lat="52.0" lon="5.0"></trkpt>
  <trkpt lat="52.0" lon="5.0"><time>yesterday</time></trkpt>
 </trkseg></trk>
</gpx>"""

GPX10 = """<gpx version="1.0" xmlns="http://www.topografix.com/GPX/1/0"><trk><trkseg>
<trkpt lat="-33.9" lon="151.2"><time>2024-01-01T00:00:00</time><speed>25</speed>
<course>370</course></trkpt>
</trkseg></trk></gpx>"""


def test_gpx11_points_and_derived_motion():
    stats = GpxStats()
    fixes = parse_gpx(GPX11, stats)
    assert len(fixes) == 3
    assert stats.points == 3 and stats.skipped == 4
    assert len(stats.errors) == 4
    assert fixes[0].alt_m == 3.5 and fixes[0].mode == 3
    assert fixes[1].alt_m is None and fixes[1].mode == 2
    # 0.0001 degrees of latitude north in 1 s = 11.12 m/s = 40.0 km/h, heading north.
    assert fixes[1].speed_kmh == pytest.approx(40.03, abs=0.05)
    assert fixes[1].track_deg == pytest.approx(0.0, abs=0.01)
    assert fixes[0].speed_kmh == pytest.approx(40.03, abs=0.05)  # from the next point
    # Then ~10 m east in 1 s.
    assert fixes[2].track_deg == pytest.approx(90.0, abs=0.1)
    assert fixes[2].speed_kmh == pytest.approx(36.0, abs=0.5)
    assert fixes[2].time - fixes[0].time == 2


def test_gpx10_speed_and_course_and_naive_time():
    (fix,) = parse_gpx(GPX10)
    assert fix.speed_kmh == pytest.approx(90.0)
    assert fix.track_deg == pytest.approx(10.0)
    assert fix.lat == -33.9


@pytest.mark.parametrize("data", ["", "not xml", "<html><body/></html>", b"\x00\xff<gpx"])
def test_not_gpx_raises_clear_error(data):
    with pytest.raises(GpxError):
        parse_gpx(data)


def test_demo_track_is_a_plausible_highway_minute():
    track = load_track(DEMO)
    assert len(track.fixes) == 61
    assert track.duration_s == 60
    assert track.skipped == 0
    speeds = [f.speed_kmh for f in track.fixes]
    assert all(90 < s < 125 for s in speeds)
    assert max(speeds) > 115
    headings = [f.track_deg for f in track.fixes]
    assert all(55 < h < 85 for h in headings)


def test_load_track_errors(tmp_path):
    with pytest.raises(TrackError, match="cannot read"):
        load_track(tmp_path / "missing.gpx")
    empty = tmp_path / "empty.nmea"
    empty.write_text("junk\n$GPXXX\n")
    with pytest.raises(TrackError, match="no usable fix"):
        load_track(empty)
    broken = tmp_path / "broken.gpx"
    broken.write_text("<gpx><trk>")
    with pytest.raises(TrackError, match="not a GPX"):
        load_track(broken)
