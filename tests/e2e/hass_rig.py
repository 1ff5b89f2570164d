"""A real `hass` process with the CarHub integration and a probe, for crash tests.

The config dir holds: a minimal ``configuration.yaml`` (HTTP on 127.0.0.1 and
a free port, Assist, five input booleans "Lamp 1".."Lamp 5"), a CarHub config
entry for one car written into ``.storage/core.config_entries`` (what pairing
leaves behind), the home CA under ``.storage/carhub`` and the car's identity
(``car/``) signed by it, the integration (a link to this tree's
``custom_components/carhub``; its listener is made to bind loopback only) and
``carhub_probe``, a tiny integration that writes what Home Assistant *does* to
``probe.jsonl`` from synchronous
listeners (one line per car event fired and per ``input_boolean`` service
call, written with ``os.write`` before anything else runs), so the test sees
every effect even if the process is killed right after it.

The same config dir is reused by every ``hass`` run of a test (restarts are
what is tested, and a second start is much faster than the first).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bridge.pki import CarIdentity, HomeCA

REPO = Path(__file__).resolve().parents[2]
VEHICLE_ID = "crash-car-1"
LAMPS = 40

_CONFIGURATION = """\
homeassistant:
  name: CarHub crash test
  latitude: 52.52
  longitude: 13.405
  elevation: 30
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {http_port}
logger:
  default: warning
  logs:
    custom_components.carhub: info
    bridge: info
conversation:
input_boolean:
{lamps}
carhub_probe:
"""

_PROBE_MANIFEST = {
    "domain": "carhub_probe",
    "name": "CarHub crash-test probe",
    "codeowners": [],
    "dependencies": ["conversation", "input_boolean"],
    "documentation": "https://example.invalid",
    "requirements": [],
    "version": "0.0.1",
}

_PROBE = '''\
"""Test probe: what Home Assistant does, one JSON line each, written synchronously."""

import json
import os

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import EVENT_CALL_SERVICE
from homeassistant.core import Event, HomeAssistant, callback


async def async_setup(hass: HomeAssistant, config: dict) -> bool:
    path = hass.config.path("probe.jsonl")
    fd = await hass.async_add_executor_job(
        os.open, path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
    )

    def write(obj: dict) -> None:
        os.write(fd, (json.dumps(obj) + "\\n").encode())

    @callback
    def on_car_event(event: Event) -> None:
        write({"kind": "car_event", "type": event.data.get("type"), "data": event.data.get("data")})

    @callback
    def on_service(event: Event) -> None:
        if event.data.get("domain") == "input_boolean":
            write({"kind": "service", "service": event.data.get("service"),
                   "data": event.data.get("service_data")})

    hass.bus.async_listen("carhub_vehicle_event", on_car_event)
    hass.bus.async_listen(EVENT_CALL_SERVICE, on_service)
    for n in range(1, LAMPS + 1):
        async_expose_entity(hass, "conversation", f"input_boolean.lamp_{n}", True)
    write({"kind": "started"})
    return True
'''

# Loaded by `hass` at start (sitecustomize on its PYTHONPATH): the CarHub listener
# binds loopback only in tests, never every interface as it does for real.
_LOOPBACK_ONLY = """\
import bridge.server as _server

_init = _server.HubServer.__init__


def _loopback_init(self, *args, **kwargs):
    host = kwargs.get("host")
    if host is not None:
        kwargs["host"] = "127.0.0.1" if isinstance(host, str) else ("127.0.0.1", "::1")
    _init(self, *args, **kwargs)


_server.HubServer.__init__ = _loopback_init
"""

_PORT_LINE = re.compile(r"CarHub listener on port (\d+)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(config: Path) -> CarIdentity:
    """Write the config dir (see the module doc); return the car's identity."""
    (config / "custom_components").mkdir(parents=True, exist_ok=True)
    link = config / "custom_components" / "carhub"
    if not link.exists():
        link.symlink_to(REPO / "custom_components" / "carhub")
    probe = config / "custom_components" / "carhub_probe"
    probe.mkdir(exist_ok=True)
    (probe / "manifest.json").write_text(json.dumps(_PROBE_MANIFEST))
    (probe / "__init__.py").write_text(_PROBE.replace("LAMPS", str(LAMPS)))
    lamps = "".join(f"  lamp_{n}:\n    name: Lamp {n}\n" for n in range(1, LAMPS + 1))
    # `bridge` from this tree, and nothing else: with the repository itself on the
    # path, its `custom_components` package would hide the config dir's.
    (config / "pypath").mkdir(exist_ok=True)
    if not (config / "pypath" / "bridge").exists():
        (config / "pypath" / "bridge").symlink_to(REPO / "bridge")
    (config / "pypath" / "sitecustomize.py").write_text(_LOOPBACK_ONLY)
    (config / "configuration.yaml").write_text(
        _CONFIGURATION.format(http_port=free_port(), lamps=lamps)
    )
    ca = HomeCA.load_or_create(config / ".storage" / "carhub")
    identity = CarIdentity.create(config / "car")
    cert = ca.sign_car_csr(identity.csr_pem(VEHICLE_ID), vehicle_id=VEHICLE_ID)
    identity.store_certificate(cert, ca.ca_cert_pem)
    entry = {
        "entry_id": "01CRASHTESTENTRY0000000001",
        "version": 1,
        "domain": "carhub",
        "title": "Crash Car",
        "data": {
            "host": "127.0.0.1",
            "port": 8767,
            "vin": "WVWZZZ1KZAW000009",
            "make": "Test",
            "model": "Crash Car",
            "agent_version": "0.1.0",
            "listen_port": 0,
            "external_url": None,
            "signals": {},
        },
        "options": {},
        "source": "user",
        "unique_id": VEHICLE_ID,
    }
    entries = {
        "version": 1,
        "minor_version": 1,
        "key": "core.config_entries",
        "data": {"entries": [entry]},
    }
    (config / ".storage" / "core.config_entries").write_text(json.dumps(entries))
    return identity


class Hass:
    """One `hass` run on the shared config dir; its log is appended to ``hass.log``."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = config / "hass.log"
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "hass"),
                "-c", str(config), "--skip-pip", "--log-no-color",
            ],
            cwd=config,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(config / "pypath"), **(env or {})},
        )  # fmt: skip
        self.started = time.monotonic()

    def log(self) -> str:
        """This run's output so far."""
        with self.log_path.open("rb") as log:
            log.seek(self._offset)
            return log.read().decode(errors="replace")

    async def listener_port(self, limit_s: float = 120) -> int:
        """The port the CarHub listener bound (from the log), once it is up."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if match := _PORT_LINE.search(self.log()):
                return int(match.group(1))
            if self.proc.poll() is not None:
                raise AssertionError(f"hass exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            await asyncio.sleep(0.1)
        raise AssertionError(f"no CarHub listener within {limit_s} s:\n{self.log()[-3000:]}")

    async def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait, 30)
        self._log.close()

    async def stop(self) -> int:
        """SIGTERM and wait for a clean stop."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.proc.wait, 60)
        self._log.close()
        return code


def probe_lines(config: Path) -> list[dict[str, Any]]:
    """Every effect the probe saw, over all runs."""
    path = config / "probe.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
