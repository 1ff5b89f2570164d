"""`vehicle-agent decode` and `vehicle-agent dbc-check` through main(argv)."""

import json

import pytest

from tests.data_paths import CAN_LOG, DBC_DIR
from vehicle_agent.cli import main
from vehicle_agent.vin import is_valid_vin

LOG = CAN_LOG
PT = DBC_DIR / "toyota_new_mc_pt_generated.dbc"
ADAS = DBC_DIR / "toyota_adas.dbc"


@pytest.fixture
def small_log(tmp_path):
    """The first 3000 frames of the RAV4 log plus one corrupt line and one short frame."""
    lines = LOG.read_text().splitlines()[:3000]
    lines.insert(10, "(46408.6) can0 garbage")
    lines.append("(46409.9) can0 0B4#0102")  # SPEED with 2 bytes instead of 8
    lines.append("(46409.9) can0 0B4#0102")
    path = tmp_path / "small.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_decode_frames_with_bus_map(small_log, capsys):
    rc = main(
        ["decode", "--log", str(small_log), "--bus-map", f"can0={PT}", "--bus-map", f"can1={ADAS}"]
    )
    assert rc == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert records and set(records[0]) == {"t", "bus", "id", "message", "signals"}
    speed = next(r for r in records if r["message"] == "SPEED")
    assert speed["bus"] == "can0" and speed["id"] == 0xB4
    assert 25 <= speed["signals"]["SPEED"] <= 80
    gear = next(r for r in records if r["message"] == "GEAR_PACKET")
    assert gear["signals"]["GEAR"] == "D"  # value names printed as strings
    assert {r["bus"] for r in records} == {"can0", "can1"}
    assert "3002 frames read" in err
    assert "2 decode errors (1 IDs)" in err
    assert "unknown IDs" in err
    assert "DBC statements repaired or skipped" in err and "line 569" in err


def test_decode_with_one_dbc_for_all_buses(small_log, capsys):
    assert main(["decode", "--log", str(small_log), "--dbc", str(PT)]) == 0
    out, _ = capsys.readouterr()
    assert '"message": "SPEED"' in out


def test_decode_with_profile_prints_vss_updates(capsys):
    rc = main(
        [
            "decode",
            "--log",
            str(LOG),
            "--profile",
            "toyota_rav4",
            "--dbc-dir",
            str(DBC_DIR),
            "--fast",
        ]
    )
    assert rc == 0
    out, err = capsys.readouterr()
    updates = [json.loads(line) for line in out.splitlines()]
    assert all(set(u) == {"t", "path", "value"} for u in updates)
    last = {u["path"]: u["value"] for u in updates}
    assert last["Vehicle.Powertrain.Transmission.SelectedGear"] == "D"
    assert is_valid_vin(last["Vehicle.VehicleIdentification.VIN"])
    assert max(u["value"] for u in updates if u["path"] == "Vehicle.Speed") > 70
    assert "98800 frames read" in err and "14 VSS paths" in err


def test_profile_dbcs_from_dbc_options(small_log, capsys):
    rc = main(
        [
            "decode",
            "--log",
            str(small_log),
            "--profile",
            "toyota_rav4",
            "--dbc",
            str(PT),
            "--dbc",
            str(ADAS),
        ]
    )
    assert rc == 0
    assert "Vehicle.Speed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--log", "/nonexistent.log", "--dbc", str(PT)], "log file not found"),
        (["--log", str(LOG), "--dbc", "/nonexistent.dbc"], "DBC file not found"),
        (["--log", str(LOG)], "give --dbc"),
        (["--log", str(LOG), "--bus-map", "can0"], "BUS=FILE"),
        (["--log", str(LOG), "--dbc", str(PT), "--speed", "0"], "--speed must be > 0"),
        (["--log", str(LOG), "--profile", "/nonexistent.yaml"], "profile not found"),
    ],
)
def test_decode_errors_exit_2_without_traceback(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("CARHUB_DBC_DIR", raising=False)
    assert main(["decode", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_bad_profile_yaml_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsignals: {Vehicle.Speed: {source: {bus: can0}}}\n")
    assert main(["decode", "--log", str(LOG), "--profile", str(bad)]) == 2
    assert "needs 'message' and 'signal'" in capsys.readouterr().err


def test_bad_dbc_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.dbc"
    bad.write_text("not a dbc\n")
    assert main(["decode", "--log", str(LOG), "--dbc", str(bad)]) == 2
    assert "bad.dbc" in capsys.readouterr().err


def test_dbc_check(tmp_path, capsys):
    bad = tmp_path / "bad.dbc"
    bad.write_text("not a dbc\n")
    assert main(["dbc-check", *map(str, sorted(DBC_DIR.glob("*.dbc")))]) == 0
    out = capsys.readouterr().out
    assert "toyota_adas.dbc: 32 messages" in out
    assert "line 569: repaired" in out and "line 1654: skipped" in out
    assert main(["dbc-check", str(PT), str(bad)]) == 2
    assert "bad.dbc: ERROR" in capsys.readouterr().err
