"""Where the tests find their data: inside the repository, never beside it."""

from __future__ import annotations

from pathlib import Path

from vehicle_agent.dbc_sources import BUNDLED_DBC_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The DBC files bundled with the agent (opendbc, MIT).
DBC_DIR = BUNDLED_DBC_DIR
#: 60 s of a RAV4 on a highway (comma2k19, MIT: see data/README.md).
CAN_LOG = REPO_ROOT / "data" / "can" / "rav4_highway_60s.log"
