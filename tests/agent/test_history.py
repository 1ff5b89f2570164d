"""The car's down-sampled history: minute rows, its bound, and gaps per home."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bridge.protocol import MessageType
from vehicle_agent.history import History, history_events, history_loop

SPEED = "Vehicle.Speed"
FUEL = "Vehicle.Powertrain.FuelSystem.RelativeLevel"


def test_minute_rows_are_time_weighted_and_constant_signals_kept() -> None:
    history = History(None)
    # 0-20 s at 30, 20-60 s at 90, then 60 s at 90 again without a new value.
    history.observe(SPEED, 30.0, 6000.0)
    history.observe(FUEL, 55, 6000.0)
    history.observe(SPEED, 90.0, 6020.0)
    history.observe(SPEED, "fast", 6030.0)
    history.observe(SPEED, True, 6031.0)
    history.tick(6125.0)
    rows = history.samples(0, 10_000)
    assert rows[SPEED] == [[6000.0, 60.0, 70.0, 30.0, 90.0], [6060.0, 60.0, 90.0, 90.0, 90.0]]
    assert [r[2] for r in rows[FUEL]] == [55.0, 55.0]  # unchanged, still one row a minute
    # Starting mid-minute: the mean covers only the time the value was known.
    late = History(None)
    late.observe(SPEED, 40.0, 6030.0)
    late.tick(6060.0)
    assert late.samples(0, 10_000)[SPEED] == [[6000.0, 60.0, 40.0, 40.0, 40.0]]


def test_bound_merges_old_rows_and_keeps_the_mean() -> None:
    history = History(None, max_rows=300)
    values = [(t, float(t % 7 * 10)) for t in range(0, 400 * 60, 30)]
    for t, v in values:
        history.observe(SPEED, v, float(t))
        history.tick(float(t))
    history.tick(400 * 60.0)
    assert history.rows <= 300
    rows = history.samples(0, 10**9)[SPEED]
    spans = {r[1] for r in rows}
    assert spans == {60.0, 600.0}  # old rows coarse, recent ones per minute
    covered = sum(r[1] for r in rows)
    mean = sum(r[1] * r[2] for r in rows) / covered
    first = rows[0][0]
    kept = [v for t, v in values if t >= first]
    assert mean == pytest.approx(sum(kept) / len(kept), rel=0.01)
    assert min(r[3] for r in rows) == 0.0 and max(r[4] for r in rows) == 60.0


def test_events_cover_whole_hours_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vehicle_agent.history.CHUNK_POINTS", 100)
    history = History(tmp_path / "h.db")
    for t in range(3600, 4 * 3600, 10):
        history.observe(SPEED, 50.0, float(t))
        history.observe(FUEL, 40.0, float(t))
        history.tick(float(t))
    history.tick(4 * 3600.0)
    events = history_events(history, since=2 * 3600 + 1800, now=4 * 3600)
    points = [p for e in events for rows in e["data"]["signals"].values() for p in rows]
    assert {e["kind"] for e in events} == {"history"}
    assert [e["data"]["part"] for e in events] == list(range(1, len(events) + 1))
    assert len(points) == 2 * 120  # two signals, hours 2 and 3, one row a minute
    assert min(p[0] for p in points) == 2 * 3600
    assert len(events) == 3 and all(
        sum(len(rows) for rows in e["data"]["signals"].values()) <= 100 for e in events
    )
    # Gaps survive a restart of the agent.
    history.gap_started("home-a", 7300.0)
    history.close()
    again = History(tmp_path / "h.db")
    assert again.gap("home-a") == 7300.0 and again.rows == 2 * 180


class Link:
    def __init__(self) -> None:
        self.connected = True
        self.sent: list[dict] = []

    async def send(self, type: MessageType, body: dict) -> int:
        assert type == MessageType.EVENT
        self.sent.append(body)
        return len(self.sent)


def test_history_loop_sends_the_dead_zone_once_when_the_link_is_back() -> None:
    async def go() -> tuple[Link, History]:
        now = [36_000.0]
        history = History(None)
        link = Link()
        task = asyncio.create_task(
            history_loop({"home": link}, history, interval_s=0.001, clock=lambda: now[0])
        )

        async def drive(seconds: int, speed: float) -> None:
            for _ in range(seconds // 10):
                now[0] += 10
                history.observe(SPEED, speed, now[0])
                await asyncio.sleep(0.002)

        await drive(120, 30.0)
        link.connected = False
        await drive(600, 80.0)  # ten minutes out of reach
        assert link.sent == []
        link.connected = True
        await drive(60, 20.0)
        task.cancel()
        return link, history

    link, history = asyncio.run(go())
    assert len(link.sent) == 1 and history.gap("home") is None
    rows = link.sent[0]["data"]["signals"][SPEED]
    assert link.sent[0]["data"]["from"] == 36_000.0  # the top of the hour the gap began in
    assert [r[2] for r in rows].count(80.0) >= 9
