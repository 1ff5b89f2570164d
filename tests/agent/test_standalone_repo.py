"""The repository runs from a plain clone: its data is inside, and the wheel carries the DBCs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.data_paths import CAN_LOG, DBC_DIR, REPO_ROOT

# Spelled in pieces so that this file does not match itself.
OUTSIDE = (".." + "/shared", "shared" + "/data", '"shared" / ' + '"data"')


def test_no_tracked_file_refers_to_data_beside_the_repository() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    offenders = []
    for name in filter(None, listed):
        path = REPO_ROOT / name.decode()
        if not path.is_file():
            continue
        text = path.read_bytes()
        offenders += [f"{name.decode()}: {p}" for p in OUTSIDE if p.encode() in text]
    assert len(listed) > 100  # really the repository's file list
    assert offenders == []


def test_the_data_and_its_licences_are_in_the_repository() -> None:
    assert CAN_LOG.is_relative_to(REPO_ROOT) and CAN_LOG.stat().st_size > 3_000_000
    assert "MIT" in (REPO_ROOT / "data" / "README.md").read_text()
    assert "Permission is hereby granted" in (DBC_DIR / "LICENSE.opendbc").read_text()
    assert "fb6ad760cce11efc21abc37bafa6e3013dc79797" in (DBC_DIR / "README.md").read_text()


@pytest.fixture(scope="module")
def agent_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("src")
    # Build from a copy of the packaging inputs: a build in the work tree would
    # leave build/ and *.egg-info behind and race other test sessions.
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (build / name).write_bytes((REPO_ROOT / name).read_bytes())
    subprocess.run(
        ["cp", "-r", str(REPO_ROOT / "vehicle_agent"), str(build / "vehicle_agent")], check=True
    )
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-q", "-w", str(out), str(build)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("carhub-*.whl")
    return wheel


def test_the_agent_wheel_carries_the_dbc_files(agent_wheel: Path, tmp_path: Path) -> None:
    names = zipfile.ZipFile(agent_wheel).namelist()
    bundled = sorted(p.name for p in DBC_DIR.glob("*.dbc"))
    assert len(bundled) == 5
    for name in [*bundled, "LICENSE.opendbc", "README.md"]:
        assert f"vehicle_agent/dbc/{name}" in names
    # Installed from the wheel (unpacked, first on the path), the agent finds
    # the profile's DBC files inside itself.
    site = tmp_path / "site"
    zipfile.ZipFile(agent_wheel).extractall(site)
    probe = (
        "from vehicle_agent.profile import load_profile, resolve_dbc_files\n"
        "files = resolve_dbc_files(load_profile('toyota_rav4'))\n"
        "print('\\n'.join(str(p) for ps in files.values() for p in ps))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("CARHUB_DBC_DIR", None)
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr
    paths = [Path(line) for line in found.stdout.split()]
    assert [p.name for p in paths] == ["toyota_new_mc_pt_generated.dbc", "toyota_adas.dbc"]
    assert all(p.is_relative_to(site) and p.is_file() for p in paths)
