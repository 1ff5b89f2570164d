"""What hassfest and the HACS action would check (they cannot run here).

Manifest keys and order, hacs.json keys, translations covering every flow step,
error, abort, entity translation key, exception, issue and action, services.yaml
matching the registered actions, icons, quality_scale.yaml covering every rule,
and the brand icon.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from awesomeversion import AwesomeVersion
from homeassistant.const import Platform
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

import custom_components.carhub as carhub
from bridge.discovery import SERVICE_TYPE
from custom_components.carhub import (
    binary_sensor,
    device_tracker,
    event,
    sensor,
    voice,
)
from custom_components.carhub.const import SENSITIVE_CHOICES, VEHICLE_EVENT_TYPES
from custom_components.carhub.home_sensor import HOME_SENSORS
from custom_components.carhub.trip_sensor import CHARGE_SENSORS, TRIP_SENSORS

ALL_SENSORS = (*sensor.SENSORS, *TRIP_SENSORS, *HOME_SENSORS, *CHARGE_SENSORS)

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "custom_components" / "carhub"
MANIFEST = json.loads((COMPONENT / "manifest.json").read_text())
EN = json.loads((COMPONENT / "translations" / "en.json").read_text())
TRANSLATIONS = sorted((COMPONENT / "translations").glob("*.json"))
KEY_RE = re.compile(r"[a-z0-9_-]+\Z")

# script/hassfest/quality_scale.py (ALL_RULES) of Home Assistant 2025.4.
QUALITY_RULES = {
    "bronze": [
        "action-setup",
        "appropriate-polling",
        "brands",
        "common-modules",
        "config-flow",
        "config-flow-test-coverage",
        "dependency-transparency",
        "docs-actions",
        "docs-conditions",
        "docs-high-level-description",
        "docs-installation-instructions",
        "docs-removal-instructions",
        "docs-triggers",
        "entity-event-setup",
        "entity-unique-id",
        "has-entity-name",
        "runtime-data",
        "test-before-configure",
        "test-before-setup",
        "unique-config-entry",
    ],
    "silver": [
        "action-exceptions",
        "config-entry-unloading",
        "docs-configuration-parameters",
        "docs-installation-parameters",
        "entity-unavailable",
        "integration-owner",
        "log-when-unavailable",
        "parallel-updates",
        "reauthentication-flow",
        "test-coverage",
    ],
    "gold": [
        "devices",
        "diagnostics",
        "discovery",
        "discovery-update-info",
        "docs-data-update",
        "docs-examples",
        "docs-known-limitations",
        "docs-supported-devices",
        "docs-supported-functions",
        "docs-troubleshooting",
        "docs-use-cases",
        "dynamic-devices",
        "entity-category",
        "entity-device-class",
        "entity-disabled-by-default",
        "entity-translations",
        "exception-translations",
        "icon-translations",
        "reconfiguration-flow",
        "repair-issues",
        "stale-devices",
    ],
    "platinum": ["async-dependency", "inject-websession", "strict-typing"],
}


def _source(name: str) -> str:
    return (COMPONENT / name).read_text()


def _string_kwargs(source: str, keyword: str) -> set[str]:
    """Every string literal passed as ``keyword=...`` in a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.keyword)
            and node.arg == keyword
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found.add(node.value.value)
    return found


def _error_values(source: str) -> set[str]:
    """String values assigned into ``errors[...]`` in the config flow."""
    values: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Subscript)
            and isinstance(node.targets[0].value, ast.Name)
            and node.targets[0].value.id == "errors"
            and isinstance(node.value, ast.Constant)
        ):
            values.add(node.value.value)
    return values


def _keys(tree: Any, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return {prefix}
    out: set[str] = set()
    for key, value in tree.items():
        out |= _keys(value, f"{prefix}.{key}" if prefix else key)
    return out


def _leaves(a: Any, b: Any, where: str = "") -> dict[str, tuple[str, str]]:
    """Pairs of strings at the same place in two translation trees."""
    if not isinstance(a, dict):
        return {where: (a, b)}
    out: dict[str, tuple[str, str]] = {}
    for key in a:
        out.update(_leaves(a[key], b[key], f"{where}.{key}"))
    return out


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"{(\w+)}", text))


# -- manifest / hacs -------------------------------------------------------------------


def test_manifest_keys_and_order() -> None:
    """domain, name, then alphabetical; the keys HACS and hassfest require."""
    keys = list(MANIFEST)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    for key in ("version", "iot_class", "codeowners", "documentation", "issue_tracker"):
        assert key in MANIFEST
    assert MANIFEST["domain"] == COMPONENT.name
    assert AwesomeVersion(MANIFEST["version"]).valid
    assert MANIFEST["iot_class"] == "local_push"
    assert MANIFEST["config_flow"] is True
    assert MANIFEST["documentation"].startswith("https://")
    assert MANIFEST["issue_tracker"].startswith("https://")
    allowed = {
        "domain",
        "name",
        "after_dependencies",
        "bluetooth",
        "codeowners",
        "config_flow",
        "dependencies",
        "dhcp",
        "documentation",
        "homekit",
        "import_executor",
        "integration_type",
        "iot_class",
        "issue_tracker",
        "loggers",
        "mqtt",
        "requirements",
        "single_config_entry",
        "ssdp",
        "usb",
        "version",
        "zeroconf",
    }
    assert set(MANIFEST) <= allowed
    # HACS wants exactly one integration manifest in the repository.
    tracked = subprocess.run(
        ["git", "ls-files", "*manifest.json"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == ["custom_components/carhub/manifest.json"]


def test_manifest_matches_bridge() -> None:
    """The pinned bridge requirement and the discovery type match the bridge package."""
    pyproject = (ROOT / "bridge" / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    assert MANIFEST["requirements"] == [f"carhub-bridge=={version}"]
    assert MANIFEST["zeroconf"] == [SERVICE_TYPE]
    assert "conversation" in MANIFEST["dependencies"]


def test_hacs_json() -> None:
    """Only keys the HACS action accepts; the minimum HA version is the tested one or older."""
    hacs = json.loads((ROOT / "hacs.json").read_text())
    valid = {
        "name",
        "content_in_root",
        "zip_release",
        "filename",
        "hide_default_branch",
        "country",
        "homeassistant",
        "hacs",
        "persistent_directory",
        "render_readme",
    }
    assert set(hacs) <= valid
    assert hacs["name"]
    assert AwesomeVersion(hacs["homeassistant"]) <= AwesomeVersion(HA_VERSION)
    assert hacs["homeassistant"] == "2025.4.0"


def test_brand_icon() -> None:
    """A 256x256 PNG."""
    data = (COMPONENT / "brand" / "icon.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (256, 256)


# -- translations --------------------------------------------------------------------------


def test_config_flow_translations() -> None:
    """Every step, error and abort reason of the flows has English text."""
    source = _source("config_flow.py")
    steps = _string_kwargs(source, "step_id")
    config_steps = steps - {"init"}
    assert config_steps == set(EN["config"]["step"])
    assert set(EN["options"]["step"]) == {"init"}
    errors = _error_values(source)
    assert errors == set(EN["config"]["error"])
    aborts = _string_kwargs(source, "reason") | {
        "already_configured",
        "already_in_progress",
        "reauth_successful",
        "reconfigure_successful",
    }
    assert aborts == set(EN["config"]["abort"])
    # Every form field has a label.
    for step, fields in {
        "user": {"host", "port", "code", "listen_port", "external_url"},
        "zeroconf_confirm": {"code", "listen_port", "external_url"},
        "reauth_confirm": {"host", "port", "code"},
        "reconfigure": {"listen_port", "external_url"},
    }.items():
        assert set(EN["config"]["step"][step]["data"]) == fields
        assert set(EN["config"]["step"][step]["data_description"]) == fields
    assert set(EN["options"]["step"]["init"]["data"]) == {
        "agent_id",
        "allowed_domains",
        "allowed_areas",
        "allowed_sensitive",
        "approach_minutes",
        "eta_max_km",
    }
    assert set(EN["selector"]["sensitive"]["options"]) == set(SENSITIVE_CHOICES)


def test_entity_translations() -> None:
    """Every entity translation key (and enum state, event type) has a name."""
    expected = {
        "sensor": {d.translation_key for d in ALL_SENSORS},
        "binary_sensor": {d.translation_key for d in binary_sensor.BINARY_SENSORS},
        "device_tracker": {device_tracker.LOCATION.translation_key},
        "event": {event.CAR_EVENT.translation_key},
    }
    for platform, keys in expected.items():
        assert set(EN["entity"][platform]) == keys, platform
        for key in keys:
            assert KEY_RE.match(key)
            assert EN["entity"][platform][key]["name"]
    assert set(EN["entity"]["sensor"]["gear"]["state"]) == set(sensor.GEAR_OPTIONS)
    event_states = EN["entity"]["event"]["car_event"]["state_attributes"]["event_type"]["state"]
    assert set(event_states) == set(event.CAR_EVENT.event_types)
    assert set(EN["device_automation"]["trigger_type"]) == set(VEHICLE_EVENT_TYPES)


def test_exception_and_issue_translations() -> None:
    """Every translation_key raised or used for an issue exists, and nothing else."""
    used: set[str] = set()
    for module in COMPONENT.glob("*.py"):
        used |= _string_kwargs(module.read_text(), "translation_key")
    # Spoken replies: looked up by key in voice.py, with an English fallback.
    used |= set(voice.FALLBACK_MESSAGES)
    for key, fallback in voice.FALLBACK_MESSAGES.items():
        assert EN["exceptions"][key]["message"] == fallback
    issue_keys = {"certificate_expiring", "not_seen", "dead_letter"}
    selector_keys = {"sensitive", "priority"}
    entity_keys = {d.translation_key for d in ALL_SENSORS} | {
        d.translation_key for d in binary_sensor.BINARY_SENSORS
    }
    exceptions = used - issue_keys - selector_keys - entity_keys - {"location", "car_event"}
    assert exceptions == set(EN["exceptions"])
    assert issue_keys == set(EN["issues"])
    for issue in EN["issues"].values():
        assert issue["title"] and issue["description"]


def test_other_languages_match_english() -> None:
    """German (and any other language) has exactly the English keys and placeholders."""
    assert len(TRANSLATIONS) >= 2
    en_keys = _keys(EN)
    for path in TRANSLATIONS:
        other = json.loads(path.read_text())
        assert _keys(other) == en_keys, path.name

        for where, (a, b) in _leaves(EN, other).items():
            assert _placeholders(a) == _placeholders(b), f"{path.name}: {where}"


def test_icons() -> None:
    """icons.json names only real translation keys and covers every action."""
    icons = json.loads((COMPONENT / "icons.json").read_text())
    for platform, entries in icons["entity"].items():
        assert set(entries) <= set(EN["entity"][platform]), platform
    services = yaml.safe_load((COMPONENT / "services.yaml").read_text())
    assert set(icons["services"]) == set(services)


# -- actions --------------------------------------------------------------------------------


async def test_services_yaml_matches_registered(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """services.yaml describes exactly the registered actions, fields and translations."""
    services = yaml.safe_load((COMPONENT / "services.yaml").read_text())
    registered = hass.services.async_services_for_domain("carhub")
    assert set(services) == set(registered)
    assert set(EN["services"]) == set(services)
    for name, spec in services.items():
        schema_keys = {str(k) for k in registered[name].schema.schema}
        assert set(spec["fields"]) == schema_keys, name
        assert set(EN["services"][name]["fields"]) == schema_keys, name
        assert EN["services"][name]["name"] and EN["services"][name]["description"]
    priority = services["notify_vehicle"]["fields"]["priority"]["selector"]["select"]
    assert set(priority["options"]) == set(EN["selector"]["priority"]["options"])


# -- quality scale ---------------------------------------------------------------------------


def test_quality_scale_lists_every_rule() -> None:
    """Every rule of all four tiers: done or exempt (with a reason); no todo."""
    rules = yaml.safe_load((COMPONENT / "quality_scale.yaml").read_text())["rules"]
    every = [rule for tier in QUALITY_RULES.values() for rule in tier]
    assert sorted(rules) == sorted(every)
    for name, value in rules.items():
        status = value if isinstance(value, str) else value["status"]
        assert status in ("done", "exempt"), name
        if status == "exempt":
            assert value["comment"].strip(), name


@pytest.mark.parametrize("platform", [str(p) for p in carhub.PLATFORMS])
def test_parallel_updates(platform: str) -> None:
    """Every platform the integration forwards sets PARALLEL_UPDATES (0: push, no limit)."""
    module = importlib.import_module(f"custom_components.carhub.{platform}")
    assert hasattr(module, "PARALLEL_UPDATES"), platform
    assert module.PARALLEL_UPDATES == 0
    assert type(module.PARALLEL_UPDATES) is int


def test_every_platform_module_is_forwarded() -> None:
    """No platform module is left out of PLATFORMS (its PARALLEL_UPDATES would go untested)."""
    platforms = {str(p) for p in carhub.PLATFORMS}
    modules = {path.stem for path in COMPONENT.glob("*.py")}
    assert platforms <= modules
    assert {m for m in modules if m in {str(p) for p in Platform}} == platforms
