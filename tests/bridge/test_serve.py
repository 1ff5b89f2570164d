"""`carhub-bridge serve` as a real process: JSON lines out, notifications in, clean stop."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.commands.serve import parse_command
from bridge.pki import HomeCA
from bridge.protocol import MessageType
from tests.bridge.link_testing import CarInbox, make_car, next_json, pair_car, wait_for

REPO = Path(__file__).resolve().parents[2]


def _serve_process(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "bridge.cli", "serve",
            "--ca-dir", str(tmp_path / "certs"), "--state-dir", str(tmp_path / "state"),
            "--host", "127.0.0.1", "--port", "0", "--notify", "car-9", "welcome home",
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


async def test_serve_prints_messages_and_sends_notifications(tmp_path: Path) -> None:
    ca = HomeCA.create(tmp_path / "certs")
    car_ssl = pair_car(ca, tmp_path / "car-id", "car-9")
    proc = _serve_process(tmp_path)
    inbox = CarInbox()
    car = None
    try:
        listening = await next_json(proc)
        assert listening["event"] == "listening" and listening["hub_id"] == ca.hub_id
        queued = await next_json(proc)
        assert queued == {"event": "queued", "vehicle_id": "car-9", "type": "notify", "seq": 1}
        car = make_car(
            tmp_path / "car", f"wss://127.0.0.1:{listening['port']}", car_ssl, "car-9", inbox=inbox
        )
        await car.start()
        connected = await next_json(proc)
        assert connected["event"] == "connected" and connected["vehicle_id"] == "car-9"
        await car.send(
            MessageType.STATE, {"signals": {"Vehicle.Speed": {"value": 42.0, "ts": time.time()}}}
        )
        await car.send(MessageType.EVENT, {"kind": "trip_start", "ts": time.time(), "data": {}})
        first, second = await next_json(proc), await next_json(proc)
        assert (first["type"], first["seq"]) == ("state", 1)
        assert first["body"]["signals"]["Vehicle.Speed"]["value"] == 42.0
        assert (second["type"], second["seq"], second["vehicle_id"]) == ("event", 2, "car-9")
        await wait_for(lambda: car is not None and car.outbox.acked_seq == 2)
        # The notification queued at start was delivered; stdin queues more.
        await wait_for(lambda: len(inbox.messages) == 1)
        assert inbox.messages[0].body["message"] == "welcome home"
        assert proc.stdin is not None
        proc.stdin.write("notify car-9 dinner is ready\nthis is not a command\n")
        proc.stdin.flush()
        assert (await next_json(proc))["event"] == "queued"
        error = await next_json(proc)
        assert error["event"] == "error" and "expected" in error["error"]
        await wait_for(lambda: len(inbox.messages) == 2)
        assert inbox.messages[1].body["message"] == "dinner is ready"
        assert inbox.messages[1].body["expires_at"] > time.time()
    finally:
        if car is not None:
            await car.stop()
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 15)
    assert proc.returncode == 0


def test_serve_without_a_ca_fails_clearly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "serve", "--ca-dir", str(tmp_path / "none"),
         "--state-dir", str(tmp_path / "s"), "--no-stdin"],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "ca init" in result.stderr


def test_parse_command() -> None:
    vid, type_, body = parse_command("notify car-1 hello there\n", ttl=60)
    assert (vid, type_, body["message"], body["priority"]) == (
        "car-1",
        "notify",
        "hello there",
        "normal",
    )
    assert body["expires_at"] > time.time()
    vid, type_, body = parse_command("command car-1 clear_dtcs", ttl=60)
    assert (type_, body["command"]) == (MessageType.COMMAND, "clear_dtcs")
    raw = '{"vehicle_id": "car-1", "type": "vocabulary", "body": {"language": "en"}}'
    assert parse_command(raw, ttl=60) == ("car-1", MessageType.VOCABULARY, {"language": "en"})
    for bad in (
        "",
        "notify car-1",
        "{broken",
        '{"vehicle_id": "x", "type": "ack", "body": {}}',
        "[1]",
    ):
        with pytest.raises(ValueError):
            parse_command(bad, ttl=60)
