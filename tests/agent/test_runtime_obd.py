"""The run loop with OBD-II against the simulated ECU on a python-can virtual bus.

* ``vehicle-agent run --obd`` (its parsed arguments, in this process: the
  virtual bus only spans one process) with a real hub: polled values reach the
  hub, an ignition signal decoded from CAN frames pauses polling (no request on
  the bus) and resumes it, DTCs become ``dtc_appeared`` events and a
  ``clear_dtcs`` command clears them on the ECU and is answered;
* the runtime API with the bundled generic OBD profile: the battery voltage the
  poller reads itself (PID 0x42) pauses polling, a lone 0x42 probe brings it back;
* the store-backed power inputs (stale, string states).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import can
import yaml

from bridge.protocol import MessageType
from tests.agent.hub_testing import WAIT, pair, running_home, wait_until
from vehicle_agent.cli import build_parser
from vehicle_agent.commands import run as run_cmd
from vehicle_agent.obd import ObdClient, PowerPolicy
from vehicle_agent.obd.simulator import SimulatedEcu
from vehicle_agent.obd_service import BATTERY_VOLTAGE, ObdOptions, ObdService, StorePowerInputs
from vehicle_agent.pipeline import CanPipeline
from vehicle_agent.profile import PROFILES_DIR, load_profile, parse_profile
from vehicle_agent.runtime import AgentRuntime, RuntimeOptions
from vehicle_agent.state_store import StateStore

REQUEST_IDS = (0x7DF, 0x7E0)
IGNITION_ID = 0x100
DBC = """VERSION ""

NS_ :

BS_:

BU_: BCM

BO_ 256 IGNITION: 1 BCM
 SG_ ENGINE_RUNNING : 0|1@1+ (1,0) [0|1] "" Vector__XXX
"""
PROFILE = """name: OBD test car
make: Test
model: OBD
buses:
  can0: {dbc: [ignition.dbc]}
defaults: {quiet_period: 0.5}
signals:
  Vehicle.Powertrain.CombustionEngine.IsRunning:
    source: {bus: can0, message: IGNITION, signal: ENGINE_RUNNING}
    datatype: bool
  Vehicle.Speed:
    source: {pid: 0x0D, interval: 0.2}
    unit: km/h
    datatype: float
  Vehicle.Powertrain.CombustionEngine.Speed:
    source: {pid: 0x0C, interval: 0.2}
    unit: rpm
    datatype: int
"""


class Spy:
    """A third handle on the virtual bus that sees every OBD request sent."""

    def __init__(self, channel: str) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.requests: list[can.Message] = []

    def drain(self) -> list[can.Message]:
        """Read what arrived since the last drain; return the OBD requests among it."""
        new = []
        for _ in range(100_000):  # bounded: a burst never exceeds this
            msg = self.bus.recv(timeout=0)
            if msg is None:
                break
            if msg.arbitration_id in REQUEST_IDS:
                new.append(msg)
        self.requests += new
        return new

    def shutdown(self) -> None:
        self.bus.shutdown()


def _pid_of(msg: can.Message) -> tuple[int, int]:
    """(service, pid) of a single-frame request."""
    return msg.data[1], msg.data[2]


async def test_run_obd_on_a_live_bus_syncs_with_a_hub(tmp_path: Path) -> None:
    channel = f"carhub-obd-{uuid.uuid4().hex}"
    (tmp_path / "dbc").mkdir()
    (tmp_path / "dbc" / "ignition.dbc").write_text(DBC)
    (tmp_path / "car.yaml").write_text(PROFILE)
    state_dir = tmp_path / "car"
    ecu_bus = can.Bus(interface="virtual", channel=channel)
    ign_bus = can.Bus(interface="virtual", channel=channel)
    spy = Spy(channel)
    ecu = SimulatedEcu(ecu_bus, stored_dtcs=["P0301"], pending_dtcs=["P0171"])
    ecu.set_pid(0x0D, 42)
    ignition = [True]

    async def ignition_frames() -> None:
        for _ in range(2000):  # 50 ms apart: bounded to 100 s
            ign_bus.send(can.Message(arbitration_id=IGNITION_ID, data=[int(ignition[0])]))
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(ignition_frames())
    agent: asyncio.Task[int] | None = None
    try:
        async with running_home(tmp_path / "home") as home:
            await pair(home, state_dir)
            handler = home.handler
            args = build_parser().parse_args(
                [
                    "run",
                    "--profile",
                    str(tmp_path / "car.yaml"),
                    "--dbc-dir",
                    str(tmp_path / "dbc"),
                    "--can-interface",
                    "virtual",
                    "--can-channel",
                    channel,
                    "--obd",
                    "--state-dir",
                    str(state_dir),
                    "--send-interval",
                    "0.05",
                    "--duration",
                    "60",  # an upper bound; the test stops the agent itself
                ]
            )
            ecu.start()
            agent = asyncio.create_task(run_cmd._main(args))
            await wait_until(lambda: handler.hellos, "the car's hello")
            hello = handler.hellos[0][1]
            assert "command:clear_dtcs" in hello.body["capabilities"]
            assert set(hello.body["signals"]) == {
                "Vehicle.Powertrain.CombustionEngine.IsRunning",
                "Vehicle.Speed",
                "Vehicle.Powertrain.CombustionEngine.Speed",
            }

            # Polled values and the CAN ignition (decoded from the virtual channel) arrive.
            await wait_until(
                lambda: handler.merged_state().get("Vehicle.Speed") == 42.0, "polled speed"
            )
            state = handler.merged_state()
            assert state["Vehicle.Powertrain.CombustionEngine.Speed"] == 780
            assert state["Vehicle.Powertrain.CombustionEngine.IsRunning"] is True

            # DTCs read from the ECU become events.
            await wait_until(lambda: len(handler.events("dtc_appeared")) == 2, "dtc_appeared")
            appeared = {e["data"]["code"]: e["data"] for e in handler.events("dtc_appeared")}
            assert appeared["P0301"]["kind"] == "stored"
            assert appeared["P0171"]["kind"] == "pending"
            assert "misfire" in appeared["P0301"]["description"].lower()

            # clear_dtcs from the hub clears them on the ECU and is answered.
            vehicle_id = handler.hellos[0][0].vehicle_id
            seq = await home.server.send(
                vehicle_id,
                MessageType.COMMAND,
                {"command": "clear_dtcs", "args": {}, "expires_at": time.time() + 30},
            )
            await wait_until(lambda: handler.of(MessageType.COMMAND_RESULT), "command_result")
            result = handler.of(MessageType.COMMAND_RESULT)[0].body
            assert result["command_seq"] == seq and result["ok"] is True, result
            assert ecu.clear_count == 1 and ecu.stored_dtcs == [] and ecu.pending_dtcs == []
            await wait_until(lambda: len(handler.events("dtc_cleared")) == 2, "dtc_cleared")

            # Ignition off: polling stops, nothing more is sent to the ECU.
            spy.drain()
            ignition[0] = False
            await wait_until(
                lambda: (
                    handler.merged_state().get("Vehicle.Powertrain.CombustionEngine.IsRunning")
                    is False
                ),
                "ignition off at the hub",
            )
            await asyncio.sleep(0.6)  # a request in flight when it switched off may finish
            spy.drain()
            quiet_from = time.time()
            await asyncio.sleep(2.0)
            during_off = spy.drain()
            assert during_off == [], [(m.timestamp - quiet_from, m.data.hex()) for m in during_off]

            # Ignition on again: polling resumes and new values flow.
            ecu.set_pid(0x0D, 57)
            ignition[0] = True
            await wait_until(
                lambda: handler.merged_state().get("Vehicle.Speed") == 57.0, "speed after resume"
            )
            resumed = spy.drain()
            assert any(_pid_of(m) == (0x01, 0x0D) for m in resumed)

            agent.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(agent, WAIT)
            agent = None
    finally:
        if agent is not None:
            agent.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(agent, WAIT)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        ecu.stop()
        for bus in (ecu_bus, ign_bus):
            bus.shutdown()
        spy.shutdown()


class RecordingLink:
    def __init__(self, *_: Any) -> None:
        self.sent: list[tuple[MessageType, dict[str, Any]]] = []
        self.connected = True

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, type: MessageType, body: dict[str, Any]) -> int:
        self.sent.append((type, body))
        return len(self.sent)

    def merged(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t, body in self.sent:
            if t == MessageType.STATE:
                out.update({p: i["value"] for p, i in body["signals"].items()})
        return out


def _fast_generic_profile() -> Any:
    """The bundled generic OBD profile with every poll interval cut to 0.1 s."""
    data = yaml.safe_load((PROFILES_DIR / "obd_generic.yaml").read_text())
    for spec in data["signals"].values():
        spec["source"]["interval"] = 0.1
    data["defaults"] = {"quiet_period": 0.3}
    return parse_profile(data, origin=PROFILES_DIR / "obd_generic.yaml")


async def test_battery_read_over_obd_pauses_polling_and_a_probe_resumes_it() -> None:
    channel = f"carhub-obd-{uuid.uuid4().hex}"
    profile = _fast_generic_profile()
    pipeline = CanPipeline.from_profile(profile, clock=time.time)
    tester_bus = can.Bus(interface="virtual", channel=channel)
    ecu_bus = can.Bus(interface="virtual", channel=channel)
    spy = Spy(channel)
    ecu = SimulatedEcu(ecu_bus)
    client = ObdClient(tester_bus, timeout_s=0.3)
    service = ObdService(
        client,
        pipeline.store,
        profile,
        options=ObdOptions(
            power=PowerPolicy(low_voltage_hold_s=0.3),
            probe_interval_s=0.5,
            idle_check_s=0.05,
            dtc_interval_s=None,
        ),
    )
    runtime = AgentRuntime(
        pipeline=pipeline,
        vehicle={"vehicle_id": "car-obd", "vin": "", "make": "", "model": ""},
        sources=[service.updates()],
        obd=service,
        options=RuntimeOptions(send_interval_s=0.05),
    )
    runtime.add_task(service.probe_loop)
    link = runtime.add_link("home", RecordingLink)
    assert isinstance(link, RecordingLink)
    task: asyncio.Task[None] | None = None
    try:
        ecu.start()
        await client.start()
        task = asyncio.create_task(runtime.run())
        await wait_until(lambda: link.merged().get(BATTERY_VOLTAGE) == 14.1, "battery 14.1 V")
        assert link.merged()["Vehicle.Powertrain.CombustionEngine.Speed"] == 780
        assert service.inputs.voltage_from_obd and service.poller.polling

        # The engine stops: the ECU reports a resting, discharging battery.
        ecu.set_pid(0x42, 11.8)
        await wait_until(lambda: not service.poller.polling, "polling paused by the battery")
        assert service.monitor.reason.startswith("12 V battery")
        assert service.poller.stats.pauses == 1
        await asyncio.sleep(0.4)  # a request in flight may finish
        spy.drain()
        await asyncio.sleep(1.6)
        paused = spy.drain()
        # Only lone battery probes went out: no PID but 0x42, about one per 0.5 s.
        assert paused, "the battery is probed while paused"
        assert {_pid_of(m) for m in paused} == {(0x01, 0x42)}
        assert len(paused) <= 5
        assert service.probes >= 1

        # The alternator charges again: the next probe sees it and polling resumes.
        ecu.set_pid(0x42, 14.3)
        ecu.set_pid(0x0D, 33)
        await wait_until(lambda: service.poller.polling, "polling resumed")
        await wait_until(lambda: link.merged().get("Vehicle.Speed") == 33.0, "speed after resume")
        assert service.poller.stats.resumes == 2
        assert link.merged()[BATTERY_VOLTAGE] == 14.3
    finally:
        runtime.stop()
        if task is not None:
            await asyncio.wait_for(task, WAIT)
        await service.close()
        ecu.stop()
        tester_bus.shutdown()
        ecu_bus.shutdown()
        spy.shutdown()


def test_store_power_inputs() -> None:
    now = [1_700_000_000.0]
    rav4 = load_profile("toyota_rav4")
    store = StateStore(clock=lambda: now[0])
    inputs = StorePowerInputs(store, rav4, max_age_s=5.0, clock=lambda: now[0])
    assert inputs.ignition_path == "Vehicle.Powertrain.CombustionEngine.IsRunning"
    assert inputs.voltage_path is None and inputs.battery_voltage() is None
    # A CAN ignition never seen, or silent for longer than the max age: the car sleeps.
    assert inputs.ignition() is False
    store.update("Vehicle.Powertrain.CombustionEngine.IsRunning", True, now[0])
    assert inputs.ignition() is True
    now[0] += 6
    assert inputs.ignition() is False

    data = yaml.safe_load((PROFILES_DIR / "obd_generic.yaml").read_text())
    data["signals"]["Vehicle.LowVoltageSystemState"] = {
        "source": {"pid": 0x1F},
        "datatype": "string",
    }
    generic = parse_profile(data)
    inputs = StorePowerInputs(store, generic, max_age_s=5.0, clock=lambda: now[0])
    assert inputs.ignition_path == "Vehicle.LowVoltageSystemState"
    assert inputs.ignition() is None  # not CAN-fed: unknown, not off
    for state, expected in [("ON", True), ("start", True), ("OFF", False), ("LOCK", False)]:
        store.update("Vehicle.LowVoltageSystemState", state, now[0])
        assert inputs.ignition() is expected, state
    store.update("Vehicle.LowVoltageSystemState", "ACC", now[0])
    assert inputs.ignition() is None
    # PID 0x42 is polled every 10 s: its value stays fresh for three polls.
    store.update(BATTERY_VOLTAGE, 12.6, now[0])
    now[0] += 29
    assert inputs.battery_voltage() == 12.6
    now[0] += 2
    assert inputs.battery_voltage() is None


async def test_clear_dtcs_reads_them_back_into_the_store() -> None:
    channel = f"carhub-obd-{uuid.uuid4().hex}"
    profile = load_profile("obd_generic")
    store = StateStore(clock=time.time)
    tester_bus = can.Bus(interface="virtual", channel=channel)
    ecu_bus = can.Bus(interface="virtual", channel=channel)
    ecu = SimulatedEcu(ecu_bus, stored_dtcs=["P0301"], permanent_dtcs=["P0420"])
    client = ObdClient(tester_bus, timeout_s=0.3)
    service = ObdService(client, store, profile)
    try:
        ecu.start()
        await client.start()
        await service.clear_dtcs()
        # The permanent code stays on the ECU, and so in the store.
        assert [d["code"] for d in store.value("Vehicle.Diagnostics.DTCs")] == ["P0420"]  # type: ignore[union-attr]
        assert ecu.clear_count == 1
    finally:
        await service.close()
        ecu.stop()
        tester_bus.shutdown()
        ecu_bus.shutdown()


async def test_run_obd_generic_profile_for_a_duration(tmp_path: Path) -> None:
    """The bundled profile as the docs show it: values reach the hub, --duration ends it."""
    channel = f"carhub-obd-{uuid.uuid4().hex}"
    state_dir = tmp_path / "car"
    ecu_bus = can.Bus(interface="virtual", channel=channel)
    ecu = SimulatedEcu(ecu_bus, stored_dtcs=["P0420"])
    try:
        async with running_home(tmp_path / "home") as home:
            await pair(home, state_dir)
            args = build_parser().parse_args(
                [
                    *["run", "--profile", str(PROFILES_DIR / "obd_generic.yaml")],
                    *["--can-interface", "virtual", "--can-channel", channel, "--obd"],
                    *["--state-dir", str(state_dir), "--send-interval", "0.1"],
                    *["--duration", "3"],
                ]
            )
            ecu.start()
            started = time.monotonic()
            assert await asyncio.wait_for(run_cmd._main(args), WAIT) == 0
            assert time.monotonic() - started >= 3
            state = home.handler.merged_state()
            assert state["Vehicle.Powertrain.CombustionEngine.Speed"] == 780
            assert state["Vehicle.LowVoltageBattery.CurrentVoltage"] == 14.1
            # one byte of 100/255 %: 62.7 % is sent as 160 and read back as 62.75
            assert abs(state["Vehicle.Powertrain.FuelSystem.RelativeLevel"] - 62.7) < 100 / 255
            assert state["Vehicle.OBD.Status.IsMILOn"] is True
            assert [e["data"]["code"] for e in home.handler.events("dtc_appeared")] == ["P0420"]
    finally:
        ecu.stop()
        ecu_bus.shutdown()
