"""CAN input: candump parsing, other log formats, replay pacing, listen-only buses."""

import asyncio
import logging

import can
import pytest

from vehicle_agent import can_input
from vehicle_agent.can_input import (
    CanInputError,
    ListenOnlyBus,
    ReplayPacer,
    areplay_log,
    bus_name,
    open_bus,
    read_log,
    replay_log,
    silent_mode_kwargs,
)

CANDUMP = """(100.000000) can0 0B4#000000001D0B7A5E
(100.010000) can1 12345678#DEAD
(100.020000) can0 123#R
(100.030000) can0 123#R4
(100.040000) can0 321##1001122334455667788
(100.050000) can0 20000080#0000000000000000
this line is garbage
(100.060000) can0 1A0#ZZ
(100.070000) can0 0B4#00 T

"""


@pytest.fixture
def candump(tmp_path):
    path = tmp_path / "dump.log"
    path.write_text(CANDUMP)
    return path


def test_candump_parser(candump, caplog):
    with caplog.at_level(logging.WARNING):
        msgs = list(read_log(candump))
    assert len(msgs) == 7
    first, ext, rtr, rtr4, fd, err, tx = msgs
    assert (first.timestamp, first.channel, first.arbitration_id) == (100.0, "can0", 0xB4)
    assert first.data == bytes.fromhex("000000001D0B7A5E") and not first.is_extended_id
    assert ext.is_extended_id and ext.arbitration_id == 0x12345678 and ext.data == b"\xde\xad"
    assert rtr.is_remote_frame and rtr.dlc == 0 and rtr4.dlc == 4
    assert fd.is_fd and fd.bitrate_switch and fd.data == bytes.fromhex("001122334455667788")
    assert err.is_error_frame
    assert not tx.is_rx and tx.data == b"\x00"
    assert bus_name(first) == "can0" and bus_name(can.Message()) == "can0"
    # both bad lines were reported with their line numbers
    assert "dump.log:7" in caplog.text and "dump.log:8" in caplog.text


def test_candump_parser_matches_python_can(candump, tmp_path):
    ours = list(read_log(candump))
    clean = tmp_path / "clean.txt"  # python-can's reader, via a non-.log name
    clean.write_text("".join(line + "\n" for line in CANDUMP.splitlines()[:5]))
    theirs = list(can.io.CanutilsLogReader(clean))
    for a, b in zip(ours, theirs, strict=False):
        assert (a.timestamp, a.arbitration_id, a.is_extended_id, bytes(a.data or b"")) == (
            b.timestamp,
            b.arbitration_id,
            b.is_extended_id,
            bytes(b.data or b""),
        )


@pytest.mark.parametrize("suffix", [".asc", ".blf", ".trc"])
def test_other_formats_via_python_can(tmp_path, suffix):
    path = tmp_path / f"frames{suffix}"
    sent = [
        can.Message(
            timestamp=10.0 + i * 0.01, arbitration_id=0x100 + i, data=bytes([i] * 8), channel=0
        )
        for i in range(5)
    ]
    with can.Logger(path) as writer:
        for m in sent:
            writer.on_message_received(m)
    got = list(read_log(path))
    assert [m.arbitration_id for m in got] == [0x100 + i for i in range(5)]
    assert [bytes(m.data) for m in got] == [bytes([i] * 8) for i in range(5)]


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(CanInputError):
        read_log(tmp_path / "nope.log")
    with pytest.raises(CanInputError):
        list(replay_log(tmp_path / "nope.log"))
    odd = tmp_path / "frames.xyz"
    odd.write_text("hello")
    with pytest.raises(CanInputError):
        list(read_log(odd))


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacer_schedules_on_absolute_targets():
    t = FakeTime()
    pacer = ReplayPacer(10.0, t.clock)
    assert pacer.delay(50.0) == 0.0
    assert pacer.delay(51.0) == pytest.approx(0.1)
    t.now += 0.15  # we were late: the next frame is not delayed twice
    assert pacer.delay(52.0) == pytest.approx(0.05)
    t.now += 1.0
    assert pacer.delay(52.5) == 0.0  # behind schedule: no sleep
    assert ReplayPacer(None, t.clock).delay(1e9) == 0.0
    assert ReplayPacer(float("inf"), t.clock).speed is None
    with pytest.raises(ValueError):
        ReplayPacer(0.0)


@pytest.mark.parametrize(("speed", "expected"), [(1.0, 0.07), (10.0, 0.007), (0.5, 0.14)])
def test_replay_takes_log_duration_over_speed(candump, speed, expected):
    t = FakeTime()
    msgs = list(replay_log(candump, speed=speed, clock=t.clock, sleep=t.sleep))
    assert len(msgs) == 7
    assert sum(t.sleeps) == pytest.approx(expected)
    assert t.now - 1000.0 == pytest.approx(expected)


def test_replay_fast_never_sleeps(candump):
    t = FakeTime()
    assert len(list(replay_log(candump, speed=None, clock=t.clock, sleep=t.sleep))) == 7
    assert t.sleeps == []


def test_replay_loop_keeps_time_increasing(candump):
    t = FakeTime()
    stream = replay_log(candump, speed=None, loop=True, clock=t.clock, sleep=t.sleep)
    msgs = [next(stream) for _ in range(20)]
    stamps = [m.timestamp for m in msgs]
    assert stamps == sorted(stamps)
    assert stamps[7] == pytest.approx(100.07 + 0.1)  # second pass starts after a gap


def test_async_replay_paces_with_injected_sleep(candump):
    t = FakeTime()

    async def fake_sleep(seconds):
        t.sleeps.append(seconds)
        t.now += seconds

    async def collect():
        return [m async for m in areplay_log(candump, speed=2.0, clock=t.clock, sleep=fake_sleep)]

    msgs = asyncio.run(collect())
    assert len(msgs) == 7
    assert sum(t.sleeps) == pytest.approx(0.035)


def test_virtual_bus_is_listen_only_by_default():
    with open_bus("virtual", "carhub-test-1") as bus:
        assert isinstance(bus, ListenOnlyBus)
        with pytest.raises(CanInputError):
            bus.send(can.Message(arbitration_id=1, data=b"\x01"))
        sender = can.Bus(interface="virtual", channel="carhub-test-1")
        try:
            sender.send(can.Message(arbitration_id=0x42, data=b"\x07"))
            got = bus.recv(timeout=1.0)
        finally:
            sender.shutdown()
        assert got is not None and got.arbitration_id == 0x42
    raw = open_bus("virtual", "carhub-test-2", listen_only=False)
    try:
        raw.send(can.Message(arbitration_id=1, data=b"\x01"))  # allowed
    finally:
        raw.shutdown()


def test_silent_mode_kwargs_per_interface():
    assert silent_mode_kwargs("pcan") == {"state": can.BusState.PASSIVE}
    assert silent_mode_kwargs("vector") == {"listen_only": True}
    assert silent_mode_kwargs("kvaser") == {"driver_mode": False}
    assert silent_mode_kwargs("socketcan") == {}


def test_open_bus_passes_listen_only_options(monkeypatch):
    seen = {}
    real_bus = can.Bus

    def fake_bus(**kwargs):
        seen.update(kwargs)
        return real_bus(interface="virtual", channel="carhub-test-3")

    monkeypatch.setattr(can_input.can, "Bus", fake_bus)
    bus = open_bus("pcan", "PCAN_USBBUS1", bitrate=500000)
    bus.shutdown()
    assert seen["state"] is can.BusState.PASSIVE
    assert seen["receive_own_messages"] is False and seen["bitrate"] == 500000


def test_open_bus_errors_are_clear():
    with pytest.raises(CanInputError, match="cannot open"):
        open_bus("no-such-interface", "x")
