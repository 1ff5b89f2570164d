"""Where the demo finds the project, its venv and its data (all inside the repository)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from vehicle_agent.dbc_sources import BUNDLED_DBC_DIR

#: The repository root (the directory holding ``demo/``).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: The DBC files bundled with the agent (opendbc, MIT: see its README).
DBC_DIR = BUNDLED_DBC_DIR
#: The RAV4 CAN log (comma2k19, MIT: see data/README.md).
CAN_LOG = REPO_ROOT / "data" / "can" / "rav4_highway_60s.log"
PROFILE = REPO_ROOT / "vehicle_agent" / "profiles" / "toyota_rav4.yaml"
GPS_TRACK = REPO_ROOT / "vehicle_agent" / "data" / "demo_track.gpx"
INTEGRATION_SRC = REPO_ROOT / "custom_components" / "carhub"
DEFAULT_WORK_DIR = REPO_ROOT / ".demo"


def venv_bin(name: str) -> Path:
    """Return the path of an executable installed in the running interpreter's venv.

    The demo runs as ``.venv/bin/python -m demo``, so ``hass`` and
    ``vehicle-agent`` sit next to ``sys.executable``.
    """
    return Path(sys.executable).parent / name


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
