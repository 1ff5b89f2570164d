"""The real path: RAV4 log -> agent run loop -> CarLink over mTLS -> HubServer.

The car is paired with the hub through real SPAKE2 pairing. What the hub
receives is compared with what ``vehicle-agent decode --profile`` makes of the
same log (every path's last value), and the home-to-car direction is checked
through the agent's journal (notify) and command results (snapshot).
Once in this process (the run command's coroutine) on a slice of the log, once
as a real ``vehicle-agent run`` subprocess on the whole log at 20x.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.homes import HomeRegistry
from bridge.outbox import Outbox
from bridge.protocol import MessageType
from tests.agent.hub_testing import Home, pair, running_home, wait_until
from tests.data_paths import CAN_LOG, DBC_DIR
from vehicle_agent.cli import build_parser
from vehicle_agent.commands import run as run_cmd
from vehicle_agent.vin import is_valid_vin

ROOT = Path(__file__).resolve().parents[2]
LOG = CAN_LOG
AGENT = ROOT / ".venv" / "bin" / "vehicle-agent"
SPEED = "Vehicle.Speed"
GEAR = "Vehicle.Powertrain.Transmission.SelectedGear"
VIN = "Vehicle.VehicleIdentification.VIN"


def decode_last_values(log: Path) -> dict[str, Any]:
    """Last value per path as `vehicle-agent decode --profile` prints it."""
    out = subprocess.run(
        [
            *[str(AGENT), "decode", "--profile", "toyota_rav4"],
            *["--dbc-dir", str(DBC_DIR), "--log", str(log)],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    last: dict[str, Any] = {}
    for line in out.stdout.splitlines():
        item = json.loads(line)
        last[item["path"]] = item["value"]
    return last


@pytest.fixture(scope="module")
def log_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first ~12 s of the highway log."""
    path = tmp_path_factory.mktemp("log") / "rav4_slice.log"
    with LOG.open() as src:
        path.write_text("".join(line for _, line in zip(range(20000), src, strict=False)))
    return path


def journal_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def talk_to_car(home: Home) -> tuple[str, int]:
    """Once the car said hello: a notify and a snapshot command; returns (vehicle_id, seq)."""
    handler = home.handler
    await wait_until(lambda: handler.hellos, "the car's hello")
    vehicle_id = handler.hellos[0][0].vehicle_id
    expires = time.time() + 60
    await home.server.send(
        vehicle_id,
        MessageType.NOTIFY,
        {"message": "Garage door left open", "priority": "high", "expires_at": expires},
    )
    seq = await home.server.send(
        vehicle_id, MessageType.COMMAND, {"command": "snapshot", "args": {}, "expires_at": expires}
    )
    return vehicle_id, seq


def check_hub_side(home: Home, expected: dict[str, Any], command_seq: int) -> None:
    handler = home.handler
    hello = handler.hellos[0][1].body
    assert hello["vehicle"]["make"] == "Toyota" and hello["vehicle"]["profile"] == "toyota_rav4"
    assert hello["signals"][SPEED] == {"unit": "km/h", "datatype": "float"}
    assert hello["signals"][GEAR] == {"unit": None, "datatype": "string"}
    assert "command:snapshot" in hello["capabilities"]

    state = handler.merged_state()
    assert state == expected  # every path, last value, exactly as decode gives it
    assert state[GEAR] == "D"
    assert 25 <= state[SPEED] <= 80
    assert is_valid_vin(state[VIN])
    # The replay ends the run, and the trip with it.
    events = handler.events()
    assert [e["kind"] for e in events] == ["trip_start", "trip_end"]
    assert events[1]["data"]["reason"] == "agent stopped"

    results = handler.of(MessageType.COMMAND_RESULT)
    assert [r.body["command_seq"] for r in results] == [command_seq]
    assert results[0].body["ok"] is True
    snapshots = handler.of(MessageType.SNAPSHOT)
    assert snapshots, "a snapshot answers the command"
    for snap in snapshots:
        assert set(snap.body["signals"]) <= set(expected)
        for item in snap.body["signals"].values():
            assert set(item) == {"value", "ts"}
    # Sequence numbers from the car: 1, 2, 3, ... with no gap or repeat.
    seqs = [env.seq for _, env in handler.messages]
    assert seqs == list(range(1, len(seqs) + 1))
    # Live timestamps are unix time (the replay is re-stamped as it is read).
    now = time.time()
    for env in handler.of(MessageType.STATE):
        for item in env.body["signals"].values():
            assert now - 300 < item["ts"] <= now + 1


def check_journal(journal: Path, hub_id: str) -> None:
    records = journal_records(journal)
    notes = [r for r in records if r["kind"] == "notify"]
    assert len(notes) == 1, records
    assert notes[0]["message"] == "Garage door left open"
    assert notes[0]["priority"] == "high" and notes[0]["hub_id"] == hub_id
    links = [r for r in records if r["kind"] == "link"]
    assert links and links[0]["connected"] is True


async def test_agent_replays_into_a_paired_hub(tmp_path: Path, log_slice: Path) -> None:
    expected = await asyncio.to_thread(decode_last_values, log_slice)
    state_dir = tmp_path / "car"
    journal = tmp_path / "journal.jsonl"
    async with running_home(tmp_path / "home") as home:
        record = await pair(home, state_dir)
        assert record.hub_id == home.hub_id
        args = build_parser().parse_args(
            [
                *["run", "--profile", "toyota_rav4", "--dbc-dir", str(DBC_DIR)],
                *["--replay", str(log_slice), "--speed", "4", "--send-interval", "0.1"],
                *["--state-dir", str(state_dir), "--journal", str(journal)],
            ]
        )
        agent = asyncio.create_task(run_cmd._main(args))
        try:
            _, seq = await talk_to_car(home)
            # A finite replay ends the run by itself once every frame went through.
            assert await asyncio.wait_for(agent, 60) == 0
        finally:
            if not agent.done():
                agent.cancel()
                with contextlib.suppress(BaseException):
                    await agent
        # The agent drained before stopping: the hub has everything.
        check_hub_side(home, expected, seq)
        check_journal(journal, home.hub_id)
        assert not home.server.connected(home.handler.hellos[0][0].vehicle_id)
        # The car's outbox on disk holds nothing unacked.
        outbox = Outbox(record.directory / "outbox.db")
        await outbox.open()
        try:
            assert outbox.last_seq == len(home.handler.messages)
            assert outbox.acked_seq == outbox.last_seq
        finally:
            await outbox.close()


async def test_vehicle_agent_run_subprocess(tmp_path: Path) -> None:
    expected = await asyncio.to_thread(decode_last_values, LOG)
    state_dir = tmp_path / "car"
    journal = tmp_path / "journal.jsonl"
    async with running_home(tmp_path / "home") as home:
        await pair(home, state_dir)
        vehicle_id = await asyncio.to_thread(HomeRegistry(state_dir).vehicle_id)
        proc = await asyncio.create_subprocess_exec(
            str(AGENT),
            "run",
            "--profile",
            "toyota_rav4",
            "--dbc-dir",
            str(DBC_DIR),
            "--replay",
            str(LOG),
            "--speed",
            "20",
            "--send-interval",
            "0.2",
            "--state-dir",
            str(state_dir),
            "--journal",
            str(journal),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            got_id, seq = await talk_to_car(home)
            assert got_id == vehicle_id
            _, err = await asyncio.wait_for(proc.communicate(), 90)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        assert b"Traceback" not in err
        check_hub_side(home, expected, seq)
        check_journal(journal, home.hub_id)
