"""Print the pip requirements of Home Assistant integrations and their dependencies.

Usage: python scripts/ha_requirements.py DOMAIN...

Home Assistant's default integrations (set up by every `hass`) are always added.

Reads the manifest.json files of the Home Assistant installed in the running
interpreter, follows ``dependencies`` (not after-dependencies: those load only
when set up anyway), and prints each requirement once, in manifest order. Used
by scripts/newest_ha.sh, because pytest-homeassistant-custom-component installs
Home Assistant without the requirements of its integrations.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path


def components_dir() -> Path:
    spec = importlib.util.find_spec("homeassistant.components")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("homeassistant is not installed in this interpreter")
    return Path(next(iter(spec.submodule_search_locations)))


def requirements(domains: list[str]) -> list[str]:
    core = components_dir()
    seen: set[str] = set()
    found: dict[str, None] = {}
    todo = list(domains)
    while todo:
        domain = todo.pop(0)
        if domain in seen:
            continue
        seen.add(domain)
        path = core / domain / "manifest.json"
        if not path.is_file():
            raise SystemExit(f"no Home Assistant integration named {domain!r} ({path})")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        found.update(dict.fromkeys(manifest.get("requirements", [])))
        todo.extend(manifest.get("dependencies", []))
    return list(found)


def default_integrations() -> list[str]:
    """What every `hass` sets up whatever its configuration says."""
    from homeassistant import bootstrap  # heavy: only when asked

    return sorted({*bootstrap.CORE_INTEGRATIONS, *bootstrap.DEFAULT_INTEGRATIONS})


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print("\n".join(requirements([*sys.argv[1:], *default_integrations()])))


if __name__ == "__main__":
    main()
