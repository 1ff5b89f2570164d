"""Which Home Assistant release runs `hass`: the newest (default) or the oldest supported.

The oldest supported release (2025.4) lives in the project's Python 3.13
venv. The newest (2026.10) needs Python 3.14, so it lives in a Debian
unstable root built by ``scripts/newest_ha.sh``; commands run there see
this clone and /tmp at the same paths as outside.
"""

from __future__ import annotations

import os
import subprocess
from enum import StrEnum
from pathlib import Path

from demo.paths import REPO_ROOT, venv_bin

NEWEST_HA_SCRIPT = REPO_ROOT / "scripts" / "newest_ha.sh"
#: Chosen by ``python -m demo --ha`` or, for the test suites, this variable.
RELEASE_ENV = "CARHUB_HA_RELEASE"


class HARelease(StrEnum):
    """A Home Assistant release the project runs on."""

    NEWEST = "newest"  # what a new user installs today
    OLDEST = "oldest"  # the minimum in hacs.json

    @classmethod
    def from_env(cls, default: HARelease) -> HARelease:
        """The release named by $CARHUB_HA_RELEASE, else ``default``."""
        value = os.environ.get(RELEASE_ENV, "").strip()
        if not value:
            return default
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"{RELEASE_ENV}={value!r}: expected one of {', '.join(r.value for r in cls)}"
            ) from None


def command(release: HARelease, program: str, *args: str | Path) -> list[str | Path]:
    """The command line running ``program`` (``hass``, ``python``) of that release."""
    if release is HARelease.OLDEST:
        return [venv_bin(program), *args]
    return [NEWEST_HA_SCRIPT, "run", program, *args]


def check_visible(release: HARelease, path: Path) -> None:
    """Refuse a path the newest release's root cannot see (only the clone and /tmp are)."""
    if release is HARelease.OLDEST:
        return
    resolved = path.resolve()
    visible = (REPO_ROOT, Path("/tmp"))  # noqa: S108 - the root bind-mounts /tmp
    if not any(resolved.is_relative_to(base) for base in visible):
        raise ValueError(
            f"{resolved}: the newest Home Assistant runs in its own root, which sees only "
            f"{REPO_ROOT} and /tmp; put the work dir there or use --ha oldest"
        )


def missing_requirements(release: HARelease, config_dir: Path) -> list[str]:
    """Requirements of the integrations `hass` will load that the release lacks."""
    code = (
        "import sys; from pathlib import Path; from demo.ha_config import missing_requirements; "
        "print('\\n'.join(missing_requirements(Path(sys.argv[1]))))"
    )
    proc = subprocess.run(
        [str(part) for part in command(release, "python", "-c", code, config_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"could not check the requirements of Home Assistant ({release}):\n"
            + proc.stderr[-3000:]
        )
    return [line for line in proc.stdout.splitlines() if line.strip()]


def version(release: HARelease) -> str:
    """The Home Assistant version of that release, as installed."""
    code = "from homeassistant.const import __version__; print(__version__)"
    proc = subprocess.run(
        [str(part) for part in command(release, "python", "-c", code)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip().splitlines()[-1]
