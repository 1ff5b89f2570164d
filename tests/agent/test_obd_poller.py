"""ObdPoller: supported PIDs honoured, VSS updates, pausing when the car is off."""

import asyncio
import contextlib

import pytest

from tests.agent.obd_testing import obd_link, wait_until
from vehicle_agent.obd.poller import DTC_PATH, ObdPoller, convert_value
from vehicle_agent.obd.power import PowerMonitor, PowerPolicy
from vehicle_agent.obd.simulator import DEFAULT_VIN
from vehicle_agent.profile import load_profile, parse_profile

FAST = 0.02

PROFILE = {
    "name": "poller test",
    "signals": {
        "Vehicle.Speed": {"source": {"pid": 0x0D, "interval": FAST}, "unit": "km/h"},
        "Vehicle.Powertrain.CombustionEngine.Speed": {
            "source": {"pid": 0x0C, "interval": FAST},
            "datatype": "int",
        },
        "Vehicle.LowVoltageBattery.CurrentVoltage": {"source": {"pid": 0x42, "interval": FAST}},
        "Vehicle.TraveledDistance": {"source": {"pid": 0xA6, "interval": FAST}},
        "Vehicle.OBD.Status.IsMILOn": {
            "source": {"pid": 0x01, "interval": FAST},
            "datatype": "bool",
        },
        "Vehicle.VehicleIdentification.VIN": {
            "source": {"pid": 0x02, "mode": 9},
            "datatype": "string",
        },
    },
}


class Collector:
    """Runs a poller in a task and keeps every update."""

    def __init__(self, poller):
        self.poller = poller
        self.updates = []
        self.task = None

    async def __aenter__(self):
        async def run():
            async with contextlib.aclosing(self.poller.updates()) as updates:
                async for update in updates:
                    self.updates.append(update)

        self.task = asyncio.create_task(run())
        return self

    async def __aexit__(self, *exc):
        self.poller.stop()
        await asyncio.wait_for(self.task, 5)

    def values(self, path):
        return [u.value for u in self.updates if u.path == path]


def signals(profile=PROFILE):
    return parse_profile(profile).obd_signals()


async def test_polls_supported_pids_only_and_maps_to_vss():
    async with obd_link(pids={0x0C: 1500.0, 0x0D: 64, 0x05: 90}, stored_dtcs=["P0420"]) as link:
        poller = ObdPoller(link.client, signals(), dtc_interval_s=None, idle_check_s=FAST)
        async with Collector(poller) as col:
            await wait_until(lambda: len(col.values("Vehicle.Speed")) >= 3, what="speed")
        assert col.values("Vehicle.Speed")[0] == 64.0
        assert col.values("Vehicle.Powertrain.CombustionEngine.Speed")[0] == 1500
        assert isinstance(col.values("Vehicle.Powertrain.CombustionEngine.Speed")[0], int)
        assert col.values("Vehicle.OBD.Status.IsMILOn")[0] is True
        assert col.values("Vehicle.VehicleIdentification.VIN") == [DEFAULT_VIN]
        # 0x42 and 0xA6 are configured but the ECU's bitmap lacks them: never asked.
        assert b"\x01\x42" not in link.ecu.requests
        assert b"\x01\xa6" not in link.ecu.requests
        assert poller.unsupported == {0x42, 0xA6}
        assert poller.polled_pids == [0x01, 0x0C, 0x0D]
        assert not col.values("Vehicle.TraveledDistance")
        # Only block 0x00 was needed (no PID above 0x20).
        assert [r for r in link.ecu.requests if r[:2] in (b"\x01\x20", b"\x01\x40")] == []
        assert link.ecu.clear_count == 0
        for update in col.updates:
            assert update.ts > 1e9  # unix time


async def test_poller_emits_dtc_list():
    async with obd_link(stored_dtcs=["P0301"], permanent_dtcs=["P0420"]) as link:
        poller = ObdPoller(link.client, signals(), dtc_interval_s=60, idle_check_s=FAST)
        async with Collector(poller) as col:
            await wait_until(lambda: col.values(DTC_PATH), what="DTC update")
        assert col.values(DTC_PATH)[0] == [
            {"code": "P0301", "description": "Cylinder 1 Misfire Detected", "kind": "stored"},
            {
                "code": "P0420",
                "description": "Catalyst System Efficiency Below Threshold (Bank 1)",
                "kind": "permanent",
            },
        ]


async def test_stops_when_ignition_off_and_resumes():
    ignition = {"on": True}
    async with obd_link() as link:
        power = PowerMonitor(ignition=lambda: ignition["on"])
        poller = ObdPoller(
            link.client, signals(), power=power, dtc_interval_s=None, idle_check_s=FAST
        )
        async with Collector(poller) as col:
            await wait_until(lambda: len(col.values("Vehicle.Speed")) >= 2, what="polling")
            ignition["on"] = False
            await wait_until(lambda: not poller.polling, what="pause")
            await asyncio.sleep(0.1)  # let an in-flight request finish
            frozen = len(link.ecu.requests)
            updates = len(col.updates)
            await asyncio.sleep(0.3)  # 15 poll intervals
            assert len(link.ecu.requests) == frozen, "polled with the ignition off"
            assert len(col.updates) == updates
            ignition["on"] = True
            link.ecu.set_pid(0x0D, 33)
            await wait_until(lambda: 33.0 in col.values("Vehicle.Speed"), what="resume")
        assert poller.stats.pauses == 1
        assert poller.stats.resumes == 2  # first start + resume
        assert power.reason == "ignition on"
        # The VIN is read again after a new power-on.
        assert col.values("Vehicle.VehicleIdentification.VIN") == [DEFAULT_VIN, DEFAULT_VIN]


async def test_stops_when_battery_low_and_resumes_when_charging():
    battery = {"v": 14.2}
    async with obd_link() as link:
        power = PowerMonitor(
            battery_voltage=lambda: battery["v"],
            policy=PowerPolicy(low_voltage_v=12.2, low_voltage_hold_s=0.1, resume_voltage_v=13.0),
        )
        poller = ObdPoller(
            link.client, signals(), power=power, dtc_interval_s=None, idle_check_s=FAST
        )
        async with Collector(poller) as col:
            await wait_until(lambda: col.values("Vehicle.Speed"), what="polling")
            battery["v"] = 11.9
            await wait_until(lambda: not poller.polling, what="pause on low battery")
            assert "battery" in power.reason
            await asyncio.sleep(0.1)
            frozen = len(link.ecu.requests)
            battery["v"] = 12.6  # recovered a little, but not charging: stay off
            await asyncio.sleep(0.3)
            assert not poller.polling
            assert len(link.ecu.requests) == frozen
            battery["v"] = 13.9
            await wait_until(lambda: len(link.ecu.requests) > frozen, what="resume")
        assert poller.stats.pauses == 1


async def test_silent_ecu_backs_off_without_crashing():
    async with obd_link(timeout_s=0.05) as link:
        link.ecu.powered = False
        poller = ObdPoller(
            link.client,
            signals(),
            dtc_interval_s=None,
            idle_check_s=FAST,
            max_consecutive_timeouts=2,
            initial_backoff_s=0.05,
            max_backoff_s=0.2,
        )
        async with Collector(poller) as col:
            await wait_until(lambda: poller.stats.timeouts >= 4, what="timeouts")
            assert poller.supported is None
            link.ecu.powered = True
            await wait_until(lambda: col.values("Vehicle.Speed"), what="recovery", within=5)
        assert not col.task.done() or col.task.exception() is None


async def test_junk_answers_do_not_stop_polling():
    async with obd_link(junk={b"\x01\x0d": b"\x41\x0d"}, timeout_s=0.1) as link:
        poller = ObdPoller(link.client, signals(), dtc_interval_s=None, idle_check_s=FAST)
        async with Collector(poller) as col:
            await wait_until(
                lambda: len(col.values("Vehicle.Powertrain.CombustionEngine.Speed")) >= 3,
                what="rpm keeps coming",
            )
            assert poller.stats.errors >= 1
        assert not col.values("Vehicle.Speed")
        assert link.client.stats.junk_responses >= 1


async def test_pid_rejected_at_runtime_is_dropped():
    async with obd_link(junk={b"\x01\x0d": b"\x7f\x01\x31"}) as link:
        poller = ObdPoller(link.client, signals(), dtc_interval_s=None, idle_check_s=FAST)
        async with Collector(poller) as col:
            await wait_until(lambda: 0x0D in poller.unsupported, what="PID dropped")
            asked = link.ecu.requests.count(b"\x01\x0d")
            await asyncio.sleep(0.2)
            assert link.ecu.requests.count(b"\x01\x0d") == asked == 1
            assert col.values("Vehicle.Powertrain.CombustionEngine.Speed")


async def test_bundled_generic_profile_end_to_end():
    profile = load_profile("obd_generic")
    async with obd_link() as link:
        poller = ObdPoller(link.client, profile.obd_signals(), dtc_interval_s=None)
        async with Collector(poller) as col:
            paths = {s.path for s in profile.obd_signals()}
            await wait_until(lambda: paths <= {u.path for u in col.updates}, what="all paths")
        latest = {u.path: u.value for u in col.updates}
        assert latest["Vehicle.Powertrain.CombustionEngine.ECT"] == 88.0
        assert latest["Vehicle.TraveledDistance"] == 48213.4
        assert latest["Vehicle.LowVoltageBattery.CurrentVoltage"] == 14.1
        assert latest["Vehicle.OBD.Status.IsMILOn"] is False
        assert latest["Vehicle.Powertrain.CombustionEngine.Speed"] == 780
        # PID 0x5B: 57.3 % goes out as round(57.3 * 255 / 100) = 146, read back as 146 / 2.55.
        soc = latest["Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed"]
        assert soc == pytest.approx(146 * 100 / 255, abs=0.01)


def test_power_monitor_hold_and_hysteresis():
    state = {"ign": None, "v": 12.0}
    clock = {"t": 0.0}
    power = PowerMonitor(
        ignition=lambda: state["ign"],
        battery_voltage=lambda: state["v"],
        policy=PowerPolicy(low_voltage_v=12.2, low_voltage_hold_s=60, resume_voltage_v=13.0),
        clock=lambda: clock["t"],
    )
    assert power.is_on()  # low, but not for long
    clock["t"] = 59.9
    assert power.is_on()
    clock["t"] = 60.0
    assert not power.is_on()
    state["v"] = 12.6
    clock["t"] = 61
    assert not power.is_on()  # recovered but not charging
    state["v"] = 13.4
    assert power.is_on()
    state["v"] = 11.8  # a cranking dip shorter than the hold
    clock["t"] = 62
    assert power.is_on()
    state["v"] = 14.0
    clock["t"] = 70
    assert power.is_on()
    state["ign"] = False
    assert not power.is_on()
    assert power.reason == "ignition off"


def test_power_monitor_new_ignition_cycle_rearms():
    state = {"ign": True, "v": 11.9}
    clock = {"t": 0.0}
    power = PowerMonitor(
        ignition=lambda: state["ign"],
        battery_voltage=lambda: state["v"],
        policy=PowerPolicy(low_voltage_hold_s=10),
        clock=lambda: clock["t"],
    )
    assert power.is_on()
    clock["t"] = 10
    assert not power.is_on()  # ignition on but battery drained for long enough
    state["ign"] = False
    clock["t"] = 11
    assert not power.is_on()
    state["ign"] = True
    clock["t"] = 12
    assert power.is_on()  # the driver switched on again: try again
    clock["t"] = 22
    assert not power.is_on()


def test_power_monitor_without_signals_is_on():
    assert PowerMonitor().is_on()


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"datatype": "int"}, 780.75, 781),
        ({"datatype": "float", "scale": 0.621371, "precision": 1}, 100, 62.1),
        ({"datatype": "bool"}, True, True),
        ({"datatype": "string", "map": {0: "off", 1: "on"}}, 1, "on"),
        ({"datatype": "string", "map": {0: "off"}}, 7, None),
        ({"datatype": "string", "map": {0: "off"}, "default": "?"}, 7, "?"),
    ],
)
def test_convert_value(spec, value, expected):
    profile = {"name": "t", "signals": {"Vehicle.X": {"source": {"pid": 0x0D}, **spec}}}
    assert convert_value(parse_profile(profile).signals["Vehicle.X"], value) == expected
