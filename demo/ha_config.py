"""The throwaway Home Assistant configuration of the demo.

``configuration.yaml`` deliberately has no ``default_config:``: that pulls in
integrations (cloud, bluetooth, go2rtc, ...) whose requirements are not in the
venv. The demo loads exactly :data:`CONFIGURED_INTEGRATIONS` plus what Home
Assistant always sets up (``homeassistant.bootstrap.DEFAULT_INTEGRATIONS``) and
their dependencies; :func:`missing_requirements` checks every one of their
manifest requirements before ``hass`` starts, so ``hass --skip-pip`` never
meets a missing package at run time.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from demo.paths import GPS_TRACK, INTEGRATION_SRC

#: Integrations named in configuration.yaml (Home Assistant adds its defaults).
CONFIGURED_INTEGRATIONS: tuple[str, ...] = (
    "http",  # on 127.0.0.1 and a free port
    "api",  # REST API used by the demo and its checks
    "auth",  # owner login, tokens
    "onboarding",  # done through its REST API by the demo
    "config",  # config-flow REST API used for pairing
    "frontend",  # the UI (home-assistant-frontend) for the newcomer and screenshots
    "conversation",  # Assist: carries out the driver's voice commands
    "zeroconf",  # discovers the car's _carhub._tcp pairing advertisement
    "logger",
    "input_boolean",  # state behind the demo lights, heater and garage door
    "template",  # demo lights, garage door, room temperature
    "generic_thermostat",  # demo thermostat
    "light",
    "cover",
    "climate",
    "sensor",
)


@dataclass(frozen=True, kw_only=True)
class DemoEntity:
    """One of the home's demo entities exposed to Assist."""

    entity_id: str
    area: str
    aliases: tuple[str, ...]


#: Areas of the demo home: (name, aliases). "Living Room" is also what
#: onboarding creates in English, so the demo reuses it.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Living Room", ("거실", "lounge")),
    ("Porch", ("현관", "entrance")),
    ("Garage", ("차고",)),
)

DEMO_ENTITIES: tuple[DemoEntity, ...] = (
    DemoEntity(entity_id="light.living_room_light", area="Living Room", aliases=("거실 조명",)),
    DemoEntity(entity_id="light.porch_light", area="Porch", aliases=("현관 조명",)),
    DemoEntity(entity_id="climate.thermostat", area="Living Room", aliases=("온도 조절기",)),
    DemoEntity(entity_id="cover.garage_door", area="Garage", aliases=("차고문",)),
)

#: Default home location when the GPS track has no usable first point (the
#: demo track starts in Utrecht, NL; the home's country and time zone match).
_DEFAULT_HOME = (52.0812, 5.0124)


def _is_on(entity_id: str) -> str:
    return f"{{{{ is_state('{entity_id}', 'on') }}}}"


def _toggle_actions(entity_id: str) -> dict[str, Any]:
    return {
        "turn_on": {"action": "input_boolean.turn_on", "target": {"entity_id": entity_id}},
        "turn_off": {"action": "input_boolean.turn_off", "target": {"entity_id": entity_id}},
    }


def home_location(track: Path = GPS_TRACK) -> tuple[float, float]:
    """Place the demo home at the first point of the car's GPS track (so the map shows both)."""
    try:
        text = track.read_text(encoding="utf-8")
    except OSError:
        return _DEFAULT_HOME
    match = re.search(r'lat="(-?[\d.]+)"\s+lon="(-?[\d.]+)"', text)
    if not match:
        return _DEFAULT_HOME
    return float(match.group(1)), float(match.group(2))


def _template_light(object_id: str, name: str) -> dict[str, Any]:
    """A light under the ``template:`` key (2025.4 and later), switching an input_boolean."""
    power = f"input_boolean.demo_{object_id}_power"
    return {
        "name": name,
        "unique_id": f"carhub_demo_{object_id}",
        "state": _is_on(power),
        **_toggle_actions(power),
    }


_GARAGE_SWITCH = "input_boolean.demo_garage_door_open"
_GARAGE_ACTIONS: dict[str, Any] = {
    "open_cover": {"action": "input_boolean.turn_on", "target": {"entity_id": _GARAGE_SWITCH}},
    "close_cover": {"action": "input_boolean.turn_off", "target": {"entity_id": _GARAGE_SWITCH}},
}
#: The garage door under the ``template:`` key (Home Assistant 2025.5 and later;
#: the ``cover: - platform: template`` form was removed in 2026).
_GARAGE_DOOR: dict[str, Any] = {
    "name": "Garage door",
    "unique_id": "carhub_demo_garage_door",
    "device_class": "garage",
    "state": _is_on(_GARAGE_SWITCH),
    **_GARAGE_ACTIONS,
}
#: The same door in the platform form, the only one Home Assistant 2025.4 knows.
_LEGACY_GARAGE_DOOR: dict[str, Any] = {
    "unique_id": "carhub_demo_garage_door",
    "friendly_name": "Garage door",
    "device_class": "garage",
    "value_template": _is_on(_GARAGE_SWITCH),
    **_GARAGE_ACTIONS,
}


def build_configuration(
    *,
    port: int,
    location: tuple[float, float],
    zeroconf: bool = True,
    modern_template_cover: bool = True,
) -> dict[str, Any]:
    """Return configuration.yaml's content for an instance on 127.0.0.1:``port``.

    Without ``zeroconf`` Home Assistant sends no multicast at all (the check
    and the tests stay on 127.0.0.1; the car is then added manually).
    ``modern_template_cover`` False writes the garage door in the platform
    form, for Home Assistant 2025.4 (the oldest supported release).
    """
    lat, lon = location
    config: dict[str, Any] = {
        "homeassistant": {
            "name": "CarHub Demo Home",
            "latitude": lat,
            "longitude": lon,
            "elevation": 20,
            "unit_system": "metric",
            "currency": "EUR",
            "country": "NL",
            "time_zone": "Europe/Amsterdam",
            "internal_url": f"http://127.0.0.1:{port}",
        },
        # The demo's reverse proxy (nginx, step "from outside") runs on this host.
        "http": {
            "server_host": "127.0.0.1",
            "server_port": port,
            "use_x_forwarded_for": True,
            "trusted_proxies": ["127.0.0.1"],
        },
        "api": {},
        "auth": {},
        "onboarding": {},
        "config": {},
        "frontend": {},
        "conversation": {},
        "zeroconf": {},
        "logger": {
            "default": "warning",
            "logs": {
                # "Setting up X" lines: the demo shows them as start-up progress.
                "homeassistant.setup": "info",
                "homeassistant.bootstrap": "info",
                "custom_components.carhub": "debug",
                "bridge": "info",
            },
        },
        "input_boolean": {
            "demo_living_room_light_power": {"name": "Living room light power", "initial": False},
            "demo_porch_light_power": {"name": "Porch light power", "initial": False},
            "demo_heater": {"name": "Heater", "initial": False},
            "demo_garage_door_open": {"name": "Garage door open", "initial": False},
        },
        "template": [
            {
                "sensor": [
                    {
                        "name": "Living room temperature",
                        "unique_id": "carhub_demo_living_room_temperature",
                        "state": "21.5",
                        "unit_of_measurement": "°C",
                        "device_class": "temperature",
                        "state_class": "measurement",
                    }
                ],
                "light": [
                    _template_light("living_room_light", "Living room light"),
                    _template_light("porch_light", "Porch light"),
                ],
            }
        ],
        "climate": [
            {
                "platform": "generic_thermostat",
                "name": "Thermostat",
                "unique_id": "carhub_demo_thermostat",
                "heater": "input_boolean.demo_heater",
                "target_sensor": "sensor.living_room_temperature",
                "min_temp": 15,
                "max_temp": 28,
                "target_temp": 21,
                "initial_hvac_mode": "heat",
            }
        ],
    }
    if modern_template_cover:
        config["template"][0]["cover"] = [_GARAGE_DOOR]
    else:
        config["cover"] = [{"platform": "template", "covers": {"garage_door": _LEGACY_GARAGE_DOOR}}]
    if not zeroconf:
        del config["zeroconf"]
    return config


def write_config_dir(
    config_dir: Path,
    *,
    port: int,
    zeroconf: bool = True,
    modern_template_cover: bool = True,
    integration_src: Path = INTEGRATION_SRC,
    fresh: bool = True,
) -> None:
    """Create the configuration directory with the integration installed as HACS would.

    HACS copies the repository's ``custom_components/carhub`` into
    ``<config>/custom_components/carhub``; the demo does the same copy (not a
    link), so it runs exactly what a user would get.
    """
    if fresh and config_dir.exists():
        shutil.rmtree(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "configuration.yaml").write_text(
        "# Written by `python -m demo`: a throwaway Home Assistant for the CarHub demo.\n"
        + yaml.safe_dump(
            build_configuration(
                port=port,
                location=home_location(),
                zeroconf=zeroconf,
                modern_template_cover=modern_template_cover,
            ),
            allow_unicode=True,
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    if not (integration_src / "manifest.json").is_file():
        raise FileNotFoundError(f"no integration at {integration_src} (manifest.json missing)")
    target = config_dir / "custom_components" / "carhub"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(integration_src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _components_dir() -> Path:
    spec = importlib.util.find_spec("homeassistant.components")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("homeassistant is not installed in this interpreter")
    return Path(next(iter(spec.submodule_search_locations)))


def _default_integrations() -> set[str]:
    from homeassistant import bootstrap  # heavy: imported only when needed

    return {*bootstrap.CORE_INTEGRATIONS, *bootstrap.DEFAULT_INTEGRATIONS}


def integration_closure(config_dir: Path) -> dict[str, dict[str, Any]]:
    """Manifests of every integration the demo's Home Assistant will set up.

    The configured ones, Home Assistant's defaults, the custom integration,
    and all their dependencies (after-dependencies only load when set up
    anyway, so they are not followed).
    """
    core = _components_dir()
    custom = config_dir / "custom_components"
    todo = [*CONFIGURED_INTEGRATIONS, *_default_integrations(), "carhub"]  # superset
    manifests: dict[str, dict[str, Any]] = {}
    while todo:
        domain = todo.pop()
        if domain in manifests:
            continue
        path = custom / domain / "manifest.json"
        if not path.exists():
            path = core / domain / "manifest.json"
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        manifests[domain] = manifest
        todo.extend(manifest.get("dependencies", []))
    return manifests


def missing_requirements(config_dir: Path) -> list[str]:
    """Requirements of the loaded integrations that the venv does not satisfy."""
    from homeassistant.util.package import is_installed

    missing: list[str] = []
    for domain, manifest in sorted(integration_closure(config_dir).items()):
        missing.extend(
            f"{req} (for {domain})"
            for req in manifest.get("requirements", [])
            if not is_installed(req)
        )
    return missing
