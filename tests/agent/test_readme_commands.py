"""Every CarHub command the README shows parses with the real command-line parser.

The README is a newcomer's first contact: a `vehicle-agent` or `carhub-bridge`
line that no longer matches the options would fail on their first try. Lines
for other programs (git, ip, candump, make) are checked too: make targets must
exist, and only a known set of system programs may appear.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bridge.cli import build_parser as bridge_parser
from vehicle_agent.cli import build_parser as agent_parser

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# Programs run on the user's machine, outside the project (documented set-up).
SYSTEM_PROGRAMS = {"git", "sudo", "candump", "cd", "pip"}


def readme_commands() -> list[str]:
    """Shell commands of the README's ```bash blocks (continuations joined, comments cut)."""
    text = README.read_text(encoding="utf-8")
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.extend(part.strip() for part in line.split("&&"))
    return commands


COMMANDS = readme_commands()


def test_readme_has_commands() -> None:
    assert len(COMMANDS) >= 10
    assert COMMANDS[:2] == ["make demo", "make test"]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_is_valid(command: str) -> None:
    argv = shlex.split(command.split(" | ", 1)[0])
    program = Path(argv[0]).name
    if program in ("vehicle-agent", "carhub-bridge"):
        parser = agent_parser() if program == "vehicle-agent" else bridge_parser()
        try:
            parser.parse_args(argv[1:])
        except SystemExit as exc:  # --help exits 0; a bad option exits 2
            assert exc.code == 0, command
    elif program == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in argv[1:]:
            if "=" not in target:
                assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), target
    else:
        assert program in SYSTEM_PROGRAMS, f"unexpected program in README: {command}"


def test_bundled_profiles_named_in_readme_exist() -> None:
    text = README.read_text(encoding="utf-8")
    for name in ("toyota_rav4", "honda_civic_2016", "obd_generic"):
        assert name in text
        assert (ROOT / "vehicle_agent" / "profiles" / f"{name}.yaml").is_file()
