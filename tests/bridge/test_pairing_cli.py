"""The pairing command lines end to end: carhub-bridge ca/pair/revoke and vehicle-agent pair/homes.

The car runs as a real `vehicle-agent pair` process on 127.0.0.1 (no zeroconf);
the home side runs in-process through `carhub-bridge`'s main().
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge import cli as bridge_cli
from bridge.pki import HomeCA
from vehicle_agent import cli as agent_cli

ROOT = Path(__file__).resolve().parents[2]
CODE = "24681357"


def _start_car(state_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vehicle_agent.cli",
            "pair",
            "--state-dir",
            str(state_dir),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-zeroconf",
            "--vin",
            "WVWZZZ1JZXW000001",
            "--make",
            "VW",
            "--model",
            "Golf",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(lines) < 50:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Pairing port:"):
            return proc, int(line.split(":")[1]), lines
    proc.kill()
    raise AssertionError(f"the car did not start: {lines} {proc.communicate()[1]}")


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err


def test_ca_init_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca_dir = tmp_path / "certs"
    args = ["ca", "init", "--dir", str(ca_dir), "--hostname", "hub.lan", "--ip", "127.0.0.1"]
    assert bridge_cli.main(args) == 0
    hub_id = HomeCA.load(ca_dir).hub_id
    assert hub_id in capsys.readouterr().out
    assert bridge_cli.main(["ca", "init", "--dir", str(ca_dir)]) == 0
    assert "already exists" in capsys.readouterr().out
    assert bridge_cli.main(["ca", "show", "--dir", str(ca_dir)]) == 0
    out = capsys.readouterr().out
    assert hub_id in out and "hub.lan" in out and "127.0.0.1" in out
    assert bridge_cli.main(["ca", "show", "--dir", str(tmp_path / "none")]) == 1


def test_pair_revoke_and_homes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca_dir = tmp_path / "certs"
    state = tmp_path / "agent"
    assert bridge_cli.main(["ca", "init", "--dir", str(ca_dir), "--ip", "127.0.0.1"]) == 0
    hub_id = HomeCA.load(ca_dir).hub_id
    proc, port, banner = _start_car(state, "--code", CODE)
    try:
        assert any(line.startswith("Pairing code:  2468 1357") for line in banner)
        pair = ["pair", "--host", "127.0.0.1", "--port", str(port), "--ca-dir", str(ca_dir)]
        pair += ["--hub-url", "wss://127.0.0.1:8766/carhub"]
        capsys.readouterr()
        assert bridge_cli.main([*pair, "--code", "13572468"]) == 2  # wrong: window stays open
        assert "wrong code" in capsys.readouterr().err
        assert bridge_cli.main([*pair, "--code", "2468-1357"]) == 0
        paired = json.loads(capsys.readouterr().out)
    finally:
        rc, out, err = _finish(proc)
    assert rc == 0, err
    assert f"Paired with home {hub_id}" in out
    assert paired["make"] == "VW" and paired["model"] == "Golf"
    assert paired["vin"] == "WVWZZZ1JZXW000001"
    vehicle_id = paired["vehicle_id"]
    assert (state / "vehicle_id").read_text().strip() == vehicle_id

    assert agent_cli.main(["homes", "--state-dir", str(state), "list", "--json"]) == 0
    [home] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert home["hub_id"] == hub_id
    assert home["lan_urls"] == ["wss://127.0.0.1:8766/carhub"]
    assert home["certificate_expires"] is not None

    assert bridge_cli.main(["revoke", vehicle_id, "--ca-dir", str(ca_dir)]) == 0
    assert f"revoked {vehicle_id}" in capsys.readouterr().out
    ca = HomeCA.load(ca_dir)
    assert all(ca.is_revoked(r.serial) for r in ca.issued_certificates())
    assert bridge_cli.main(["revoke", "no-such-car", "--ca-dir", str(ca_dir)]) == 1

    assert agent_cli.main(["homes", "--state-dir", str(state), "remove", hub_id]) == 0
    assert not (state / "homes" / hub_id).exists()
    assert agent_cli.main(["homes", "--state-dir", str(state), "remove", hub_id]) == 1
    capsys.readouterr()
    assert agent_cli.main(["homes", "--state-dir", str(state), "list"]) == 0
    assert "not paired" in capsys.readouterr().out


def test_car_window_expiry_exit_code(tmp_path: Path) -> None:
    proc, _, _ = _start_car(tmp_path / "agent", "--window", "0.3")
    rc, _, err = _finish(proc)
    assert rc == 3
    assert "expired" in err
    assert not list((tmp_path / "agent" / "homes").glob(".pending-*"))


def test_pair_with_nothing_listening_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_dir = tmp_path / "certs"
    assert bridge_cli.main(["ca", "init", "--dir", str(ca_dir), "--ip", "127.0.0.1"]) == 0
    # no --hub-url and only loopback in the certificate: nothing a car could dial
    args = ["pair", "--host", "127.0.0.1", "--port", "9", "--code", CODE, "--ca-dir", str(ca_dir)]
    assert bridge_cli.main(args) == 1
    assert "no hub URL" in capsys.readouterr().err
    args += ["--hub-url", "wss://127.0.0.1:8766/carhub", "--timeout", "5"]
    assert bridge_cli.main(args) == 1
    assert "cannot reach" in capsys.readouterr().err
