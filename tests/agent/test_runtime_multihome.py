"""One car, two homes (two HubServers, two CAs): same state to both, separate links.

The car is paired with both through real pairing; `vehicle-agent homes list`
shows both; the running agent sends the same state messages to each home with
its own outbox and sequence numbers; `vehicle-agent homes remove` while the
agent runs stops everything to that home, the other goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest

from bridge.protocol import MessageType
from tests.agent.hub_testing import WAIT, Home, pair, running_home, wait_until
from tests.data_paths import CAN_LOG, DBC_DIR
from vehicle_agent.cli import build_parser, main
from vehicle_agent.commands import run as run_cmd

ROOT = Path(__file__).resolve().parents[2]
LOG = CAN_LOG


def homes_list(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["homes", "--state-dir", str(state_dir), "list", "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def state_bodies(home: Home) -> list[dict[str, object]]:
    return [env.body for env in home.handler.of(MessageType.STATE)]


async def test_one_car_two_homes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "slice.log"
    with LOG.open() as src:
        log.write_text("".join(line for _, line in zip(range(20000), src, strict=False)))
    state_dir = tmp_path / "car"
    async with (
        running_home(tmp_path / "family", "Family Home CA") as family,
        running_home(tmp_path / "holiday", "Holiday Home CA") as holiday,
    ):
        assert family.hub_id != holiday.hub_id
        assert family.ca.ca_cert_pem != holiday.ca.ca_cert_pem
        await pair(family, state_dir)
        await pair(holiday, state_dir)

        listed = homes_list(state_dir, capsys)
        assert {h["hub_id"] for h in listed} == {family.hub_id, holiday.hub_id}
        assert {h["lan_urls"][0] for h in listed} == {family.url, holiday.url}  # type: ignore[index]
        family_dir = state_dir / "homes" / family.hub_id
        holiday_dir = state_dir / "homes" / holiday.hub_id
        # Each link has its own key and certificate, pinned to its own home CA.
        assert (family_dir / "car.key").read_bytes() != (holiday_dir / "car.key").read_bytes()
        assert (family_dir / "ca.crt").read_bytes() == family.ca.ca_cert_pem
        assert (holiday_dir / "ca.crt").read_bytes() == holiday.ca.ca_cert_pem

        args = build_parser().parse_args(
            [
                *["run", "--profile", "toyota_rav4", "--dbc-dir", str(DBC_DIR)],
                *["--replay", str(log), "--loop", "--speed", "4"],
                *["--send-interval", "0.1", "--homes-check", "0.2", "--duration", "60"],
                *["--state-dir", str(state_dir)],
            ]
        )
        agent = asyncio.create_task(run_cmd._main(args))
        try:
            for home in (family, holiday):
                await wait_until(lambda h=home: len(state_bodies(h)) >= 10, f"state at {home}")
            # Only the family home asks for a snapshot: its link gets two more
            # messages, so the two links' sequence numbers part ways.
            vehicle_id = family.handler.hellos[0][0].vehicle_id
            assert holiday.handler.hellos[0][0].vehicle_id == vehicle_id
            await family.server.send(
                vehicle_id,
                MessageType.COMMAND,
                {"command": "snapshot", "args": {}, "expires_at": time.time() + 60},
            )
            await wait_until(
                lambda: family.handler.of(MessageType.COMMAND_RESULT), "the family's result"
            )
            await wait_until(lambda: len(state_bodies(holiday)) >= 20, "more state")

            # Remove the holiday home while the agent runs.
            capsys.readouterr()
            assert main(["homes", "--state-dir", str(state_dir), "remove", holiday.hub_id]) == 0
            assert [h["hub_id"] for h in homes_list(state_dir, capsys)] == [family.hub_id]
            await wait_until(lambda: not holiday.server.connected(vehicle_id), "holiday cut off")
            holiday_count = len(holiday.handler.messages)
            family_count = len(family.handler.messages)
            await wait_until(
                lambda: len(family.handler.messages) >= family_count + 10, "family goes on"
            )
            await asyncio.sleep(0.5)
            assert len(holiday.handler.messages) == holiday_count
            assert holiday.handler.disconnects >= 1
        finally:
            agent.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(agent, WAIT)

    # The same state went to both homes, in the same order, up to the removal.
    fam, hol = state_bodies(family), state_bodies(holiday)
    assert len(hol) >= 20
    assert fam[: len(hol)] == hol
    # Each home saw its own gap-free sequence from 1; the family's is longer and
    # carries messages the holiday home never got (snapshot, command_result).
    for home in (family, holiday):
        seqs = [env.seq for _, env in home.handler.messages]
        assert seqs == list(range(1, len(seqs) + 1))
    fam_types = [env.type for _, env in family.handler.messages]
    hol_types = [env.type for _, env in holiday.handler.messages]
    assert MessageType.COMMAND_RESULT in fam_types and MessageType.COMMAND_RESULT not in hol_types
    assert not holiday_dir.exists()
    assert (family_dir / "outbox.db").is_file()
