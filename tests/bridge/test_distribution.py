"""The carhub-bridge distribution is what Home Assistant installs: it must hold
the `bridge` package only and must not pull the agent's heavy dependencies."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("vosk", "python-can", "cantools", "can-isotp", "homeassistant", "numpy", "hassil")


@pytest.fixture(scope="module")
def bridge_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT / "bridge"),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("carhub_bridge-*.whl")
    return wheel


def test_wheel_contains_only_the_bridge_package(bridge_wheel: Path) -> None:
    names = zipfile.ZipFile(bridge_wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("carhub_bridge-")}
    assert top == {"bridge"}
    assert "bridge/__init__.py" in names
    assert "bridge/py.typed" in names
    assert "bridge/protocol.py" in names
    assert not any(n.endswith("pyproject.toml") for n in names)


def test_wheel_dependencies_are_light(bridge_wheel: Path) -> None:
    with zipfile.ZipFile(bridge_wheel) as zf:
        meta_name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(meta_name).decode())
    requires = [r.split(";")[0].strip().lower() for r in meta.get_all("Requires-Dist") or []]
    assert requires, "bridge declares its dependencies"
    for heavy in HEAVY:
        assert not any(r.startswith(heavy) for r in requires), (heavy, requires)
    assert meta["Name"] == "carhub-bridge"


def test_manifest_pins_the_bridge_version() -> None:
    import json
    import tomllib

    version = tomllib.loads((ROOT / "bridge/pyproject.toml").read_text())["project"]["version"]
    manifest = json.loads((ROOT / "custom_components/carhub/manifest.json").read_text())
    assert f"carhub-bridge=={version}" in manifest["requirements"]
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"carhub-bridge=={version}" in root["dependencies"]
