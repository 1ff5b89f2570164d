"""`vehicle-agent gps` with a recorded track."""

import json
from pathlib import Path

import pytest

from vehicle_agent.cli import main
from vehicle_agent.commands.gps import parse_hostport

DEMO = str(Path(__file__).resolve().parents[2] / "vehicle_agent" / "data" / "demo_track.gpx")


def test_track_fixes(capsys):
    assert main(["gps", "--track", DEMO, "--speed", "0", "--count", "3"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == 3
    assert out[0]["lat"] == pytest.approx(52.08123)
    assert 90 < out[1]["speed_kmh"] < 125


def test_track_vss(capsys):
    assert main(["gps", "--track", DEMO, "--speed", "0", "--count", "1", "--vss"]) == 0
    paths = [json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()]
    assert "Vehicle.CurrentLocation.Latitude" in paths
    assert "Vehicle.CurrentLocation.Heading" in paths


def test_errors(capsys, tmp_path):
    assert main(["gps", "--track", str(tmp_path / "nope.gpx")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["gps", "--gpsd", "host:notaport"]) == 2
    assert main(["gps", "--track", DEMO, "--speed", "-1"]) == 2


def test_parse_hostport():
    assert parse_hostport("localhost") == ("localhost", 2947)
    assert parse_hostport("127.0.0.1:3000") == ("127.0.0.1", 3000)
    assert parse_hostport("[::1]:3001") == ("::1", 3001)
    with pytest.raises(ValueError):
        parse_hostport(":0")
