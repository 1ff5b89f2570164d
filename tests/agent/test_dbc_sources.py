"""DBC files named by a profile are found without --dbc-dir: bundled first, then opendbc.

The opendbc fallback is tested against a package directory on ``sys.path``
that has opendbc's documented API (``DBC_PATH``, ``get_generated_dbcs()``
returning ``{name without .dbc: text}``); its DBC texts are real opendbc files
(the bundled ones, under other names), so what the agent loads is real.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from tests.data_paths import CAN_LOG, DBC_DIR
from vehicle_agent.cli import main
from vehicle_agent.dbc_loader import load_dbc
from vehicle_agent.dbc_sources import BUNDLED_DBC_DIR, find_dbc
from vehicle_agent.profile import ProfileError, load_profile, parse_profile, resolve_dbc_files

ADAS = DBC_DIR / "toyota_adas.dbc"
PT = DBC_DIR / "toyota_new_mc_pt_generated.dbc"


def _profile(*names: str) -> dict[str, object]:
    return {
        "name": "Test car",
        "buses": {f"can{i}": {"dbc": [name]} for i, name in enumerate(names)},
        "signals": {
            "Vehicle.Speed": {"source": {"bus": "can0", "message": "SPEED", "signal": "SPEED"}}
        },
    }


@pytest.fixture
def no_opendbc(monkeypatch: pytest.MonkeyPatch) -> None:
    """opendbc is not installed (None in sys.modules makes the import fail)."""
    monkeypatch.setitem(sys.modules, "opendbc", None)
    monkeypatch.delenv("CARHUB_DBC_DIR", raising=False)


@pytest.fixture
def fake_opendbc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed opendbc with a plain DBC in DBC_PATH and one generated in memory."""
    site = tmp_path / "site"
    package = site / "opendbc"
    (package / "dbc").mkdir(parents=True)
    (package / "dbc" / "vendor_adas.dbc").write_bytes(ADAS.read_bytes())
    # Same name as a bundled file, different content: the bundled one must win.
    (package / "dbc" / "toyota_adas.dbc").write_text("not the bundled file\n")
    (package / "generated.txt").write_bytes(PT.read_bytes())
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            import os
            __version__ = "0.0-test"
            DBC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dbc")
            CALLS = []

            def get_generated_dbcs():
                CALLS.append(1)
                here = os.path.dirname(os.path.abspath(__file__))
                with open(os.path.join(here, "generated.txt"), encoding="utf-8") as f:
                    return {"vendor_pt_generated": f.read()}
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "opendbc", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CARHUB_DBC_DIR", raising=False)
    return package


def test_bundled_dbcs_resolve_the_shipped_profiles_without_a_directory(no_opendbc: None) -> None:
    files = resolve_dbc_files(load_profile("toyota_rav4"))
    assert files == {"can0": [PT], "can1": [ADAS]}
    assert all(p.parent == BUNDLED_DBC_DIR for p in files["can0"] + files["can1"])
    civic = resolve_dbc_files(load_profile("honda_civic_2016"))
    assert [p.name for p in civic["can0"]] == ["honda_civic_touring_2016_can_generated.dbc"]


def test_decode_with_a_profile_needs_no_dbc_dir(
    no_opendbc: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "small.log"
    with CAN_LOG.open() as src:
        log.write_text("".join(line for _, line in zip(range(6000), src, strict=False)))
    assert main(["decode", "--log", str(log), "--profile", "toyota_rav4", "--fast"]) == 0
    out, _ = capsys.readouterr()
    paths = {json.loads(line)["path"] for line in out.splitlines()}
    assert "Vehicle.Speed" in paths


def test_a_dbc_dir_still_comes_before_the_bundled_files(no_opendbc: None, tmp_path: Path) -> None:
    (tmp_path / "toyota_adas.dbc").write_bytes(ADAS.read_bytes())
    files = resolve_dbc_files(load_profile("toyota_rav4"), dbc_dir=tmp_path)
    assert files["can1"] == [tmp_path / "toyota_adas.dbc"]
    assert files["can0"] == [PT]  # not in the directory: the bundled one


def test_a_missing_dbc_says_where_it_looked(
    no_opendbc: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ProfileError) as err:
        resolve_dbc_files(parse_profile(_profile("nowhere.dbc")), dbc_dir=tmp_path)
    message = str(err.value)
    assert "nowhere.dbc for bus can0 not found" in message
    assert str(tmp_path) in message and str(BUNDLED_DBC_DIR) in message
    assert "opendbc (not installed)" in message
    profile = tmp_path / "car.yaml"
    profile.write_text(json.dumps(_profile("nowhere.dbc")))
    assert main(["decode", "--log", str(CAN_LOG), "--profile", str(profile)]) == 2
    assert "nowhere.dbc for bus can0 not found" in capsys.readouterr().err


def test_installed_opendbc_supplies_plain_and_generated_files(
    fake_opendbc: Path, tmp_path: Path
) -> None:
    files = resolve_dbc_files(parse_profile(_profile("vendor_pt_generated.dbc", "vendor_adas.dbc")))
    generated = tmp_path / "cache" / "carhub-agent" / "opendbc" / "vendor_pt_generated.dbc"
    assert files == {"can0": [generated], "can1": [fake_opendbc / "dbc" / "vendor_adas.dbc"]}
    assert generated.read_bytes() == PT.read_bytes()
    pt = load_dbc(generated).database
    assert pt.get_message_by_name("SPEED").get_signal_by_name("SPEED").unit == "km/h"
    assert len(load_dbc(files["can1"][0]).database.messages) == 32
    # The bundled file wins over opendbc's file of the same name.
    assert find_dbc("toyota_adas.dbc") == ADAS
    # A name that opendbc neither ships nor generates is still not found.
    assert find_dbc("other_generated.dbc") is None


def test_a_broken_opendbc_is_reported_not_fatal(
    fake_opendbc: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (fake_opendbc / "__init__.py").write_text(
        "DBC_PATH = '/nonexistent'\n"
        "def get_generated_dbcs():\n    raise RuntimeError('generator exploded')\n"
    )
    with pytest.raises(ProfileError, match=r"vendor_pt_generated\.dbc for bus can0 not found"):
        resolve_dbc_files(parse_profile(_profile("vendor_pt_generated.dbc")))
    assert "generator exploded" in caplog.text


def test_only_bare_file_names_are_looked_up(fake_opendbc: Path) -> None:
    assert find_dbc("../dbc/toyota_adas.dbc") is None
    assert find_dbc("dbc/vendor_adas.dbc") is None
