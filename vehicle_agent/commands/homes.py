"""`vehicle-agent homes list|remove HUB_ID`: the homes this car is paired with."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bridge.errors import BridgeError
from bridge.homes import HomeRegistry, default_state_dir
from bridge.pki import CarIdentity


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``homes`` sub-command."""
    parser = subparsers.add_parser("homes", help="list or remove paired homes")
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="agent state directory (CARHUB_AGENT_DIR)"
    )
    sub = parser.add_subparsers(dest="homes_command", metavar="ACTION", required=True)
    show = sub.add_parser("list", help="list paired homes")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.set_defaults(func=run_list)
    remove = sub.add_parser("remove", help="forget a home and delete its key material")
    remove.add_argument("hub_id", metavar="HUB_ID")
    remove.set_defaults(func=run_remove)


def _registry(args: argparse.Namespace) -> HomeRegistry:
    return HomeRegistry(args.state_dir or default_state_dir())


def run_list(args: argparse.Namespace) -> int:
    """Print each paired home."""
    try:
        records = _registry(args).list()
    except BridgeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not records and not args.json:
        print("not paired with any home")
    for record in records:
        try:
            expiry = CarIdentity.load(record.directory).certificate_expiry()
        except BridgeError:
            expiry = None
        expires = expiry.isoformat() if expiry else None
        if args.json:
            print(json.dumps({**record.to_json(), "certificate_expires": expires}))
        else:
            print(f"{record.hub_id}  paired {record.paired_at.isoformat()}  expires {expires}")
            for url in record.urls:
                print(f"    {url}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Forget one home."""
    try:
        _registry(args).remove(args.hub_id)
    except BridgeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"removed home {args.hub_id}")
    return 0
