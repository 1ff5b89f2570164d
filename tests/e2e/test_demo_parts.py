"""Fast checks of the demo's own logic and of the shipped systemd unit (no hass needed)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from demo.agent_process import AgentLayout, AgentOptions, pair_argv, run_argv
from demo.expected import SignalValues
from demo.ha_config import build_configuration
from demo.pairing import PairingFlowError, _fill_form
from vehicle_agent.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _exec_start(unit: Path) -> list[str]:
    """The ExecStart command of a systemd unit, continuation lines joined."""
    text = unit.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line.removeprefix("ExecStart="))
    raise AssertionError("no ExecStart")


def test_systemd_unit_runs_a_valid_agent_command_line() -> None:
    """deploy/carhub-agent.service starts `vehicle-agent run` with options the CLI accepts."""
    argv = _exec_start(ROOT / "deploy" / "carhub-agent.service")
    assert Path(argv[0]).name == "vehicle-agent"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    assert args.can_interface == "socketcan"
    assert args.can_channel == "can0"


def test_systemd_unit_puts_the_controller_in_listen_only_mode() -> None:
    """The unit configures can0 listen-only before the agent starts."""
    text = (ROOT / "deploy" / "carhub-agent.service").read_text(encoding="utf-8")
    pre = [line for line in text.splitlines() if line.startswith("ExecStartPre=")]
    assert any("listen-only on" in line for line in pre)


def test_demo_command_lines_are_accepted_by_the_agent_cli(tmp_path: Path) -> None:
    """The demo starts `run` and `pair` with options the real parser accepts."""
    layout = AgentLayout(root=tmp_path)
    opts = AgentOptions(voice_model=tmp_path / "model")
    parser = build_parser()
    run = parser.parse_args(run_argv(layout, opts)[1:])
    assert run.loop and run.voice_inbox == layout.inbox and run.journal == layout.journal
    pair = parser.parse_args(pair_argv(layout, opts, port=1234, zeroconf=False, loopback=True)[1:])
    assert pair.host == "127.0.0.1" and pair.port == 1234 and pair.no_zeroconf
    # By default the demo speaks English: no model directory, pocketsphinx picks it up.
    english = parser.parse_args(run_argv(layout, AgentOptions())[1:])
    assert english.voice_language == "en" and english.voice_model is None
    assert english.voice_inbox == layout.inbox


def test_signal_values_match_numbers_with_tolerance_and_flags_as_on_off() -> None:
    """HA state strings are compared with decoded values the way the check needs."""
    speed = SignalValues()
    for v in (29.4, 41.2, 73.0):
        speed.add(v)
    assert speed.matches("41.2") and speed.matches("41.25")
    assert not speed.matches("41.3") and not speed.matches("unknown")
    flag = SignalValues()
    flag.add(True)
    assert flag.matches("on") and not flag.matches("off")
    gear = SignalValues()
    gear.add("D")
    assert gear.matches("d") and not gear.matches("p")


def test_config_flow_form_is_answered_like_the_ui() -> None:
    """Known fields get the car's values, others their defaults; unknown required ones fail."""
    values = {"host": "127.0.0.1", "port": 8767, "code": "12345678", "listen_port": 40000}
    form = {
        "step_id": "user",
        "data_schema": [
            {"name": "host", "required": True},
            {"name": "port", "required": True, "default": 8767},
            {"name": "code", "required": True},
            {"name": "listen_port", "required": True, "default": 8766},
            {"name": "external_url", "optional": True},
            {"name": "retries", "required": False, "default": 3},
        ],
    }
    assert _fill_form(form, values) == {
        "host": "127.0.0.1",
        "port": 8767,
        "code": "12345678",
        "listen_port": 40000,
        "retries": 3,
    }
    with pytest.raises(PairingFlowError):
        _fill_form({"step_id": "x", "data_schema": [{"name": "pin", "required": True}]}, values)


def test_home_assistant_config_stays_on_loopback_without_default_config() -> None:
    """configuration.yaml binds HTTP to 127.0.0.1, pulls no default_config, and the check's
    variant sends no multicast (no zeroconf)."""
    config = build_configuration(port=8123, location=(52.0, 5.0))
    assert config["http"]["server_host"] == "127.0.0.1"
    assert config["http"]["server_port"] == 8123
    # The only proxy trusted for X-Forwarded-For is the demo's own nginx on this host.
    assert config["http"]["trusted_proxies"] == ["127.0.0.1"]
    assert "default_config" not in config
    assert "zeroconf" in config
    quiet = build_configuration(port=8123, location=(52.0, 5.0), zeroconf=False)
    assert "zeroconf" not in quiet


def test_garage_door_takes_the_form_each_release_accepts() -> None:
    """Newest Home Assistant refuses ``cover: - platform: template``; 2025.4 knows nothing else."""
    modern = build_configuration(port=8123, location=(52.0, 5.0))
    assert "cover" not in modern
    assert [c["name"] for c in modern["template"][0]["cover"]] == ["Garage door"]
    oldest = build_configuration(port=8123, location=(52.0, 5.0), modern_template_cover=False)
    assert "cover" not in oldest["template"][0]
    assert list(oldest["cover"][0]["covers"]) == ["garage_door"]
    # Lights use the template key on both releases.
    for config in (modern, oldest):
        assert "light" not in config
        names = [light["name"] for light in config["template"][0]["light"]]
        assert names == ["Living room light", "Porch light"]
