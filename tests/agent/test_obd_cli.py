"""`vehicle-agent obd` against the built-in simulated ECU."""

import json

import pytest

from vehicle_agent.cli import main
from vehicle_agent.obd.simulator import DEFAULT_VIN


def lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_vin(capsys):
    assert main(["obd", "--simulate", "vin"]) == 0
    assert lines(capsys.readouterr().out) == [{"vin": DEFAULT_VIN}]


def test_read_named_pids(capsys):
    assert main(["obd", "--simulate", "read", "speed", "0x0C", "A6"]) == 0
    out = lines(capsys.readouterr().out)
    assert [(o["name"], o["value"], o["unit"]) for o in out] == [
        ("speed", 0, "km/h"),
        ("rpm", 780.0, "rpm"),
        ("odometer", 48213.4, "km"),
    ]


def test_read_unsupported_pid_is_not_asked(capsys):
    assert main(["obd", "--simulate", "read", "maf"]) == 1
    assert "not supported by this ECU" in capsys.readouterr().err


def test_pids_and_dtcs(capsys):
    assert main(["obd", "--simulate", "pids"]) == 0
    pids = {o["pid"] for o in lines(capsys.readouterr().out)}
    assert {"0x0D", "0x0C", "0xA6"} <= pids
    assert main(["obd", "--simulate", "dtcs", "--kind", "all"]) == 0
    dtcs = lines(capsys.readouterr().out)
    assert [(d["code"], d["kind"]) for d in dtcs] == [
        ("P0301", "stored"),
        ("P0420", "stored"),
        ("P0171", "pending"),
        ("P0420", "permanent"),
    ]


def test_clear_dtcs_needs_yes(capsys):
    assert main(["obd", "--simulate", "clear-dtcs"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["obd", "--simulate", "clear-dtcs", "--yes"]) == 0
    assert lines(capsys.readouterr().out) == [{"cleared": True}]


def test_bad_arguments(capsys):
    assert main(["obd", "--simulate", "read", "nonsense"]) == 2
    assert "not a PID" in capsys.readouterr().err
    assert main(["obd", "--simulate", "vin", "0D"]) == 2
    assert main(["obd", "--interface", "no-such-interface", "vin"]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_help_says_obd_transmits(capsys):
    with pytest.raises(SystemExit):
        main(["obd", "--help"])
    assert "TRANSMIT" in capsys.readouterr().out


def test_elm327_target_is_checked(capsys):
    assert main(["obd", "--elm327", "not-a-target", "vin"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert main(["obd", "--simulate", "--elm327", "127.0.0.1:35000", "vin"]) == 2
    assert "exclude" in capsys.readouterr().err
