"""`vehicle-agent pair` keeps advertising briefly after pairing succeeded.

Home Assistant aborts a discovered config flow the moment its zeroconf service
disappears; pairing completes while that flow's last step is still running, so
an advertisement withdrawn at once made the UI show "Invalid flow specified".
Real zeroconf on 127.0.0.1, a real `vehicle-agent pair` process.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

from bridge import cli as bridge_cli
from bridge.discovery import SERVICE_TYPE
from tests.bridge.test_discovery import _Watcher

ROOT = Path(__file__).resolve().parents[2]
CODE = "97531864"
LINGER_S = 4.0


async def test_advertisement_outlives_pairing_then_goes(tmp_path: Path) -> None:
    ca_dir = tmp_path / "certs"
    assert bridge_cli.main(["ca", "init", "--dir", str(ca_dir), "--ip", "127.0.0.1"]) == 0
    browser_zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    watcher = _Watcher()
    browser = AsyncServiceBrowser(browser_zc.zeroconf, SERVICE_TYPE, handlers=[watcher.handler])
    # Popen returns at once; the pipes are read through to_thread below.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [
            *[sys.executable, "-m", "vehicle_agent.cli", "pair"],
            *["--state-dir", str(tmp_path / "car"), "--host", "127.0.0.1", "--port", "0"],
            *["--interface", "127.0.0.1", "--code", CODE, "--linger", str(LINGER_S)],
            *["--make", "VW", "--model", "Golf"],
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = vehicle_id = None
        for _ in range(20):
            line = await asyncio.to_thread(proc.stdout.readline)
            if line.startswith("Vehicle id:"):
                vehicle_id = line.split(":", 1)[1].strip()
            if line.startswith("Pairing port:"):
                port = int(line.split(":", 1)[1])
            if port and vehicle_id:
                break
        assert port and vehicle_id
        name = await _wait_name(watcher, vehicle_id)

        pair = ["pair", "--host", "127.0.0.1", "--port", str(port), "--ca-dir", str(ca_dir)]
        pair += ["--hub-url", "wss://127.0.0.1:8766/carhub", "--code", CODE]
        assert await asyncio.to_thread(bridge_cli.main, pair) == 0
        paired_at = time.monotonic()
        # Right after pairing the service is still announced ...
        await asyncio.sleep(0.5)
        assert name not in watcher.removed
        assert proc.poll() is None
        # ... and withdrawn once the linger time is over; the process then ends.
        await watcher.wait_for(watcher.removed, name, limit_s=LINGER_S + 15)
        assert time.monotonic() - paired_at >= LINGER_S - 1.0
        rc = await asyncio.to_thread(proc.wait, 30)
        assert rc == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
        await browser.async_cancel()
        await browser_zc.async_close()


async def _wait_name(watcher: _Watcher, vehicle_id: str) -> str:
    async with asyncio.timeout(15):
        while True:
            for name in watcher.added:
                if vehicle_id in name:
                    return name
            watcher.changed.clear()
            await watcher.changed.wait()
