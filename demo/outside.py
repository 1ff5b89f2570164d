"""The demo's step "from outside": the car reaches home only through a reverse proxy.

A real nginx on 127.0.0.1 ends TLS with its own certificate in front of Home
Assistant, as an owner's proxy (or Home Assistant Cloud) would. Home
Assistant's external URL is set to it; the integration sends the connected
car the new address over the link (no pairing again). The agent is then
restarted with ``--remote-only`` (on the road its home-network address does
not answer) and trusting the proxy's certificate: it comes back through the
proxy, inside its own mutual TLS, and Home Assistant's *Connected via* sensor
says *remote*. Entities update, a spoken command and a notification go
through; the crash step after this one runs through the proxy too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.tunnel import TUNNEL_PATH
from demo.agent_process import agent_process
from demo.car_view import wait_for_values
from demo.journal import read_journal, wait_for_entry
from demo.procs import wait_for_log_line
from demo.reverse_proxy import ReverseProxy
from demo.voice import COMMANDS, drop_into_inbox, synthesize

if TYPE_CHECKING:
    from demo.story import DemoStory

OUTSIDE_MESSAGE = "Sent through the reverse proxy."


def _remote_urls(state_dir: Path) -> list[str]:
    """The remote addresses in the car's home.json files."""
    urls: list[str] = []
    for home in sorted((state_dir / "homes").glob("*/home.json")):
        try:
            data = json.loads(home.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        urls += [u for u in data.get("remote_urls", []) if isinstance(u, str)]
    return urls


async def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def step_outside(story: DemoStory) -> None:
    """Run the step (see the module doc); its verdict goes to the story's console."""
    story.out.step(
        "From outside: the car reaches home only through a reverse proxy (nginx, TLS)",
        key="outside",
    )
    st = story.state
    assert st.layout is not None and st.agent_opts is not None and st.car is not None
    proxy = ReverseProxy(story.opts.work_dir / "nginx", story.ha.port)
    await proxy.start()
    st.proxy = proxy
    story.out.detail(f"nginx on {proxy.url} -> Home Assistant on {story.ha.url}")
    ws = await story.ha.websocket(story.session)
    try:
        await ws.command("config/core/update", external_url=proxy.url)
    finally:
        await ws.close()
    tunnel = proxy.url + TUNNEL_PATH
    state_dir = st.layout.state_dir
    learned = await _wait(lambda: tunnel in _remote_urls(state_dir), 30)
    story.out.detail(
        f"external URL set to {proxy.url}; the connected car "
        f"{'learned' if learned else 'did NOT learn'} {tunnel} over the link"
    )
    # On the road: the home network does not answer; only the proxy does.
    assert st.agent is not None
    await st.agent.stop(timeout_s=15)
    st.agent_opts = dataclasses.replace(st.agent_opts, remote_only=True, trust_file=proxy.cert_path)
    restarted = time.time()
    st.agent = agent_process(st.layout, st.agent_opts)
    await st.agent.start()
    link = await story._wait_link_up(timeout_s=60)
    via = await wait_for_log_line(
        st.agent,
        lambda line: line if "via a remote address" in line else None,
        timeout_s=30,
    )
    story.out.detail(f"agent log: {via.strip() if via else '(no remote connection logged)'}")
    by_key = {e.key: e.entity_id for e in st.car.entities}
    route_entity = by_key.get("connection_route", "")
    seen_entity = by_key.get("last_seen", "")

    def remote(states: dict[str, dict[str, Any]]) -> bool:
        return states.get(route_entity, {}).get("state") == "remote"

    states = await wait_for_values(story.api, [route_entity], timeout_s=30, ready=remote)
    route = states.get(route_entity, {}).get("state", "missing")

    def fresh(states: dict[str, dict[str, Any]]) -> bool:
        value = states.get(seen_entity, {}).get("last_changed", "")
        return _iso_after(value, restarted)

    seen = await wait_for_values(story.api, [seen_entity], timeout_s=30, ready=fresh)
    updated = fresh(seen)
    story.out.detail(f"{route_entity} = {route}; entities updated after the restart: {updated}")
    # Home Assistant -> car through the proxy.
    sent_at = time.time()
    await story.api.call_service(
        "carhub", "notify_vehicle", {"device_id": st.car.device_id, "message": OUTSIDE_MESSAGE}
    )
    note = await wait_for_entry(
        st.layout.journal,
        lambda e: e.get("kind") == "notify" and e.get("message") == OUTSIDE_MESSAGE,
        timeout_s=30,
        after=sent_at - 1,
    )
    # Car -> Home Assistant: a spoken command, when voice works in this run.
    voice_ok = bool(st.notes.get("voice_ok"))
    light = "not tried (voice unavailable)"
    command = COMMANDS[story.opts.voice_language][1]  # the language the car listens in
    if voice_ok:
        await story.api.call_service("light", "turn_off", {"entity_id": command.entity_id})
        wav = await synthesize(command, story.opts.work_dir / "command-outside.wav")
        dropped = drop_into_inbox(wav, st.layout.inbox, name="ptt-outside")

        def on(states: dict[str, dict[str, Any]]) -> bool:
            return states.get(command.entity_id, {}).get("state") == command.expected_state

        lights = await wait_for_values(story.api, [command.entity_id], timeout_s=60, ready=on)
        light = lights.get(command.entity_id, {}).get("state", "missing")
        heard = [
            e.get("text")
            for e in read_journal(st.layout.journal)
            if e.get("kind") == "intent" and float(e.get("t", 0)) >= dropped
        ]
        story.out.detail(f"spoken through the proxy: heard {heard}; {command.entity_id} {light}")
    st.notes["outside"] = {
        "proxy": proxy.url,
        "learned_address": learned,
        "link": link,
        "logged_remote": via is not None,
        "route": route,
        "entities_updated": updated,
        "notify": note is not None,
        "voice": light,
    }
    voice_passed = (not voice_ok) or light == command.expected_state
    story._require(
        learned
        and link
        and via is not None
        and route == "remote"
        and updated
        and note is not None
        and voice_passed,
        f"address learned over the link: {learned}; connected via {route} (nginx); "
        f"entities updated: {updated}; notification {'received' if note else 'NOT received'}; "
        f"voice: {light}",
    )


def _iso_after(value: str, t: float) -> bool:
    try:
        return datetime.fromisoformat(value).timestamp() >= t
    except ValueError:
        return False
