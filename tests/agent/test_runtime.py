"""AgentRuntime with fake links: state forwarding, commands, notify, trips, the run CLI."""

import asyncio
import json

import pytest

from bridge.protocol import Envelope, MessageType
from tests.data_paths import CAN_LOG, DBC_DIR
from vehicle_agent.can_input import read_log
from vehicle_agent.cli import main
from vehicle_agent.pipeline import CanPipeline
from vehicle_agent.profile import load_profile
from vehicle_agent.runtime import (
    DTCS,
    IS_RUNNING,
    ODOMETER,
    SPEED,
    AgentRuntime,
    Journal,
    RuntimeOptions,
    TripDetector,
)
from vehicle_agent.vin import is_valid_vin

LOG = CAN_LOG


class FakeLink:
    def __init__(self, hub_id, hello, on_message, snapshot, *, fail=False):
        self.hub_id = hub_id
        self.hello = hello
        self.on_message = on_message
        self.snapshot = snapshot
        self.fail = fail
        self.sent = []
        self.connected = False
        self.started = self.stopped = False

    async def start(self):
        self.started = True
        self.connected = True

    async def stop(self):
        self.stopped = True
        self.connected = False

    async def send(self, type, body):
        if self.fail:
            raise OSError("disk full")
        self.sent.append((type, body))
        return len(self.sent)

    def of(self, type):
        return [b for t, b in self.sent if t == type]


class FakeObd:
    def __init__(self, error=None):
        self.calls = 0
        self.error = error

    async def clear_dtcs(self):
        self.calls += 1
        if self.error:
            raise self.error


@pytest.fixture(scope="module")
def frames():
    return list(read_log(LOG))[:30000]


def make_runtime(frames=None, **kwargs):
    pipeline = CanPipeline.from_profile(load_profile("toyota_rav4"), dbc_dir=DBC_DIR)

    async def source():
        for i, msg in enumerate(frames or []):
            if i % 500 == 0:
                await asyncio.sleep(0)
            yield msg

    now = [1_700_000_000.0]

    def clock():
        now[0] += 0.001  # 1 ms per call: time moves with the frames
        return now[0]

    return AgentRuntime(
        pipeline=pipeline,
        vehicle={"vehicle_id": "car-1", "vin": "", "make": "Toyota", "model": "RAV4"},
        frames=source() if frames is not None else None,
        options=RuntimeOptions(send_interval_s=0.01),
        clock=clock,
        **kwargs,
    )


def env(type, body, seq=7):
    return Envelope(v=1, type=type, seq=seq, ts=0.0, body=body)


def test_state_reaches_every_home_and_links_start_and_stop(frames):
    async def go():
        rt = make_runtime(frames)
        a = rt.add_link("home-a", FakeLink)
        b = rt.add_link("home-b", FakeLink)
        task = asyncio.create_task(rt.run())
        await asyncio.wait_for(rt.frames_done.wait(), 30)
        await asyncio.sleep(0.05)
        rt.stop()
        await asyncio.wait_for(task, 10)
        return rt, a, b

    rt, a, b = asyncio.run(go())
    assert a.started and a.stopped and b.started and b.stopped
    for link in (a, b):
        merged = {}
        for body in link.of(MessageType.STATE):
            for path, item in body["signals"].items():
                assert set(item) == {"value", "ts"}
                merged[path] = item["value"]
        assert merged["Vehicle.Powertrain.Transmission.SelectedGear"] == "D"
        assert 25 <= merged[SPEED] <= 80
        assert is_valid_vin(merged["Vehicle.VehicleIdentification.VIN"])
        events = link.of(MessageType.EVENT)
        # The car drives at highway speed from the start; stopping the agent ends the trip.
        assert [e["kind"] for e in events] == ["trip_start", "trip_end"]
        assert events[1]["data"]["reason"] == "agent stopped"
    # the VIN learnt on the bus is in the hello the links send on reconnect
    assert is_valid_vin(a.hello["vehicle"]["vin"])
    assert a.hello["signals"][SPEED] == {"unit": "km/h", "datatype": "float"}
    assert a.snapshot()[SPEED]["value"] == rt.store.value(SPEED)


def test_commands_are_answered():
    async def go():
        obd = FakeObd()
        rt = make_runtime(obd=obd)
        link = rt.add_link("home", FakeLink)
        rt.store.update(SPEED, 42.0, 1.0)
        await rt.handle_message("home", env(MessageType.COMMAND, {"command": "snapshot"}, seq=3))
        await rt.handle_message("home", env(MessageType.COMMAND, {"command": "clear_dtcs"}, seq=4))
        await rt.handle_message("home", env(MessageType.COMMAND, {"command": "selfdestruct"}, 5))
        return obd, link

    obd, link = asyncio.run(go())
    assert link.of(MessageType.SNAPSHOT) == [{"signals": {SPEED: {"value": 42.0, "ts": 1.0}}}]
    results = link.of(MessageType.COMMAND_RESULT)
    assert [(r["command_seq"], r["ok"]) for r in results] == [(3, True), (4, True), (5, False)]
    assert obd.calls == 1
    assert "unsupported" in results[2]["detail"]
    assert "command:clear_dtcs" in link.hello["capabilities"]


def test_clear_dtcs_without_obd_or_failing():
    async def go(obd):
        rt = make_runtime(obd=obd)
        link = rt.add_link("home", FakeLink)
        await rt.handle_message("home", env(MessageType.COMMAND, {"command": "clear_dtcs"}))
        return link.of(MessageType.COMMAND_RESULT)[0]

    no_obd = asyncio.run(go(None))
    assert not no_obd["ok"] and "no OBD-II" in no_obd["detail"]
    failing = asyncio.run(go(FakeObd(error=TimeoutError("ECU silent"))))
    assert not failing["ok"] and "ECU silent" in failing["detail"]


def test_notify_goes_to_the_journal_and_handlers(tmp_path):
    journal_path = tmp_path / "journal.jsonl"
    seen = []

    async def go():
        rt = make_runtime(journal=Journal(journal_path))
        rt.add_link("home", FakeLink)

        async def handler(hub_id, envelope):
            seen.append((hub_id, envelope.type))

        async def broken(hub_id, envelope):
            raise RuntimeError("voice crashed")

        rt.add_handler("vocabulary", broken)
        rt.add_handler("vocabulary", handler)
        rt.add_handler("notify", handler)
        body = {"message": "Garage door open", "priority": "high", "expires_at": 2e9}
        await rt.handle_message("home", env(MessageType.NOTIFY, body))
        await rt.handle_message("home", env(MessageType.VOCABULARY, {"language": "en"}))
        await rt.handle_message("home", env("future_type", {}))
        rt.journal.close()

    asyncio.run(go())
    records = [json.loads(line) for line in journal_path.read_text().splitlines()]
    assert records[0]["kind"] == "notify"
    assert records[0]["message"] == "Garage door open" and records[0]["priority"] == "high"
    # the broken vocabulary handler did not stop the next one
    assert seen == [("home", "notify")]


def test_a_failing_link_does_not_stop_the_others():
    async def go():
        rt = make_runtime()
        rt.add_link("bad", lambda *a: FakeLink(*a, fail=True))
        good = rt.add_link("good", FakeLink)
        rt.store.update(SPEED, 50.0, 1.0)
        await rt._forward_once()
        return good

    good = asyncio.run(go())
    assert good.of(MessageType.STATE) == [{"signals": {SPEED: {"value": 50.0, "ts": 1.0}}}]


def test_link_state_changes_are_journaled(tmp_path):
    path = tmp_path / "j.jsonl"

    async def go():
        rt = make_runtime(journal=Journal(path))
        link = rt.add_link("home", FakeLink)
        await rt._forward_once()
        link.connected = True
        await rt._forward_once()
        await rt._forward_once()
        rt.journal.close()

    asyncio.run(go())
    links = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(r["kind"], r["connected"]) for r in links] == [("link", False), ("link", True)]


def test_dtc_events():
    async def go():
        rt = make_runtime()
        link = rt.add_link("home", FakeLink)
        p0420 = {"code": "P0420", "description": "Catalyst", "kind": "stored"}
        p0301 = {"code": "P0301", "description": "Misfire", "kind": "pending"}
        rt.store.update(DTCS, [p0420], 1.0)
        await rt._forward_once()
        rt.store.update(DTCS, [p0301], 2.0)
        await rt._forward_once()
        return link

    link = asyncio.run(go())
    events = [(e["kind"], e["data"]["code"]) for e in link.of(MessageType.EVENT)]
    assert events == [
        ("dtc_appeared", "P0420"),
        ("dtc_appeared", "P0301"),
        ("dtc_cleared", "P0420"),
    ]


def test_trip_detector():
    trips = TripDetector(start_kmh=5, end_idle_s=60)
    assert trips.observe(SPEED, 3.0, 0) == []
    trips.observe(ODOMETER, 1000.0, 0)
    [start] = trips.observe(SPEED, 20.0, 10)
    assert start["kind"] == "trip_start" and start["ts"] == 10
    trips.observe(SPEED, 90.0, 100)
    trips.observe(ODOMETER, 1012.5, 600)
    assert trips.observe(SPEED, 0.0, 700) == []  # stopped: wait for the idle time
    assert trips.tick(730) == []
    assert trips.observe(SPEED, 10.0, 740) == []  # moving again: same trip
    trips.observe(SPEED, 0.0, 800)
    [end] = trips.tick(861)
    assert end["kind"] == "trip_end" and end["ts"] == 800
    assert end["data"]["distance_km"] == 12.5 and end["data"]["max_speed_kmh"] == 90.0
    assert end["data"]["duration_s"] == 790.0 and end["data"]["reason"] == "stopped"
    [again] = trips.observe(SPEED, 30.0, 900)
    assert again["data"]["trip"] == 2
    [off] = trips.observe(IS_RUNNING, False, 950)
    assert off["kind"] == "trip_end" and off["data"]["reason"] == "engine off"
    assert trips.observe(IS_RUNNING, False, 960) == []


@pytest.fixture
def small_log(tmp_path):
    path = tmp_path / "small.log"
    path.write_text("\n".join(LOG.read_text().splitlines()[:20000]) + "\n")
    return path


def test_run_command_replays_and_stops(small_log, tmp_path, capsys):
    journal = tmp_path / "journal.jsonl"
    rc = main(
        [
            "run",
            "--profile",
            "toyota_rav4",
            "--dbc-dir",
            str(DBC_DIR),
            "--replay",
            str(small_log),
            "--speed",
            "1000",
            "--state-dir",
            str(tmp_path / "state"),
            "--journal",
            str(journal),
            "--send-interval",
            "0.05",
        ]
    )
    assert rc == 0
    assert (tmp_path / "state" / "vehicle_id").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replay", "/nonexistent.log"], "log file not found"),
        (["--can-interface", "virtual"], "needs --can-channel"),
        (["--replay", str(LOG), "--obd"], "--obd needs a live bus"),
        (["--replay", str(LOG), "--speed", "-1"], "--speed must be > 0"),
        (["--replay", str(LOG), "--gpsd", "nohost"], "HOST:PORT"),
        (["--replay", str(LOG), "--gps-track", "/nonexistent.gpx"], "GPS track"),
    ],
)
def test_run_command_errors(argv, message, tmp_path, capsys):
    base = ["run", "--profile", "toyota_rav4", "--dbc-dir", str(DBC_DIR)]
    assert main([*base, "--state-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_run_command_on_a_live_virtual_bus_stops_after_duration(tmp_path):
    argv = ["run", "--profile", "toyota_rav4", "--dbc-dir", str(DBC_DIR)]
    argv += ["--can-interface", "virtual", "--can-channel", "carhub-run-test"]
    argv += ["--duration", "0.3", "--state-dir", str(tmp_path)]
    assert main(argv) == 0
