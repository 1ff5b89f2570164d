"""`vehicle-agent pair`: show a one-time code, advertise, wait for a home to pair.

The logic lives in ``bridge.pairing`` / ``bridge.discovery`` /
``bridge.homes``; this module only wires them to the command line. Exit
codes: 0 paired, 3 the window closed (expired or too many wrong codes), 1
other errors.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bridge.discovery import PairingAdvertiser
from bridge.errors import BridgeError, PairingClosedError
from bridge.homes import HomeRegistry, default_state_dir
from bridge.pairing import DEFAULT_PAIRING_PORT, DEFAULT_WINDOW_S, PairingServer, VehicleInfo
from vehicle_agent import __version__

_LOGGER = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``pair`` sub-command."""
    parser = subparsers.add_parser(
        "pair",
        help="pair this car with a home: show a code and wait",
        description=(
            "Open the pairing window (15 minutes, 20 wrong codes at most), show a one-time "
            "code and advertise the car via zeroconf. Type the code into Home Assistant "
            "(or `carhub-bridge pair`) to finish."
        ),
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="agent state directory (CARHUB_AGENT_DIR)"
    )
    parser.add_argument("--host", default="0.0.0.0", help="listen address (default all)")  # noqa: S104
    parser.add_argument("--port", type=int, default=DEFAULT_PAIRING_PORT, help="pairing port")
    parser.add_argument("--vin", default="", help="vehicle identification number")
    parser.add_argument("--make", default="", help="vehicle make")
    parser.add_argument("--model", default="", help="vehicle model")
    parser.add_argument("--no-zeroconf", action="store_true", help="do not advertise via mDNS")
    parser.add_argument(
        "--linger",
        type=float,
        default=5.0,
        help="seconds to keep advertising after pairing succeeded (default 5), so the "
        "home's discovered-device flow can finish",
    )
    parser.add_argument(
        "--interface", action="append", default=None, help="advertise on this IP only (repeat)"
    )
    parser.add_argument("--window", type=float, default=DEFAULT_WINDOW_S, help=argparse.SUPPRESS)
    parser.add_argument("--code", default=None, help=argparse.SUPPRESS)  # tests and demos
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the pairing window to its end."""
    try:
        return asyncio.run(_pair(args))
    except BridgeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _grouped(code: str) -> str:
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


async def _pair(args: argparse.Namespace) -> int:
    registry = HomeRegistry(args.state_dir or default_state_dir())
    vehicle_id = await asyncio.to_thread(registry.vehicle_id)
    vehicle = VehicleInfo(
        vehicle_id=vehicle_id,
        vin=args.vin,
        make=args.make,
        model=args.model,
        agent_version=__version__,
    )
    server = PairingServer(
        vehicle=vehicle,
        identity_factory=registry.identity_factory,
        code=args.code,
        host=args.host,
        port=args.port,
        window_s=args.window,
    )
    await server.start()
    print(f"Pairing code:  {_grouped(server.code)}")
    print(f"Pairing port:  {server.port}")
    print(f"Vehicle id:    {vehicle_id}")
    span = f"{args.window / 60:.0f} minutes" if args.window >= 120 else f"{args.window:.0f} s"
    print(f"Waiting up to {span} for a home to pair...", flush=True)
    advertiser: PairingAdvertiser | None = None
    paired = False
    try:
        if not args.no_zeroconf:
            advertiser = PairingAdvertiser(
                vehicle=vehicle, port=server.port, interfaces=args.interface
            )
            try:
                await advertiser.start()
            except OSError as err:
                # Pairing still works by address and port: say so and go on.
                print(f"warning: zeroconf unavailable ({err}); pair by address", file=sys.stderr)
                advertiser = None
        try:
            hub = await server.wait_paired()
            paired = True
        except PairingClosedError as err:
            print(f"Pairing window closed: {err}", file=sys.stderr)
            await asyncio.to_thread(registry.discard_pending)
            return 3
    finally:
        await server.close()
        if advertiser is not None:
            if paired and args.linger > 0:
                # Home Assistant aborts a discovered flow whose service goes
                # away; its last step is still finishing when pairing
                # completes, so the advertisement outlives it briefly.
                await asyncio.sleep(args.linger)
            await advertiser.stop()
    record = await asyncio.to_thread(registry.commit, hub)
    print(f"Paired with home {record.hub_id}", flush=True)
    for url in record.urls:
        print(f"  {url}")
    return 0
