"""`carhub-bridge serve` as a real process: it prints the renewals and revocations it
performs, and applies a `carhub-bridge revoke` from another process on SIGHUP."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bridge.client import CarLink
from bridge.pki import CarIdentity, HomeCA
from bridge.protocol import MessageType
from bridge.renewal import RenewalPolicy
from tests.bridge.link_testing import CarInbox, car_hello, next_json, wait_for

REPO = Path(__file__).resolve().parents[2]


async def _until(proc: subprocess.Popen[str], event: str) -> dict[str, Any]:
    """Skip lines (bounded) until one with this event."""
    for _ in range(50):
        obj = await next_json(proc)
        if obj.get("event") == event:
            return obj
    raise AssertionError(f"no {event!r} line")


def _serve(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


async def test_serve_prints_renewal_and_applies_cli_revocation_on_sighup(tmp_path: Path) -> None:
    ca = HomeCA.create(tmp_path / "certs")
    home = tmp_path / "car"
    identity = CarIdentity.create(home)
    cert = ca.sign_car_csr(identity.csr_pem("car-7"), vehicle_id="car-7", days=1)
    identity.store_certificate(cert, ca.ca_cert_pem)
    proc = _serve(
        [
            sys.executable, "-m", "bridge.cli", "serve",
            "--ca-dir", str(tmp_path / "certs"), "--state-dir", str(tmp_path / "state"),
            "--host", "127.0.0.1", "--port", "0", "--renewal-days", "20",
            "--crl-check", "0", "--no-stdin",
        ],
    )  # fmt: skip
    car = None
    try:
        listening = await next_json(proc)
        assert listening["event"] == "listening"
        car = CarLink(
            home_dir=home,
            hello_body=car_hello("car-7"),
            on_message=CarInbox(),
            snapshot=dict,
            url=f"wss://127.0.0.1:{listening['port']}",
            backoff_min_s=0.02,
            backoff_max_s=0.2,
            renewal=RenewalPolicy(before=dt.timedelta(days=2), fraction=1.0),
        )
        await car.start()
        renewed = await _until(proc, "renewed")
        assert renewed["vehicle_id"] == "car-7" and renewed["ok"] is True
        not_after = dt.datetime.fromisoformat(renewed["not_after"])
        assert dt.timedelta(days=19) < not_after - dt.datetime.now(dt.UTC) <= dt.timedelta(days=20)
        await _until(proc, "disconnected")  # the car switches to the new certificate...
        await _until(proc, "connected")  # ...and comes back with it
        await wait_for(lambda: car is not None and car.renewals == 1 and car.connected)
        # Revoke from another process; serve applies it on SIGHUP.
        revoke = await asyncio.to_thread(_run, ["revoke", "car-7", "--ca-dir", str(ca.directory)])
        assert "SIGHUP" in revoke.stdout
        assert car.connected  # nothing happened to the live link yet
        proc.send_signal(signal.SIGHUP)
        revoked = await _until(proc, "revoked")
        assert revoked["vehicle_id"] == "car-7" and revoked["disconnected"] is True
        assert format(int(renewed["serial"], 16), "x") in revoked["serials"]
        await wait_for(lambda: car is not None and "revoked" in (car.last_close_reason or ""))
        await car.send(MessageType.EVENT, {"kind": "alert", "ts": time.time(), "data": {}})
        await wait_for(
            lambda: car is not None and "cannot connect" in (car.last_close_reason or "")
        )
        assert not car.connected
    finally:
        if car is not None:
            await car.stop()
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 15)
    assert proc.returncode == 0
