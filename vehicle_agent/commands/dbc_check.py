"""`vehicle-agent dbc-check FILE...`: load DBC files and list what had to be repaired or skipped.

Exit code 0 when every file loads (even with repairs), 2 when one cannot be
loaded at all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vehicle_agent.dbc_loader import DbcLoadError, load_dbc


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `dbc-check` sub-command."""
    parser = subparsers.add_parser(
        "dbc-check", help="load DBC files and report repaired or skipped statements"
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check each file; print one line per file and one per issue."""
    status = 0
    for path in args.files:
        try:
            loaded = load_dbc(path)
        except (OSError, DbcLoadError) as exc:
            print(f"{path}: ERROR: {exc}", file=sys.stderr)
            status = 2
            continue
        db = loaded.database
        print(
            f"{path}: {len(db.messages)} messages, "
            f"{sum(len(m.signals) for m in db.messages)} signals, "
            f"{len(loaded.repaired)} repaired, {len(loaded.skipped)} skipped"
        )
        for issue in loaded.issues:
            print(f"  {issue}")
    return status
