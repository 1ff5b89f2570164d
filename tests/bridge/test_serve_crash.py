"""`carhub-bridge serve` as a real process: deep values, and SIGKILL at any point.

At the worst point (printed, not yet in the ledger) nothing is printed twice. At
random points nothing is lost; a line can be repeated only if the kill falls
between writing it and committing its record, and then it says
``"redelivered": true`` with the same ``id`` (a pipe cannot be written and
recorded atomically; docs/INTERFACES.md).

The car is a real ``CarLink`` in this process; it reaches each ``serve``
process through a ``FaultProxy`` whose target follows the restarts (every
``serve`` listens on a fresh port 0). Output lines are collected by a reader
thread; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from bridge.client import CarLink
from bridge.pki import HomeCA
from bridge.protocol import MAX_DEPTH, MessageType
from tests.bridge.link_testing import FaultProxy, make_car, pair_car, wait_for
from tests.bridge.test_bad_input import frame, hello, next_of, raw_peer

REPO = Path(__file__).resolve().parents[2]


class Serve:
    """One `carhub-bridge serve` process and the JSON lines it printed."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.lines: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "bridge.cli", "serve", "--no-stdin",
                "--ca-dir", str(tmp / "certs"), "--state-dir", str(tmp / "state"),
                "--host", "127.0.0.1", "--port", "0",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(orjson.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    async def port(self) -> int:
        await wait_for(lambda: any(x.get("event") == "listening" for x in self.lines))
        return int(next(x["port"] for x in self.lines if x.get("event") == "listening"))

    def messages(self) -> list[dict[str, Any]]:
        return [x for x in self.lines if "type" in x and "event" not in x]

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait, 15)

    async def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, 15)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_a_value_nested_300_deep_is_rejected_at_decode_and_serve_goes_on(
    tmp_path: Path,
) -> None:
    ca = HomeCA.create(tmp_path / "certs")
    car_ssl = pair_car(ca, tmp_path / "car-id", "car-1")
    serve = Serve(tmp_path)
    try:
        port = await serve.port()
        # envelope (1) > body (2) > signals (3) > entry (4) > value: 4 levels used already.
        deepest_allowed = _nested(MAX_DEPTH - 4)
        async with raw_peer(port, car_ssl) as ws:
            await hello(ws)
            # orjson cannot even write this (it stops at 254 levels): build it by hand.
            deep = b"[" * 300 + b"1" + b"]" * 300
            await ws.send_bytes(
                b'{"v":1,"type":"state","seq":1,"ts":1.0,"body":{"signals":{"X.Deep":{"value":'
                + deep
                + b',"ts":1.0}}}}'
            )
            signals = {"X.Deep": {"value": deepest_allowed, "ts": 2.0}}
            await ws.send_bytes(frame("state", 2, {"signals": signals}))
            ack = await next_of(ws, lambda e: e.type == "ack" and e.body["seq"] == 2)
            assert ack.body["seq"] == 2
        await wait_for(lambda: len(serve.messages()) == 1)
        printed = serve.messages()
        assert [m["seq"] for m in printed] == [2]
        assert printed[0]["body"]["signals"]["X.Deep"]["value"] == deepest_allowed
        assert serve.proc.poll() is None
    finally:
        assert await serve.stop() == 0
    log = "".join(serve.stderr)
    assert "rejected state message seq 1" in log and "nested too deeply" in log
    assert "Traceback" not in log


async def _run_until(cond: Callable[[], bool], what: str, limit_s: float = 30) -> None:
    try:
        await wait_for(cond, limit_s=limit_s)
    except AssertionError:
        raise AssertionError(f"not reached in {limit_s} s: {what}") from None


async def _restart(tmp: Path, proxy: FaultProxy, env: dict[str, str] | None = None) -> Serve:
    serve = Serve(tmp, env)
    proxy.target_port = await serve.port()
    return serve


def _ledger_last(state: Path) -> int:
    with sqlite3.connect(state / "ledger.db") as db:
        row = db.execute("SELECT seq FROM ledger WHERE peer = 'car-1'").fetchone()
    return int(row[0]) if row else 0


async def _crash_rig(
    tmp_path: Path, proxy_factory: Callable[[int], Awaitable[FaultProxy]]
) -> tuple[CarLink, FaultProxy]:
    ca = HomeCA.create(tmp_path / "certs")
    car_ssl = pair_car(ca, tmp_path / "car-id", "car-1")
    proxy = await proxy_factory(1)
    car = make_car(tmp_path / "car", proxy.url, car_ssl)
    return car, proxy


async def test_serve_killed_after_printing_and_before_recording_prints_nothing_twice(
    tmp_path: Path, proxy_factory: Callable[[int], Awaitable[FaultProxy]]
) -> None:
    car, proxy = await _crash_rig(tmp_path, proxy_factory)
    marks = tmp_path / "failpoints.txt"
    runs: list[Serve] = []
    try:
        await car.start()
        for seq in range(1, 6):
            # Freeze serve right after it printed message `seq`, before its ledger
            # records it (the window that used to print it twice), then SIGKILL.
            env = {"CARHUB_FAILPOINT": f"after_handler:{seq}", "CARHUB_FAILPOINT_FILE": str(marks)}
            serve = await _restart(tmp_path, proxy, env)
            runs.append(serve)
            await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"n": seq}})
            await _run_until(
                lambda s=seq: marks.exists() and f"after_handler {s}\n" in marks.read_text(),
                f"failpoint at seq {seq}",
            )
            await serve.kill()
            proxy.cut()
            assert _ledger_last(tmp_path / "state") < seq  # printed, not recorded: resent
        serve = await _restart(tmp_path, proxy)
        runs.append(serve)
        await _run_until(lambda: car.outbox.acked_seq == 5, "every message acked")
        assert await serve.stop() == 0
    finally:
        await car.stop()
        for serve in runs:
            if serve.proc.poll() is None:
                await serve.kill()
    printed = [m["seq"] for s in runs for m in s.messages()]
    assert printed == [1, 2, 3, 4, 5]
    assert {m["id"] for s in runs for m in s.messages()} == {
        f"{car.outbox.stream_id}:{n}" for n in range(1, 6)
    }


async def test_serve_killed_at_random_points_loses_nothing_and_prints_nothing_twice(
    tmp_path: Path, proxy_factory: Callable[[int], Awaitable[FaultProxy]]
) -> None:
    car, proxy = await _crash_rig(tmp_path, proxy_factory)
    rng = random.Random(10)
    runs: list[Serve] = []
    kills_done = asyncio.Event()
    produced = 0
    try:
        await car.start()

        async def produce() -> None:
            # A steady stream (about 250 msg/s) for as long as the kills go on.
            nonlocal produced
            while not kills_done.is_set():
                for _ in range(5):
                    produced += 1
                    body = {"kind": "alert", "ts": 1.0, "data": {"n": produced}}
                    await car.send(MessageType.EVENT, body)
                await asyncio.sleep(0.02)

        producer = asyncio.create_task(produce())
        for _ in range(20):
            serve = await _restart(tmp_path, proxy)
            runs.append(serve)
            before = sum(len(s.messages()) for s in runs)
            # Kill once this run printed something, at a random moment after that.
            await _run_until(
                lambda b=before: sum(len(s.messages()) for s in runs) > b, "a message printed"
            )
            await asyncio.sleep(rng.uniform(0.0, 0.15))
            await serve.kill()
            proxy.cut()
        kills_done.set()
        await producer
        serve = await _restart(tmp_path, proxy)
        runs.append(serve)
        await _run_until(lambda: car.outbox.acked_seq == produced, "every message acked", 60)
        assert await serve.stop() == 0
    finally:
        await car.stop()
        for serve in runs:
            if serve.proc.poll() is None:
                await serve.kill()
    lines = [m for s in runs for m in s.messages()]
    # None lost, in order, one stable id per message.
    assert sorted({m["body"]["data"]["n"] for m in lines}) == list(range(1, produced + 1))
    assert [m["body"]["data"]["n"] for m in lines] == sorted(m["body"]["data"]["n"] for m in lines)
    assert len({m["id"] for m in lines}) == produced
    # A line printed twice is possible only when the kill fell between writing it and
    # committing its record (microseconds); then the repeat is flagged, same id.
    seen: set[str] = set()
    repeats = []
    for m in lines:
        if m["id"] in seen:
            repeats.append(m)
        seen.add(m["id"])
    assert all(m["redelivered"] for m in repeats), repeats
    assert len(repeats) <= 5, repeats  # measured: 0 to 2 in 20 kills
    assert all(s.messages() for s in runs[:-1])  # every kill hit a live stream
