"""The ELM327 source against the real ELM327-emulator (PyPI), on a pty and on TCP.

* ``vehicle-agent obd --elm327 <pty>``: supported PIDs, PIDs, VIN, DTCs, and
  ``clear-dtcs`` only with ``--yes``;
* the run loop (``AgentRuntime`` + ``ObdService``) over TCP: polled values reach
  the state store; the dongle freezes mid-poll (a TCP relay stops passing
  bytes) and comes back; garbage on the line; the battery runs down (polling
  pauses, only ATRV probes and ATLP reach the dongle, no OBD request) and
  charges again (polling resumes);
* the emulator killed and restarted behind the same device path: the client
  reconnects with back-off, never raising anything but ObdError.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from tests.agent.elm327_testing import ElmEmulator, TcpRelay
from tests.agent.hub_testing import WAIT, pair, running_home, wait_until
from vehicle_agent.cli import build_parser, main
from vehicle_agent.commands import run as run_cmd
from vehicle_agent.obd.elm327 import Elm327Client, ElmOptions
from vehicle_agent.obd.errors import ObdError, ObdTransportError
from vehicle_agent.obd.power import PowerPolicy
from vehicle_agent.obd_service import BATTERY_VOLTAGE, ObdOptions, ObdService
from vehicle_agent.pipeline import CanPipeline
from vehicle_agent.profile import load_profile
from vehicle_agent.runtime import AgentRuntime, RuntimeOptions

FAST = ElmOptions(
    request_timeout_s=1.0,
    command_timeout_s=1.0,
    reset_timeout_s=2.0,
    connect_timeout_s=1.0,
    initial_backoff_s=0.1,
    max_backoff_s=0.4,
)


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_obd_command_on_a_pty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    emulator = ElmEmulator(tmp_path, dtcs="stored=0301,0420;pending=0171")
    await emulator.start()
    try:
        dongle = ["obd", "--elm327", emulator.target]

        def run(*args: str) -> int:
            return main([*dongle, *args])

        assert await asyncio.to_thread(run, "pids") == 0
        pids = {o["pid"] for o in _lines(capsys.readouterr().out)}
        assert {"0x0C", "0x0D", "0x42", "0xA6"} <= pids and "0x0A" not in pids

        assert await asyncio.to_thread(run, "read", "speed", "rpm", "0x42") == 0
        read = {o["name"]: o for o in _lines(capsys.readouterr().out)}
        assert set(read) == {"speed", "rpm", "control_module_voltage"}
        assert read["control_module_voltage"]["value"] == 14.2
        assert read["speed"]["unit"] == "km/h" and 0 <= read["speed"]["value"] <= 255

        assert await asyncio.to_thread(run, "vin") == 0
        (vin,) = _lines(capsys.readouterr().out)
        assert re.fullmatch(r"[A-HJ-NPR-Z0-9]{17}", str(vin["vin"])), vin

        assert await asyncio.to_thread(run, "dtcs") == 0
        dtcs = [(d["code"], d["kind"]) for d in _lines(capsys.readouterr().out)]
        assert dtcs == [("P0301", "stored"), ("P0420", "stored"), ("P0171", "pending")]

        # Clearing needs --yes; without it nothing is sent and the codes stay.
        assert await asyncio.to_thread(run, "clear-dtcs") == 2
        assert "--yes" in capsys.readouterr().err
        async with Elm327Client(emulator.target, options=FAST) as client:
            assert [d.code for d in await client.read_all_dtcs()] == ["P0301", "P0420", "P0171"]
            # ATZ on a new connection resets the emulator's "cleared" flag, so
            # clear and read back on one connection.
            await client.clear_dtcs()
            assert await client.read_all_dtcs() == []
            assert client.version == "ELM327 v1.5" and client.protocol == "A6"
        assert await asyncio.to_thread(run, "clear-dtcs", "--yes") == 0
        assert _lines(capsys.readouterr().out) == [{"cleared": True}]
    finally:
        await emulator.stop()
    # The dongle is gone: a usage/bus error, not a traceback.
    assert await asyncio.to_thread(main, ["obd", "--elm327", str(tmp_path / "nothing"), "vin"]) == 2
    assert "cannot open the dongle" in capsys.readouterr().err


async def test_dongle_pulled_out_and_plugged_back_reconnects(tmp_path: Path) -> None:
    emulator = ElmEmulator(tmp_path)
    await emulator.start()
    client = Elm327Client(emulator.target, options=FAST)
    try:
        await client.start()
        assert (await client.read_pid(0x42)).value == 14.2
        await emulator.stop()
        # Every request fails with an ObdError (never anything else) while it is gone.
        failures = 0
        for _ in range(10):
            try:
                await client.read_pid(0x42)
            except ObdError:
                failures += 1
            await asyncio.sleep(0.05)
        assert failures == 10 and not client.running
        emulator.set_voltage(13.6)
        await emulator.start()
        deadline = time.monotonic() + WAIT
        value = None
        while value is None and time.monotonic() < deadline:
            try:
                value = (await client.read_pid(0x42)).value
            except ObdTransportError:
                await asyncio.sleep(0.1)
        assert value == 13.6
        assert client.connects == 2 and client.running
    finally:
        await client.close()
        await emulator.stop()


async def test_run_loop_over_tcp_freeze_garbage_and_battery(tmp_path: Path) -> None:
    emulator = ElmEmulator(tmp_path, tcp=True, voltage=14.1)
    await emulator.start()
    relay = TcpRelay(emulator.port)
    await relay.start()
    profile = load_profile("obd_generic")
    pipeline = CanPipeline.from_profile(profile, clock=time.time)
    store = pipeline.store
    client = Elm327Client(f"127.0.0.1:{relay.port}", options=FAST)
    service = ObdService(
        client,
        store,
        profile,
        options=ObdOptions(
            power=PowerPolicy(low_voltage_hold_s=0.3),
            probe_interval_s=0.5,
            idle_check_s=0.05,
            dtc_interval_s=None,
        ),
    )
    # Poll fast: every PID of the profile each 0.1 s.
    for poll in service.poller._mode01.values():
        poll.interval = 0.1
    runtime = AgentRuntime(
        pipeline=pipeline,
        vehicle={"vehicle_id": "car-elm", "vin": "", "make": "", "model": ""},
        sources=[service.updates()],
        obd=service,
        options=RuntimeOptions(send_interval_s=0.05),
    )
    runtime.add_task(service.probe_loop)
    task: asyncio.Task[None] | None = None
    try:
        await client.start()
        task = asyncio.create_task(runtime.run())
        await wait_until(lambda: store.value(BATTERY_VOLTAGE) == 14.1, "battery in the store")
        await wait_until(
            lambda: store.value("Vehicle.Powertrain.CombustionEngine.Speed") is not None, "rpm"
        )
        assert store.value("Vehicle.Powertrain.CombustionEngine.ECT") is not None

        # The dongle freezes mid-poll: requests time out, the link is dropped.
        relay.frozen = True
        await wait_until(lambda: not client.running, "frozen dongle dropped")
        assert task is not None and not task.done()
        emulator.set_voltage(13.9)
        relay.frozen = False
        await wait_until(lambda: store.value(BATTERY_VOLTAGE) == 13.9, "values after the freeze")
        assert client.connects >= 2

        # Garbage on the line, between and inside answers: no crash, right values.
        emulator.set_voltage(14.4)
        for noise in (b"\x00\xff\xfe#%&\r", b"7E8 ZZ\r", b"\r\r>", b"garbage" * 50, b"\x1b[0m>"):
            relay.inject(noise)
            await asyncio.sleep(0.05)
        await wait_until(lambda: store.value(BATTERY_VOLTAGE) == 14.4, "values after garbage")
        assert client.stats.junk_responses >= 1
        assert not task.done()

        # The battery runs down: polling pauses, the dongle sleeps, and only
        # ATRV probes reach it; no OBD request wakes the car.
        emulator.set_voltage(11.8)
        await wait_until(lambda: not service.poller.polling, "polling paused by the battery")
        await wait_until(lambda: client.sleeps >= 1, "ATLP sent")
        await asyncio.sleep(0.5)  # a request in flight may finish
        relay.sent.clear()
        emulator.set_voltage(11.7)  # only the ATRV probe can bring this to the store
        await asyncio.sleep(1.6)
        assert store.value(BATTERY_VOLTAGE) == 11.7
        commands = [c for c in relay.sent.decode(errors="replace").split("\r") if c]
        assert "ATRV" in commands, commands
        obd_requests = [c for c in commands if re.fullmatch(r"[0-9A-F]{2,14}", c)]
        assert obd_requests == [], commands
        assert service.probes >= 1

        # The alternator charges again: the ATRV probe sees it, polling resumes.
        emulator.set_voltage(14.3)
        await wait_until(lambda: service.poller.polling, "polling resumed")
        await wait_until(lambda: store.value(BATTERY_VOLTAGE) == 14.3, "polled after resume")
        assert service.poller.stats.pauses == 1 and service.poller.stats.resumes == 2
    finally:
        runtime.stop()
        if task is not None:
            await asyncio.wait_for(task, WAIT)
        await service.close()
        await relay.close()
        await emulator.stop()


async def test_clone_without_low_power_or_voltmeter(tmp_path: Path) -> None:
    """A "v1.5" clone that answers ``?`` to ATLP and ATRV: used without them."""
    emulator = ElmEmulator(tmp_path, missing="ATLP,ATRV", voltage=12.0)
    await emulator.start()
    profile = load_profile("obd_generic")
    store = CanPipeline.from_profile(profile, clock=time.time).store
    client = Elm327Client(emulator.target, options=FAST)
    service = ObdService(client, store, profile, options=ObdOptions(probe_interval_s=0.2))
    try:
        await client.start()
        assert client.version == "ELM327 v1.5"
        await client.enter_low_power()
        assert not client.asleep and client.sleeps == 0
        assert await client.read_adapter_voltage() is None
        assert client.missing_commands == {"ATLP", "ATRV"}
        # The paused-battery probe falls back to PID 0x42 from the ECU.
        assert await service._probe_voltage(profile.signals[BATTERY_VOLTAGE]) == 12.0
        assert (await client.read_pid(0x0D)).spec.name == "speed"
    finally:
        await service.close()
        await emulator.stop()


async def test_run_command_with_elm327_reaches_a_hub(tmp_path: Path) -> None:
    """``vehicle-agent run --profile obd_generic --elm327 HOST:PORT`` as the README shows it."""
    emulator = ElmEmulator(tmp_path, tcp=True, dtcs="stored=0420", voltage=14.1)
    await emulator.start()
    state_dir = tmp_path / "car"
    try:
        async with running_home(tmp_path / "home") as home:
            await pair(home, state_dir)
            args = build_parser().parse_args(
                [
                    *["run", "--profile", "obd_generic", "--elm327", emulator.target],
                    *["--state-dir", str(state_dir), "--send-interval", "0.1"],
                    *["--duration", "6"],
                ]
            )
            assert await asyncio.wait_for(run_cmd._main(args), WAIT) == 0
            state = home.handler.merged_state()
            assert state["Vehicle.LowVoltageBattery.CurrentVoltage"] == 14.1
            assert "Vehicle.Powertrain.CombustionEngine.Speed" in state
            assert [e["data"]["code"] for e in home.handler.events("dtc_appeared")] == ["P0420"]
    finally:
        await emulator.stop()
    bad = build_parser().parse_args(["run", "--profile", "obd_generic", "--elm327", "nowhere"])
    with pytest.raises(run_cmd.UsageError, match="--elm327"):
        await run_cmd._main(bad)
