"""A GPS source's signals are declared in the hello and its fixes reach the hub.

The home creates entities from the hello's ``signals``; the car profile knows
nothing of GPS, so `vehicle-agent run --gps-track` must add those paths itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from tests.agent.hub_testing import pair, running_home, wait_until
from tests.data_paths import CAN_LOG, DBC_DIR
from vehicle_agent.cli import build_parser
from vehicle_agent.commands import run as run_cmd
from vehicle_agent.gps import HELLO_SIGNALS, load_track

ROOT = Path(__file__).resolve().parents[2]
TRACK = ROOT / "vehicle_agent" / "data" / "demo_track.gpx"
LAT = "Vehicle.CurrentLocation.Latitude"
LON = "Vehicle.CurrentLocation.Longitude"


async def test_gps_track_signals_in_hello_and_state(tmp_path: Path) -> None:
    log = tmp_path / "short.log"
    with (CAN_LOG).open() as src:
        log.write_text("".join(line for _, line in zip(range(3000), src, strict=False)))
    track = load_track(TRACK)
    first = track.fixes[0]
    async with running_home(tmp_path / "home") as home:
        await pair(home, tmp_path / "car")
        args = build_parser().parse_args(
            [
                *["run", "--profile", "toyota_rav4", "--dbc-dir", str(DBC_DIR)],
                *["--replay", str(log), "--loop", "--speed", "1"],
                *["--gps-track", str(TRACK), "--send-interval", "0.1"],
                *["--state-dir", str(tmp_path / "car"), "--duration", "20"],
            ]
        )
        agent = asyncio.create_task(run_cmd._main(args))
        try:
            await wait_until(lambda: home.handler.hellos, "the car's hello")
            hello = home.handler.hellos[0][1].body
            for path, meta in HELLO_SIGNALS.items():
                assert hello["signals"][path] == meta
            # The profile's own signals are still there.
            assert "Vehicle.Speed" in hello["signals"]
            await wait_until(lambda: LAT in home.handler.merged_state(), "a GPS fix at the hub")
            state = home.handler.merged_state()
            assert abs(state[LAT] - first.lat) < 0.05
            assert abs(state[LON] - first.lon) < 0.05
        finally:
            agent.cancel()
            with contextlib.suppress(BaseException):
                await agent
