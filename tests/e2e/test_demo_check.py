"""End to end: `python -m demo --check` with a real `hass`, a real agent and real sockets.

One run of the demo's check (what `make demo DEMO_ARGS=--check` does) is shared
by the tests below; each asserts one outcome from the report the check writes.
Everything listens on and dials 127.0.0.1: the check configures Home
Assistant's network to the loopback adapter, pairs through the manual
config-flow step and turns the car's zeroconf advertisement off.
Run with ``-p no:homeassistant`` (the Makefile and scripts/run_tests.sh do).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Home Assistant starts in about 10 s here (a minute on a cold machine); the
# whole story takes about two minutes. The bound only stops a hung run.
CHECK_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def check_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the demo's check once; return its report plus its console output."""
    work = tmp_path_factory.mktemp("demo")
    report = work / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "demo", "--check", "--work-dir", str(work), "--report", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        check=False,
    )
    assert report.exists(), f"no report; output:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    result["returncode"] = proc.returncode
    result["output"] = proc.stdout + proc.stderr
    result["by_key"] = {s["key"]: s for s in result["steps"]}
    return result


def _step(run: dict[str, Any], key: str) -> dict[str, Any]:
    step = run["by_key"].get(key)
    assert step is not None, f"step {key!r} did not run; output:\n{run['output'][-3000:]}"
    assert step["passed"], f"step {key!r} failed: {step['detail']}\n{run['output'][-3000:]}"
    return step


def test_home_assistant_runs_onboarded_with_the_integration(check_run: dict[str, Any]) -> None:
    """A real hass came up with the integration copied in, onboarded, demo home exposed."""
    _step(check_run, "config")
    assert "RUNNING" in _step(check_run, "home_assistant")["detail"]


def test_paired_through_the_config_flow(check_run: dict[str, Any]) -> None:
    """The code the car printed, typed into the config flow, created a loaded entry."""
    _step(check_run, "pairing_window")
    assert "loaded" in _step(check_run, "pairing")["detail"]
    assert check_run["notes"]["pairing_path"] == "manual (user step)"


def test_entity_states_match_values_decoded_from_the_log(check_run: dict[str, Any]) -> None:
    """Every signal-fed entity shows a value the CAN log really contains."""
    _step(check_run, "entities")
    assert check_run["notes"]["entities_checked"] >= 10
    assert check_run["notes"]["entity_mismatches"] == []


def test_position_follows_the_gps_track(check_run: dict[str, Any]) -> None:
    """The device tracker's position lies on the recorded GPS track."""
    _step(check_run, "location")


def test_light_turned_on_by_voice(check_run: dict[str, Any]) -> None:
    """An English spoken command (the default), recognised in the car, switched the light on."""
    _step(check_run, "voice_en")


def test_notification_reached_the_car(check_run: dict[str, Any]) -> None:
    """carhub.notify_vehicle in Home Assistant shows up in the car's journal."""
    _step(check_run, "notify")
    assert check_run["notes"]["notify_ms"] is not None


def test_car_reaches_home_only_through_the_reverse_proxy(check_run: dict[str, Any]) -> None:
    """Through nginx (TLS ended by the proxy): address pushed, entities, voice, notification."""
    _step(check_run, "outside")
    outside = check_run["notes"]["outside"]
    assert outside["learned_address"] is True  # the new address came over the link
    assert outside["route"] == "remote" and outside["logged_remote"] is True
    assert outside["entities_updated"] is True and outside["notify"] is True
    assert outside["voice"] == "on"


def test_sigkill_and_restart_lose_no_event(check_run: dict[str, Any]) -> None:
    """Events queued by a killed agent and notifications sent meanwhile arrive exactly once.

    The step runs after the one above, with the agent still dialing only the
    proxy: nothing is lost through the outside path either.
    """
    _step(check_run, "crash_restart")
    crash = check_run["notes"]["crash"]
    assert crash["offline_trip_events"] == 1
    assert crash["notifications"] == [f"Message {i} sent while the car was off" for i in (1, 2, 3)]


def test_commands_spoken_while_home_unreachable_are_answered_not_replayed(
    check_run: dict[str, Any],
) -> None:
    """The driver hears "cannot reach home"; the killed agent's commands never run later."""
    crash = check_run["notes"]["crash"]
    assert crash["offline_commands_heard"] == 2
    assert crash["offline_commands_answered_in_car"] == 2
    assert crash["lights_after_restart"] == {
        "light.living_room_light": "off",
        "light.porch_light": "off",
    }


def test_last_trip_and_time_to_home_shown(check_run: dict[str, Any]) -> None:
    """Stopping the agent ends its trip; the replayed errand shows a falling ETA home."""
    _step(check_run, "home_trip")
    notes = check_run["notes"]["home_trip"]
    assert notes["last_trip_km"] > 0
    assert len(notes["eta_minutes"]) >= 3
    assert notes["eta_minutes"][-1] < notes["eta_minutes"][0]


def test_check_exits_zero_only_when_everything_passed(check_run: dict[str, Any]) -> None:
    """The exit code agrees with the verdicts."""
    all_passed = all(s["passed"] for s in check_run["steps"])
    assert check_run["passed"] == all_passed
    assert check_run["returncode"] == (0 if all_passed else 1)
