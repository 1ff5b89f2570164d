"""`vehicle-agent trips list|export` on a trip log recorded from the demo GPS track."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from vehicle_agent.cli import main
from vehicle_agent.gps import load_track
from vehicle_agent.gps.gpx import parse_gpx
from vehicle_agent.trip_log import TripLog
from vehicle_agent.trips import SPEED, TripRecorder

TRACK = Path(__file__).resolve().parents[2] / "vehicle_agent" / "data" / "demo_track.gpx"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """Two finished trips (the demo track, then a short one without fixes) and a running one."""
    log = TripLog(tmp_path / "trips.db")
    recorder = TripRecorder(log)
    fixes = load_track(TRACK).fixes
    for fix in fixes:
        for path, value, ts in fix.to_vss():
            recorder.observe(path, value, ts)
    recorder.finish(fixes[-1].time)
    t0 = fixes[-1].time + 600
    recorder.observe(SPEED, 36.0, t0)
    recorder.finish(t0 + 100)
    recorder.observe(SPEED, 20.0, t0 + 1000)  # still running
    log.close()
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_list_human_and_json(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "trips", "list", "--state-dir", str(state_dir))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3 and "(running)" in lines[2]
    assert "1.000 km" in lines[1]  # 36 km/h for 100 s
    code, out = run(capsys, "trips", "list", "--json", "--last", "2", "--state-dir", str(state_dir))
    items = [json.loads(line) for line in out.splitlines()]
    assert [(i["trip"], i["running"]) for i in items] == [(2, False), (3, True)]
    assert items[0]["distance_km"] == 1.0 and items[0]["average_speed_kmh"] == 36.0


def test_csv_export(state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "trips.csv"
    code, _ = run(capsys, "trips", "export", "--state-dir", str(state_dir), "--out", str(out_file))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert [r["trip"] for r in rows] == ["1", "2"]  # the running trip is not exported
    summaries = {r.id: r.summary for r in TripLog(state_dir / "trips.db").trips()}
    first = rows[0]
    assert float(first["distance_km"]) == summaries[1]["distance_km"]
    assert first["distance_source"] == "gps"
    assert float(first["start_latitude"]) == summaries[1]["start"]["latitude"]
    assert first["start"].endswith("Z") and first["reason"] == "agent stopped"
    # No fix during the second trip: it starts and ends where the last fix was.
    assert rows[1]["start_latitude"] == rows[1]["end_latitude"] == rows[0]["end_latitude"]


def test_gpx_export_round_trips(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "trips", "export", "--format", "gpx", "--state-dir", str(state_dir))
    assert code == 0
    points = parse_gpx(out)  # our own reader parses what we write
    fixes = load_track(TRACK).fixes
    assert out.count("<trk>") == 2  # the second trip has its start point only
    log = TripLog(state_dir / "trips.db")
    assert len(points) == len(log.points(1)) + 1 and len(log.points(1)) >= 12
    assert points[0].lat == pytest.approx(fixes[0].lat, abs=1e-7)
    assert points[0].time == fixes[0].time


def test_missing_log_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trips", "list", "--state-dir", str(tmp_path)]) == 1
    assert "no trips recorded" in capsys.readouterr().err
