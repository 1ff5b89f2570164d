"""A real Home Assistant for the demo: config dir, `hass` process, onboarding, demo home.

Everything goes through the interfaces a person or the frontend would use:
the onboarding REST API creates the owner (so the UI opens without a
wizard), the WebSocket API creates a long-lived token, areas, aliases and
the Assist exposure of the demo entities.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from demo import ha_runtime
from demo.ha_client import HAClient, HAError, HAWebSocket
from demo.ha_config import AREAS, DEMO_ENTITIES, write_config_dir
from demo.ha_runtime import HARelease
from demo.paths import INTEGRATION_SRC, free_port
from demo.procs import ManagedProcess

USERNAME = "demo"
#: Integrations onboarding's core_config step sets up (see _remove_onboarding_extras).
ONBOARDING_EXTRAS = frozenset({"google_translate", "met", "radio_browser"})
_SETUP_LINE = re.compile(r"Setting up (\S+)|Setup of domain (\S+) took")


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """How to reach and log in to the demo's Home Assistant."""

    url: str
    username: str
    password: str
    token: str  # long-lived access token of the owner


class HAStartError(RuntimeError):
    """Home Assistant did not come up (the message carries the end of its log)."""


class HAInstance:
    """One throwaway Home Assistant: its configuration directory and its `hass` process."""

    def __init__(
        self,
        config_dir: Path,
        *,
        port: int | None = None,
        zeroconf: bool = True,
        integration_src: Path = INTEGRATION_SRC,
        say: Callable[[str], None] = print,
        release: HARelease = HARelease.NEWEST,
    ) -> None:
        """Describe the instance; :meth:`prepare` writes the configuration."""
        self.config_dir = config_dir.resolve()
        self._integration_src = integration_src
        self._zeroconf = zeroconf
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._say = say
        self.release = release
        self.process = ManagedProcess(
            "hass",
            ha_runtime.command(
                release,
                "hass",
                "-c",
                self.config_dir,
                # Requirements are checked by prepare() before start; Home
                # Assistant must never pip-install into the project's venv.
                "--skip-pip",
                "--log-no-color",
            ),
            log_path=self.config_dir / "hass-console.log",
        )
        self.credentials: Credentials | None = None

    @property
    def credentials_file(self) -> Path:
        """Where the URL, login and token are saved (for scripts/screenshots.py)."""
        return self.config_dir.parent / "credentials.json"

    def prepare(self) -> None:
        """Write a fresh config dir with the integration installed; check requirements."""
        ha_runtime.check_visible(self.release, self.config_dir)
        write_config_dir(
            self.config_dir,
            port=self.port,
            zeroconf=self._zeroconf,
            modern_template_cover=self.release is not HARelease.OLDEST,
            integration_src=self._integration_src,
        )
        missing = ha_runtime.missing_requirements(self.release, self.config_dir)
        if missing:
            where = (
                "the venv (install them with .venv/bin/pip)"
                if self.release is HARelease.OLDEST
                else "the newest Home Assistant's venv (add the integration to INTEGRATIONS "
                "in scripts/newest_ha.sh)"
            )
            raise HAStartError(
                f"{where} lacks requirements of integrations the demo loads: " + ", ".join(missing)
            )

    async def start(self, session: aiohttp.ClientSession, *, timeout_s: float = 300.0) -> None:
        """Start `hass` and wait until its HTTP server answers, with progress output."""
        await self.process.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        last_report = 0.0
        client = HAClient(self.url, session)
        while True:
            elapsed = loop.time() - started
            if not self.process.running:
                raise HAStartError(
                    f"hass exited with status {self.process.returncode}:\n"
                    + self.process.log_text(tail=3000)
                )
            if elapsed > timeout_s:
                raise HAStartError(
                    f"Home Assistant did not answer within {timeout_s:.0f} s:\n"
                    + self.process.log_text(tail=3000)
                )
            try:
                await client.get("/api/onboarding", auth=False, timeout_s=5)
                break
            except (aiohttp.ClientError, HAError, TimeoutError):
                pass
            if elapsed - last_report >= 5:
                last_report = elapsed
                self._say(f"  ... Home Assistant starting ({elapsed:3.0f} s){self._progress()}")
            await asyncio.sleep(0.5)
        self._say(f"  Home Assistant answers on {self.url} after {loop.time() - started:.0f} s")

    def _progress(self) -> str:
        """Summarise start-up from the log: how many integrations are set up, the latest one."""
        done: set[str] = set()
        latest = ""
        for line in self.process.log_text(tail=200_000).splitlines():
            if m := _SETUP_LINE.search(line):
                if m.group(2):
                    done.add(m.group(2).rstrip("."))
                else:
                    latest = m.group(1).rstrip(".")
        if not done and not latest:
            return ": importing"
        return f": {len(done)} integrations set up, now {latest or '...'}"

    async def onboard(self, session: aiohttp.ClientSession) -> Credentials:
        """Do onboarding through its REST API exactly as the frontend's wizard does."""
        client_id = f"{self.url}/"
        anon = HAClient(self.url, session)
        steps = await anon.get("/api/onboarding", auth=False)
        pending = {s["step"] for s in steps if not s["done"]}
        if "user" not in pending:
            raise HAStartError(f"onboarding already started in {self.config_dir}: {steps}")
        password = secrets.token_urlsafe(9)
        created = await anon.post(
            "/api/onboarding/users",
            {
                "client_id": client_id,
                "name": "Demo Owner",
                "username": USERNAME,
                "password": password,
                "language": "en",
            },
            auth=False,
        )
        tokens = await anon.request(
            "POST",
            "/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": created["auth_code"],
                "client_id": client_id,
            },
            auth=False,
        )
        api = HAClient(self.url, session, tokens["access_token"])
        await api.post("/api/onboarding/core_config", {})
        await api.post("/api/onboarding/analytics", {})
        await api.post(
            "/api/onboarding/integration",
            {"client_id": client_id, "redirect_uri": f"{self.url}/?auth_callback=1"},
        )
        remaining = [s["step"] for s in await api.get("/api/onboarding") if not s["done"]]
        if remaining:
            raise HAStartError(f"onboarding steps left undone: {remaining}")
        ws = HAWebSocket(self.url, session, tokens["access_token"])
        await ws.connect()
        try:
            token = await ws.command(
                "auth/long_lived_access_token", client_name="CarHub demo", lifespan=30
            )
        finally:
            await ws.close()
        self.credentials = Credentials(
            url=self.url, username=USERNAME, password=password, token=token
        )
        self._save_credentials(self.credentials)
        return self.credentials

    def _save_credentials(self, creds: Credentials) -> None:
        path = self.credentials_file
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(creds), fh, indent=2)

    async def wait_running(
        self, session: aiohttp.ClientSession, *, timeout_s: float = 180.0
    ) -> None:
        """Wait until Home Assistant's core state is RUNNING (start-up finished)."""
        api = self.api(session)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        state = "?"
        while loop.time() < deadline:
            if not self.process.running:
                raise HAStartError("hass exited:\n" + self.process.log_text(tail=3000))
            try:
                state = (await api.get("/api/config", timeout_s=5)).get("state", "?")
            except (aiohttp.ClientError, HAError, TimeoutError):
                state = "unreachable"
            if state == "RUNNING":
                return
            await asyncio.sleep(0.5)
        raise HAStartError(f"Home Assistant still {state} after {timeout_s:.0f} s")

    def api(self, session: aiohttp.ClientSession) -> HAClient:
        """A REST client authenticated with the owner's long-lived token."""
        if self.credentials is None:
            raise HAStartError("onboard() first")
        return HAClient(self.url, session, self.credentials.token)

    async def websocket(self, session: aiohttp.ClientSession) -> HAWebSocket:
        """A connected, authenticated WebSocket."""
        if self.credentials is None:
            raise HAStartError("onboard() first")
        ws = HAWebSocket(self.url, session, self.credentials.token)
        await ws.connect()
        return ws

    async def setup_demo_home(self, session: aiohttp.ClientSession) -> None:
        """Areas with aliases, entity aliases, and Assist exposure of the demo entities."""
        api = self.api(session)
        await self._remove_onboarding_extras(api)
        wanted = [e.entity_id for e in DEMO_ENTITIES]
        await _wait_entities(api, wanted, timeout_s=60)
        ws = await self.websocket(session)
        try:
            areas = {a["name"]: a["area_id"] for a in await ws.command("config/area_registry/list")}
            for name, aliases in AREAS:
                if name in areas:
                    await ws.command(
                        "config/area_registry/update", area_id=areas[name], aliases=list(aliases)
                    )
                else:
                    area = await ws.command(
                        "config/area_registry/create", name=name, aliases=list(aliases)
                    )
                    areas[name] = area["area_id"]
            for entity in DEMO_ENTITIES:
                await ws.command(
                    "config/entity_registry/update",
                    entity_id=entity.entity_id,
                    area_id=areas[entity.area],
                    aliases=list(entity.aliases),
                )
            await ws.command(
                "homeassistant/expose_entity",
                assistants=["conversation"],
                entity_ids=wanted,
                should_expose=True,
            )
            exposed = await ws.command("homeassistant/expose_entity/list")
        finally:
            await ws.close()
        not_exposed = [
            e
            for e in wanted
            if not exposed["exposed_entities"].get(e, {}).get("conversation", False)
        ]
        if not_exposed:
            raise HAStartError(f"entities not exposed to Assist: {not_exposed}")

    async def _remove_onboarding_extras(self, api: HAClient) -> None:
        """Remove what onboarding's core_config step adds but this venv cannot run.

        Like the wizard, that step starts flows for Met.no, Radio Browser and
        Google Translate; their packages (and internet access) are not part of
        the demo, so their flows fail to load and Google Translate leaves a
        failed entry behind. Removing it keeps the UI free of red errors.
        """
        for entry in await api.get("/api/config/config_entries/entry"):
            if entry["domain"] in ONBOARDING_EXTRAS:
                await api.request("DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}")

    async def stop(self) -> int | None:
        """Stop `hass` (SIGTERM: it shuts down cleanly), SIGKILL after 30 s."""
        return await self.process.stop(timeout_s=30.0)


async def _wait_entities(api: HAClient, entity_ids: list[str], *, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    missing: set[str] = set(entity_ids)
    while loop.time() < deadline:
        known = {s["entity_id"] for s in await api.states()}
        missing = set(entity_ids) - known
        if not missing:
            return
        await asyncio.sleep(0.5)
    raise HAStartError(f"demo entities never appeared: {sorted(missing)}")


def describe_states(states: list[dict[str, Any]], entity_ids: list[str]) -> dict[str, str]:
    """``{entity_id: state}`` for the given entities (missing ones as "missing")."""
    by_id = {s["entity_id"]: s["state"] for s in states}
    return {e: by_id.get(e, "missing") for e in entity_ids}
