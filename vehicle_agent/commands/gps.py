"""`vehicle-agent gps`: print position fixes from gpsd or a recorded track."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
from collections.abc import AsyncGenerator

from vehicle_agent.gps.fix import GpsFix
from vehicle_agent.gps.gpsd import DEFAULT_PORT, GpsdClient
from vehicle_agent.gps.track import TrackError, load_track, replay

DESCRIPTION = """\
Print one JSON object per position fix on stdout, from a running gpsd
(--gpsd HOST:PORT, JSON protocol over TCP) or from a recorded GPX/NMEA track
(--track FILE) replayed at its recorded pace (--speed N for N times faster,
--speed 0 for as fast as possible, --loop to start over at the end).

Stops after --count fixes or --duration seconds if given (otherwise runs
until interrupted). With --vss each fix is printed as the VSS updates the
agent sends home instead.

Examples:
  vehicle-agent gps --gpsd 127.0.0.1:2947 --count 5
  vehicle-agent gps --track vehicle_agent/data/demo_track.gpx --speed 10
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `gps` sub-command."""
    parser = subparsers.add_parser(
        "gps",
        help="print GPS fixes from gpsd or a recorded GPX/NMEA track",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--gpsd", metavar="HOST:PORT", help=f"gpsd address (port defaults to {DEFAULT_PORT})"
    )
    source.add_argument("--track", metavar="FILE", help="GPX or NMEA file to replay")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="track replay speed factor; 0 = as fast as possible (default 1)",
    )
    parser.add_argument("--loop", action="store_true", help="replay the track in a loop")
    parser.add_argument("--count", type=int, default=None, help="stop after N fixes")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--vss", action="store_true", help="print VSS updates, not fixes")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    sys.stderr.write(f"vehicle-agent gps: {message}\n")
    return 2


def parse_hostport(text: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port)."""
    host, port = text, DEFAULT_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    if not host or not 0 < port < 65536:
        raise ValueError(f"bad gpsd address {text!r}")
    return host, port


def _print(fix: GpsFix, vss: bool) -> None:
    if vss:
        for update in fix.to_vss():
            sys.stdout.write(
                json.dumps({"path": update.path, "value": update.value, "ts": update.ts}) + "\n"
            )
    else:
        sys.stdout.write(json.dumps(fix.to_json()) + "\n")
    sys.stdout.flush()


async def _main(args: argparse.Namespace) -> int:
    gpsd: GpsdClient | None = None
    stream: AsyncGenerator[GpsFix]
    if args.track:
        try:
            track = load_track(args.track)
        except TrackError as err:
            return _fail(str(err))
        if track.skipped:
            sys.stderr.write(
                f"vehicle-agent gps: skipped {track.skipped} bad entries in {args.track}\n"
            )
        speed = math.inf if args.speed == 0 else args.speed
        stream = replay(track.fixes, speed=speed, loop=args.loop)
    else:
        try:
            host, port = parse_hostport(args.gpsd)
        except ValueError as err:
            return _fail(str(err))
        gpsd = GpsdClient(host, port)
        stream = gpsd.fixes()
    count = 0

    async def consume() -> None:
        nonlocal count
        async with contextlib.aclosing(stream) as fixes:
            async for fix in fixes:
                _print(fix, args.vss)
                count += 1
                if args.count is not None and count >= args.count:
                    return

    try:
        await asyncio.wait_for(consume(), args.duration)
    except TimeoutError:
        pass
    finally:
        if gpsd is not None:
            gpsd.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    """Run `vehicle-agent gps`."""
    if args.speed < 0:
        return _fail("--speed must be >= 0")
    if args.count is not None and args.count < 1:
        return _fail("--count must be >= 1")
    return asyncio.run(_main(args))
