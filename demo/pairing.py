"""Pairing the car with Home Assistant through the config-flow REST API, as the UI does.

Two paths, as in the UI:

* discovered: the car advertises ``_carhub._tcp.local.``; Home Assistant's
  zeroconf starts a ``carhub`` flow that the integrations page lists as
  "Discovered" (the frontend reads it with the WebSocket command
  ``config_entries/flow/progress``). Opening it fetches the flow
  (``GET /api/config/config_entries/flow/<id>``) and submitting the form posts
  the code to the same URL.
* manual: "Add integration" -> CarHub starts a flow with
  ``POST /api/config/config_entries/flow {"handler": "carhub"}`` whose
  ``user`` step asks for host, port and code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from demo.agent_process import PairingWindow
from demo.ha_client import HAClient, HAError, HAWebSocket

DOMAIN = "carhub"
FLOW_BASE = "/api/config/config_entries/flow"

#: Form field names the integration may use, mapped to what the demo fills in.
_FIELD_VALUES = {
    "host": "host",
    "address": "host",
    "port": "port",
    "pairing_port": "port",
    "code": "code",
    "pairing_code": "code",
    "listen_port": "listen_port",
}


class PairingFlowError(RuntimeError):
    """The config flow did not end with a created entry."""


class FlowVanishedError(PairingFlowError):
    """Home Assistant no longer knows the flow (it was aborted while a step ran)."""


@dataclass(frozen=True, kw_only=True)
class PairingOutcome:
    """How the car was added."""

    path: str  # "discovered (zeroconf)" or "manual (user step)"
    entry_id: str
    title: str
    steps: list[str]


async def find_discovered_flow(
    ws: HAWebSocket, *, timeout_s: float, poll_s: float = 0.5
) -> dict[str, Any] | None:
    """Wait for a zeroconf-discovered carhub flow in Home Assistant's flows in progress."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        for flow in await ws.command("config_entries/flow/progress"):
            context = flow.get("context", {})
            if flow.get("handler") == DOMAIN and context.get("source") == "zeroconf":
                return dict(flow)
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(poll_s)


def _fill_form(result: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Answer the form in ``result`` as a person would.

    The code (and host and port on the manual step) come from what the car
    shows; the hub's listen port is the demo's free port; every other field
    keeps the default the form offers, as the frontend submits it.
    """
    answer: dict[str, Any] = {}
    for field in result.get("data_schema") or []:
        name = field["name"]
        if name in _FIELD_VALUES:
            answer[name] = values[_FIELD_VALUES[name]]
        elif "default" in field:
            answer[name] = field["default"]
        elif field.get("required"):
            raise PairingFlowError(f"step {result.get('step_id')!r} asks for unknown {name!r}")
    return answer


async def _drive(
    api: HAClient, result: dict[str, Any], values: dict[str, Any], steps: list[str]
) -> dict[str, Any]:
    """Answer forms until the flow ends (at most a few steps; a form with errors fails)."""
    for _ in range(5):
        kind = result.get("type")
        if kind == "create_entry":
            return result
        if kind != "form":
            raise PairingFlowError(f"flow ended with {kind}: {result.get('reason') or result}")
        if result.get("errors"):
            raise PairingFlowError(f"step {result['step_id']!r} errors: {result['errors']}")
        steps.append(str(result["step_id"]))
        try:
            result = await api.post(
                f"{FLOW_BASE}/{result['flow_id']}", _fill_form(result, values), timeout_s=60
            )
        except HAError as err:
            if "HTTP 404" in str(err):
                raise FlowVanishedError(str(err)) from err
            raise
    raise PairingFlowError("config flow did not finish within 5 steps")


async def pair_via_config_flow(
    api: HAClient,
    ws: HAWebSocket,
    window: PairingWindow,
    *,
    hub_port: int,
    discovery_timeout_s: float,
) -> PairingOutcome:
    """Add the car in Home Assistant with the code it shows; prefer the discovered flow.

    ``hub_port`` answers the first car's "listen port" field (the port the
    integration's mTLS listener binds), so the demo never collides with
    another Home Assistant on the default port.
    """
    steps: list[str] = []
    values = {
        "host": window.host,
        "port": window.port,
        "code": window.code,
        "listen_port": hub_port,
    }
    flow = None
    if discovery_timeout_s > 0:
        flow = await find_discovered_flow(ws, timeout_s=discovery_timeout_s)
    if flow is not None:
        path = "discovered (zeroconf)"
        result = await api.get(f"{FLOW_BASE}/{flow['flow_id']}")
    else:
        path = "manual (user step)"
        result = await api.post(FLOW_BASE, {"handler": DOMAIN, "show_advanced_options": False})
    done = await _drive(api, result, values, steps)
    entry = done.get("result") or {}
    return PairingOutcome(
        path=path,
        entry_id=str(entry.get("entry_id", "")),
        title=str(done.get("title", entry.get("title", ""))),
        steps=steps,
    )
