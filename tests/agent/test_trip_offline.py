"""A trip that ends while the home is out of reach arrives there once, after reconnecting.

Real pairing, real CarLink over mTLS to a real HubServer on 127.0.0.1, the
car's real outbox and trip log on disk. The hub drops the car with a retry
hint; the trip ends while the link is down; the hub gets its ``trip_end``
exactly once when the car is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bridge.homes import HomeRegistry
from tests.agent.hub_testing import pair, running_home, wait_until
from tests.data_paths import DBC_DIR
from vehicle_agent.commands.run import default_link_factory
from vehicle_agent.mapper import VssUpdate
from vehicle_agent.pipeline import CanPipeline
from vehicle_agent.profile import load_profile
from vehicle_agent.runtime import SPEED, AgentRuntime, RuntimeOptions
from vehicle_agent.trip_log import TripLog
from vehicle_agent.trips import TripRecorder


async def test_trip_end_while_offline_arrives_once(tmp_path: Path) -> None:
    state_dir = tmp_path / "car"
    updates: asyncio.Queue[VssUpdate] = asyncio.Queue()

    async def source() -> AsyncIterator[VssUpdate]:
        while True:
            yield await updates.get()

    async with running_home(tmp_path / "home") as home:
        record = await pair(home, state_dir)
        registry = HomeRegistry(state_dir)
        options = RuntimeOptions(send_interval_s=0.05, trip_end_idle_s=0.3)
        trip_log = TripLog(state_dir / "trips.db")
        runtime = AgentRuntime(
            pipeline=CanPipeline.from_profile(load_profile("toyota_rav4"), dbc_dir=DBC_DIR),
            vehicle={"vehicle_id": registry.vehicle_id(), "vin": "", "make": "T", "model": "C"},
            sources=[source()],
            options=options,
            trips=TripRecorder(trip_log, options.trip_detector()),
        )
        link = runtime.add_link(record.hub_id, default_link_factory(registry))
        task = asyncio.create_task(runtime.run())
        try:
            await wait_until(lambda: link.connected, "the car connects")
            vehicle_id = home.handler.hellos[0][0].vehicle_id
            await updates.put(VssUpdate(SPEED, 40.0, time.time()))
            await wait_until(lambda: home.handler.events("trip_start"), "trip_start at home")

            # Out of reach: the hub drops the car and asks it to wait 2 s.
            await home.server.disconnect(vehicle_id, "dead zone", retry_after=2.0)
            await wait_until(lambda: not link.connected, "the link goes down")
            await updates.put(VssUpdate(SPEED, 0.0, time.time()))
            await wait_until(lambda: trip_log.trips()[0].end_ts is not None, "the trip ends")
            assert not link.connected  # it ended while the home was out of reach
            assert home.handler.events("trip_end") == []
            await wait_until(lambda: trip_log.trips()[0].sent, "the event is in the outbox")

            await wait_until(lambda: home.handler.events("trip_end"), "trip_end after reconnect")
            await wait_until(lambda: len(home.handler.hellos) >= 2, "a second hello")
            # A few more forward rounds and another reconnect: still exactly one.
            await home.server.disconnect(vehicle_id, "again", retry_after=0.2)
            await wait_until(lambda: len(home.handler.hellos) >= 3, "a third hello")
            await asyncio.sleep(0.3)
        finally:
            runtime.stop()
            await asyncio.wait_for(task, 20)
            trip_log.close()
    [end] = home.handler.events("trip_end")
    [start] = home.handler.events("trip_start")
    assert end["data"]["trip"] == start["data"]["trip"] == 1
    assert end["data"]["reason"] == "stopped"
    assert end["data"]["max_speed_kmh"] == 40.0
