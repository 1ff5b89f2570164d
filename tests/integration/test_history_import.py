"""A dead zone's history lands in long-term statistics at the right hours.

The car side is the real vehicle_agent.history.History: it records a speed
series for four hours while the link is down for 90 minutes of them, then
makes the history events the car sends after reconnecting. Home Assistant
(real recorder, in-memory SQLite) imports the settled hours; the expected
hourly mean, min and max are computed here from the series itself.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

import pytest
from homeassistant.components.recorder import get_instance
from homeassistant.components.recorder.statistics import statistics_during_period
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from bridge.protocol import MessageType
from vehicle_agent.history import History, history_events

from .conftest import PEER, connect_car, hub, message

SPEED = "Vehicle.Speed"
ENTITY = "sensor.volkswagen_golf_speed"
STEP_S = 10


@pytest.fixture
def mock_recorder_before_hass(async_setup_recorder_instance: Any) -> None:
    """The recorder needs its database set up before hass."""


def speed_at(t: float) -> float:
    return round(50 + 30 * math.sin(2 * math.pi * t / 2500), 2)


async def test_dead_zone_history_in_statistics(
    hass: HomeAssistant, recorder_mock: Any, init_integration: MockConfigEntry
) -> None:
    # The car reconnects "now"; 400 s back so hour 3 has settled whatever the minute.
    now = time.time() - 400
    t0 = math.floor(now / 3600) * 3600 - 4 * 3600
    gap_start = t0 + 1.5 * 3600  # the link is back now, in the fifth hour
    history = History(None)
    samples: list[tuple[float, float]] = []
    t = t0
    while t < now - 60:
        samples.append((t, speed_at(t)))
        history.observe(SPEED, speed_at(t), t)
        history.observe("Vehicle.Cabin.Door.Row1.DriverSide.IsOpen", False, t)  # not a number
        history.tick(t)
        t += STEP_S
    history.gap_started("home", gap_start)
    history.gap_started("home", gap_start + 600)  # still the first one
    assert history.gap("home") == gap_start
    events = history_events(history, history.gap("home"), now)
    assert events and all(e["data"]["from"] == t0 + 3600 for e in events)

    await connect_car(hass)
    for body in events:
        await hub(hass).on_message(PEER, message(MessageType.EVENT, body))
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)

    start = dt_util.utc_from_timestamp(t0)
    stats = await get_instance(hass).async_add_executor_job(
        statistics_during_period,
        hass,
        start,
        start + timedelta(hours=6),
        {ENTITY},
        "hour",
        None,
        {"mean", "min", "max"},
    )
    rows = stats[ENTITY]
    # The settled hours the gap touched (from 1:30 to now, in hour 4).
    assert [row["start"] for row in rows] == [t0 + h * 3600 for h in (1, 2, 3)]
    for row in rows:
        hour = [v for ts, v in samples if row["start"] <= ts < row["start"] + 3600]
        assert len(hour) == 3600 // STEP_S
        # Each sample holds for STEP_S: the hour's mean is the plain mean of the samples.
        assert row["mean"] == pytest.approx(sum(hour) / len(hour), abs=0.01)
        assert row["min"] == pytest.approx(min(hour), abs=0.001)
        assert row["max"] == pytest.approx(max(hour), abs=0.001)
    # The current hour waits until it has ended (Home Assistant compiles it first).
    importer = init_integration.runtime_data.coordinator.history
    assert [hour.timestamp() for _, hour in importer.imported] == [row["start"] for row in rows]
