"""End-to-end latency: a CAN frame entering the agent -> the entity changing in Home Assistant,
and the end of a spoken command -> the light changing.

Run: ``.venv/bin/python benchmarks/e2e.py [--steps 40] [--utterances 5]``. Writes
``benchmarks/results/e2e.json`` and prints a summary.

Setup (all real processes, all on 127.0.0.1): the demo's Home Assistant
(`hass`, onboarded, the integration installed as HACS would), the car paired
through the config-flow REST API, and `vehicle-agent run` reading a *live*
bus through python-can's ``socketcand`` interface. This script is that
socketcand server: it plays the powertrain bus (can0) of
data/can/rav4_highway_60s.log at its recorded pace, so the agent
decodes a real bus load, but replaces the payload of every SPEED frame with
a speed it controls. Every ``--step-s`` (+ a random 0-0.5) seconds the speed
jumps to a new value (far outside the deadband); the time the first frame carrying it is
written to the agent's socket is "frame enters the agent". Home Assistant's
``state_changed`` event for the speed sensor carries ``last_updated``, the
time Home Assistant applied the new state: the difference is the latency.
Both clocks are this machine's. The agent runs with its shipped defaults
(rate limit from the profile, ``--send-interval 0.5``): the figure includes
the agent's batching, on purpose, because that is what a user sees.

Voice: the Korean command "거실 조명 켜" is synthesised once (espeak-ng, 16 kHz
mono); for each utterance the light is switched off, then the recording is
dropped into the agent's voice inbox (the end of speech: the utterance is
complete when the file appears) and the light's ``last_changed`` is taken
from its ``state_changed`` event.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.agent_process import AgentOptions, korean_model_dir
from demo.car_view import find_car
from demo.ha_client import HAWebSocket
from demo.output import Console
from demo.paths import CAN_LOG, DBC_DIR, DEFAULT_WORK_DIR, PROFILE, venv_bin
from demo.procs import ManagedProcess
from demo.story import DemoOptions, DemoStory
from demo.voice import KOREAN_COMMAND, drop_into_inbox, synthesize
from vehicle_agent.can_input import read_log
from vehicle_agent.dbc_loader import load_dbc

RESULTS = Path(__file__).resolve().parent / "results" / "e2e.json"
SPEED_MESSAGE = "SPEED"
DBC_FILE = "toyota_new_mc_pt_generated.dbc"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(latencies_ms: list[float]) -> dict[str, Any]:
    """p50/p95/min/max/mean of a list of latencies (ms)."""
    if not latencies_ms:
        return {"n": 0}
    return {
        "n": len(latencies_ms),
        "p50_ms": round(_percentile(latencies_ms, 0.5), 1),
        "p95_ms": round(_percentile(latencies_ms, 0.95), 1),
        "min_ms": round(min(latencies_ms), 1),
        "max_ms": round(max(latencies_ms), 1),
        "mean_ms": round(statistics.fmean(latencies_ms), 1),
    }


@dataclass
class SpeedPlan:
    """The controlled speed: which value is on the bus, and when each value first went out.

    Each value holds for ``step_s`` plus a random 0..0.5 s (fixed seed): steps
    at a constant period would stay in phase with the agent's 0.5 s send loop
    and measure one point of it instead of its whole spread.
    """

    step_s: float
    values: list[float]
    first_sent: dict[float, float] = field(default_factory=dict)
    started: float | None = None
    bounds: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(20241121)
        total = 0.0
        for _ in self.values:
            total += self.step_s + rng.uniform(0.0, 0.5)
            self.bounds.append(total)

    @property
    def duration(self) -> float:
        """Seconds from the first step to the end of the last."""
        return self.bounds[-1] if self.bounds else 0.0

    def current(self, now: float) -> float | None:
        """The value to put on the bus now (None before start or after the last step)."""
        if self.started is None:
            return None
        index = bisect.bisect_right(self.bounds, now - self.started)
        return self.values[index] if index < len(self.values) else None


class FakeSocketcand:
    """A socketcand server on 127.0.0.1 playing one bus of a CAN log, paced, looping."""

    def __init__(self, frames: list[tuple[float, int, bytes]], speed_id: int, encode: Any) -> None:
        self._frames = frames
        self._speed_id = speed_id
        self._encode = encode
        self.plan: SpeedPlan | None = None
        self.port = 0
        self.frames_sent = 0
        self._server: asyncio.Server | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener (the client task ends with its connection)."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"< hi >")
            await writer.drain()
            await self._expect(reader, b"< open ")
            writer.write(b"< ok >")
            await writer.drain()
            await self._expect(reader, b"< rawmode >")
            writer.write(b"< ok >")
            await writer.drain()
            self.connected.set()
            await self._play(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _expect(reader: asyncio.StreamReader, prefix: bytes) -> None:
        data = await asyncio.wait_for(reader.readuntil(b">"), 10)
        if not data.strip().startswith(prefix):
            raise ConnectionError(f"unexpected socketcand command {data!r}")

    def _cycle(self) -> Iterator[tuple[float, int, bytes]]:
        while True:
            yield from self._frames

    async def _play(self, writer: asyncio.StreamWriter) -> None:
        """Send the log's frames at their recorded pace, in 2 ms slices, forever."""
        loop = asyncio.get_running_loop()
        frames = self._cycle()
        t0_log, _, _ = self._frames[0]
        t0 = loop.time()
        offset = 0.0
        last_log_ts = t0_log
        pending = next(frames)
        while True:
            now = loop.time()
            chunk: list[bytes] = []
            speed_value: float | None = None
            while True:
                ts, can_id, data = pending
                if ts < last_log_ts:  # the log wrapped: keep time moving forward
                    offset += last_log_ts - ts + 0.001
                last_log_ts = ts
                due = t0 + (ts - t0_log) + offset
                if due > now:
                    break
                if can_id == self._speed_id and self.plan is not None:
                    value = self.plan.current(time.time())
                    if value is not None:
                        data = self._encode(data, value)
                        speed_value = value
                wall = time.time()
                chunk.append(
                    f"< frame {can_id:03X} {int(wall)}.{int(wall % 1 * 1e6):06d} "
                    f"{data.hex().upper()} >".encode()
                )
                pending = next(frames)
            if chunk:
                writer.write(b"".join(chunk))
                await writer.drain()
                self.frames_sent += len(chunk)
                if speed_value is not None and self.plan is not None:
                    self.plan.first_sent.setdefault(speed_value, time.time())
            await asyncio.sleep(0.002)


def load_bus(log: Path) -> tuple[list[tuple[float, int, bytes]], int, Any]:
    """can0 frames of the log, the SPEED id, and a function re-encoding SPEED with a value."""
    db = load_dbc(DBC_DIR / DBC_FILE).database
    speed = db.get_message_by_name(SPEED_MESSAGE)
    frames = [
        (msg.timestamp, msg.arbitration_id, bytes(msg.data))
        for msg in read_log(log)
        if str(msg.channel or "can0") == "can0"
    ]

    def encode(data: bytes, value: float) -> bytes:
        fields = speed.decode(data, decode_choices=False)
        fields["SPEED"] = value
        encoded: bytes = speed.encode(fields, strict=False)
        return encoded

    return frames, speed.frame_id, encode


async def measure_can(
    story: DemoStory, server: FakeSocketcand, speed_entity: str, steps: int, step_s: float
) -> dict[str, Any]:
    """Step the speed ``steps`` times; latency of each step to Home Assistant's state."""
    values = [round(40.0 + (i % 2) * 30.0 + i * 0.3, 1) for i in range(steps)]
    plan = SpeedPlan(step_s=step_s, values=values)
    ws = await story.ha.websocket(story.session)
    latencies: list[float] = []
    seen: set[float] = set()
    try:
        events = await ws.subscribe_events("state_changed")
        server.plan = plan
        plan.started = time.time()
        deadline = plan.started + plan.duration + 10
        while time.time() < deadline and len(seen) < steps:
            try:
                event = await asyncio.wait_for(events.get(), max(0.1, deadline - time.time()))
            except TimeoutError:
                break
            data = event.get("data", {})
            if data.get("entity_id") != speed_entity or not data.get("new_state"):
                continue
            try:
                shown = round(float(data["new_state"]["state"]), 1)
            except ValueError:
                continue
            if shown in plan.first_sent and shown not in seen:
                seen.add(shown)
                applied = datetime.fromisoformat(data["new_state"]["last_updated"]).timestamp()
                latencies.append((applied - plan.first_sent[shown]) * 1000)
    finally:
        server.plan = None
        await ws.close()
    result = summary(latencies)
    result["steps_sent"] = len(plan.first_sent)
    result["steps_seen_in_home_assistant"] = len(seen)
    return result


async def measure_voice(story: DemoStory, inbox: Path, utterances: int) -> dict[str, Any]:
    """End of speech (recording dropped into the inbox) -> the light's state change."""
    entity = KOREAN_COMMAND.entity_id
    wav = await synthesize(KOREAN_COMMAND, story.opts.work_dir / "bench-voice.wav")
    latencies: list[float] = []
    failures = 0
    ws = await story.ha.websocket(story.session)
    try:
        events = await ws.subscribe_events("state_changed")
        for i in range(utterances):
            await story.api.call_service("light", "turn_off", {"entity_id": entity})
            await asyncio.sleep(1.0)
            while not events.empty():
                events.get_nowait()
            dropped = drop_into_inbox(wav, inbox, name=f"bench-{i}")
            deadline = time.time() + 30
            done = False
            while time.time() < deadline and not done:
                try:
                    event = await asyncio.wait_for(events.get(), deadline - time.time())
                except TimeoutError:
                    break
                data = event.get("data", {})
                new = data.get("new_state") or {}
                if data.get("entity_id") == entity and new.get("state") == "on":
                    changed = datetime.fromisoformat(new["last_changed"]).timestamp()
                    latencies.append((changed - dropped) * 1000)
                    done = True
            failures += 0 if done else 1
    finally:
        await ws.close()
    result = summary(latencies)
    result["failures"] = failures
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Bring everything up, measure, tear down; return the results."""
    console = Console()
    work = args.work_dir.resolve()
    story = DemoStory(
        DemoOptions(
            work_dir=work,
            config_dir=work / "ha",
            check=True,
            zeroconf=False,
            loopback_only=True,
        ),
        console,
    )
    frames, speed_id, encode = await asyncio.to_thread(load_bus, CAN_LOG)
    server = FakeSocketcand(frames, speed_id, encode)
    await server.start()
    agent: ManagedProcess | None = None
    story.open_session()
    try:
        await story.step_config()
        await story.step_start_home_assistant()
        window = await story.step_pairing_window()
        await story.step_pair(window)
        layout = story.state.layout
        assert layout is not None
        model = korean_model_dir()
        opts = AgentOptions(voice_model=model, voice_language="ko")
        argv = [
            str(venv_bin("vehicle-agent")),
            "-v",
            "run",
            "--profile",
            str(PROFILE),
            "--dbc-dir",
            str(DBC_DIR),
            "--can-interface",
            "socketcand",
            "--can-channel",
            "can0",
            "--state-dir",
            str(layout.state_dir),
            "--journal",
            str(layout.journal),
            "--tts",
            "null",
        ]
        if opts.voice_model is not None:
            argv += [
                "--voice-model",
                str(opts.voice_model),
                "--voice-language",
                "ko",
                "--voice-inbox",
                str(layout.inbox),
            ]
        env = {
            **os.environ,
            # python-can reads extra bus arguments from CAN_CONFIG (JSON).
            "CAN_CONFIG": json.dumps({"host": "127.0.0.1", "port": server.port}),
        }
        agent = ManagedProcess(
            "vehicle-agent run (socketcand)", argv, log_path=layout.run_log, env=env
        )
        story.state.agent = agent
        await agent.start()
        await asyncio.wait_for(server.connected.wait(), 60)
        car = await _wait_car(story)
        speed_entity = next(e.entity_id for e in car.entities if e.key == "speed")
        print(f"measuring CAN -> Home Assistant: {args.steps} speed steps, {args.step_s} s apart")
        can_result = await measure_can(story, server, speed_entity, args.steps, args.step_s)
        print(f"measuring end of speech -> light: {args.utterances} utterances")
        voice_result = await measure_voice(story, layout.inbox, args.utterances)
        config = await story.api.get("/api/config")
        return {
            "benchmark": "e2e",
            "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "home_assistant": config.get("version"),
            "setup": "real hass + vehicle-agent run (socketcand on 127.0.0.1) + this script "
            "as the bus; mTLS link on 127.0.0.1; agent defaults (--send-interval 0.5)",
            "can_frame_to_entity": {
                **can_result,
                "step_s": args.step_s,
                "bus_frames_sent": server.frames_sent,
                "how": "first SPEED frame with a new value written to the agent's socket -> "
                "state_changed last_updated of the speed sensor in Home Assistant",
            },
            "end_of_speech_to_light": {
                **voice_result,
                "phrase": KOREAN_COMMAND.text,
                "how": "recording dropped into --voice-inbox -> state_changed last_changed "
                "of light.living_room_light",
            },
        }
    finally:
        await story.shutdown()
        await server.stop()


async def _wait_car(story: DemoStory) -> Any:
    assert story.state.entry_id is not None
    ws: HAWebSocket = await story.ha.websocket(story.session)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            car = await find_car(ws, story.state.entry_id)
            if car is not None and any(e.key == "speed" for e in car.entities):
                story.state.car = car
                return car
            await asyncio.sleep(1.0)
    finally:
        await ws.close()
    raise SystemExit("the car's speed sensor never appeared; see " + str(story.state.layout))


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="speed steps to time")
    parser.add_argument("--step-s", type=float, default=1.5, help="seconds between steps")
    parser.add_argument("--utterances", type=int, default=5, help="spoken commands to time")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR / "bench-e2e")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    can = results["can_frame_to_entity"]
    voice = results["end_of_speech_to_light"]
    print(
        f"CAN frame -> entity: p50 {can.get('p50_ms')} ms, p95 {can.get('p95_ms')} ms "
        f"(n={can.get('n')}/{can.get('steps_sent')})"
    )
    print(
        f"end of speech -> light: p50 {voice.get('p50_ms')} ms, p95 {voice.get('p95_ms')} ms "
        f"(n={voice.get('n')}, failures {voice.get('failures')})"
    )
    print(f"wrote {RESULTS}")
    return 0 if can.get("n") else 1


if __name__ == "__main__":
    sys.exit(main())
