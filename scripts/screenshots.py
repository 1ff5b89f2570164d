"""Screenshots of Home Assistant's real UI showing the car: its device page and a dashboard.

    .venv/bin/python scripts/screenshots.py              # runs the demo headless, then shoots
    .venv/bin/python scripts/screenshots.py --attach     # uses a running `make demo` (.demo/)

Headless Chromium (Debian package ``chromium``, installed with apt-get when
missing) is driven over the DevTools protocol on 127.0.0.1: the script puts
the owner's long-lived token where the frontend keeps its tokens
(``localStorage.hassTokens``), opens each page, waits until the page shows
the expected text (looking through the shadow DOM), and saves a PNG to
docs/screenshots/.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo.car_view import find_car  # noqa: E402
from demo.dashboard import create_dashboard  # noqa: E402
from demo.ha_client import HAWebSocket  # noqa: E402
from demo.output import Console  # noqa: E402
from demo.paths import DEFAULT_WORK_DIR  # noqa: E402
from demo.procs import ManagedProcess  # noqa: E402
from demo.story import DemoOptions, DemoStory  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--remote-debugging-port=0",
]
WIDTH, HEIGHT = 1440, 1000

# Collects the visible text of the page, descending into every shadow root
# (Home Assistant's frontend is made of web components).
DEEP_TEXT_JS = """
(() => {
  const out = [];
  const walk = (node) => {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        const t = child.textContent.trim();
        if (t) out.push(t);
      } else {
        walk(child);
      }
    }
  };
  walk(document);
  return out.join("\\n");
})()
"""


def find_chromium() -> str:
    """The Chromium executable; installs the Debian package when it is missing."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    print("installing chromium (apt-get) ...", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
        check=True,
        env=env,
    )
    path = shutil.which("chromium")
    if path is None:
        raise SystemExit("chromium is still not installed")
    return path


class Browser:
    """One headless Chromium page driven over the DevTools protocol."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._profile = tempfile.mkdtemp(prefix="carhub-chromium-")
        self._proc: ManagedProcess | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def start(self) -> None:
        """Launch Chromium and attach to its first page."""
        chromium = await asyncio.to_thread(find_chromium)
        self._proc = ManagedProcess(
            "chromium",
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            log_path=Path(self._profile + "-log") / "chromium.log",
        )
        await self._proc.start()
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if time.monotonic() > deadline or not self._proc.running:
                raise RuntimeError("Chromium did not open its DevTools port")
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t["type"] == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.enable")
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events are skipped)."""
        assert self._ws is not None
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, "method": method, "params": params})
        async with asyncio.timeout(60):
            while True:
                msg = await self._ws.receive_json()
                if msg.get("id") == msg_id:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    result: dict[str, Any] = msg.get("result", {})
                    return result

    async def goto(self, url: str) -> None:
        """Open ``url`` in the page."""
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its value."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result.get("result", {}).get("value")

    async def wait_for_text(self, needles: list[str], *, timeout_s: float = 60) -> bool:
        """Wait until every string in ``needles`` is shown somewhere on the page."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                text = await self.evaluate(DEEP_TEXT_JS) or ""
                if all(n in text for n in needles):
                    return True
            await asyncio.sleep(0.5)
        return False

    async def screenshot(self, path: Path) -> None:
        """Save the viewport as a PNG."""
        result = await self.call("Page.captureScreenshot", format="png")
        data = base64.b64decode(result["data"])
        await asyncio.to_thread(_write, path, data)

    async def close(self) -> None:
        """Close the page and Chromium."""
        if self._ws is not None:
            await self._ws.close()
        if self._proc is not None:
            await self._proc.stop(timeout_s=10)
        shutil.rmtree(self._profile, ignore_errors=True)
        shutil.rmtree(self._profile + "-log", ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def log_in(browser: Browser, url: str, token: str) -> None:
    """Store the token the way the frontend does after a login, so no login page appears."""
    await browser.goto(f"{url}/onboarding.html")
    await asyncio.sleep(1.0)
    tokens = {
        "hassUrl": url,
        "clientId": f"{url}/",
        "access_token": token,
        "token_type": "Bearer",
        "refresh_token": "",
        "expires_in": 3600 * 24 * 30,
        "expires": int(time.time() * 1000) + 3600 * 24 * 30 * 1000,
    }
    await browser.evaluate(f"localStorage.setItem('hassTokens', {json.dumps(json.dumps(tokens))})")


async def shoot(url: str, token: str, out_dir: Path, session: aiohttp.ClientSession) -> list[Path]:
    """Take the screenshots of the device page and the Car dashboard."""
    ws = HAWebSocket(url, session, token)
    await ws.connect()
    try:
        entries = [
            e
            for e in await ws.command("config_entries/get", domain="carhub")
            if e.get("state") == "loaded"
        ]
        if not entries:
            raise SystemExit("no loaded CarHub entry: is the car paired?")
        car = await find_car(ws, entries[0]["entry_id"])
        if car is None:
            raise SystemExit("the car has no device yet")
        dashboard = await create_dashboard(ws, car)
    finally:
        await ws.close()
    browser = Browser(session)
    saved = []
    await browser.start()
    try:
        await log_in(browser, url, token)
        pages = [
            ("device.png", f"/config/devices/device/{car.device_id}", [car.name, "Sensors"]),
            ("dashboard.png", dashboard, ["Speed", "Trips and the way home", "Living room light"]),
        ]
        for name, path, needles in pages:
            await browser.goto(url + path)
            shown = await browser.wait_for_text(needles)
            await asyncio.sleep(2.0)  # let cards finish their animations
            target = out_dir / name
            await browser.screenshot(target)
            print(f"  {target.relative_to(ROOT)}{'' if shown else '  (expected text not seen!)'}")
            if not shown:
                raise SystemExit(f"{path} never showed {needles}")
            saved.append(target)
    finally:
        await browser.close()
    return saved


async def _main(args: argparse.Namespace) -> int:
    out_dir: Path = args.out
    if args.attach:
        creds = json.loads((args.work_dir / "credentials.json").read_text())
        async with aiohttp.ClientSession() as session:
            await shoot(creds["url"], creds["token"], out_dir, session)
        return 0

    async def after_steps(story: DemoStory) -> None:
        creds = story.ha.credentials
        assert creds is not None
        story.out.step("Screenshots of Home Assistant's UI (headless Chromium)", key="screenshots")
        saved = await shoot(creds.url, creds.token, out_dir, story.session)
        story.out.verdict(len(saved) == 2, f"{len(saved)} screenshots in {out_dir}")

    work = args.work_dir / "screenshots-run"
    story = DemoStory(
        DemoOptions(
            work_dir=work,
            config_dir=work / "ha",
            check=True,
            zeroconf=False,
            loopback_only=True,
            crash_test=False,
        ),
        Console(),
        after_steps=after_steps,
    )
    return await story.run()


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attach", action="store_true", help="use the running `make demo`")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    return asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
