"""`vehicle-agent decode`: decode a CAN log with DBC files, optionally through a profile.

Without ``--profile`` it prints one JSON object per decoded frame::

    {"t": 46408.58, "bus": "can0", "id": 180, "message": "SPEED", "signals": {...}}

With ``--profile`` it prints one object per VSS update the state store emits
(what the car would send home)::

    {"t": 46408.58, "path": "Vehicle.Speed", "value": 72.3}

A summary goes to stderr. Replay runs as fast as possible unless ``--speed``
asks for recorded pace (1) or a multiple of it. Exit codes: 0 ok, 2 bad
input (missing file, bad profile, unloadable DBC).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable
from itertools import islice
from pathlib import Path
from typing import IO

import can

from vehicle_agent.can_input import CanInputError, replay_log
from vehicle_agent.dbc_loader import DbcLoadError, warn_if_slow_decoding
from vehicle_agent.decoder import DecodeStats, FrameDecoder
from vehicle_agent.pipeline import CanPipeline, LoadedDbcs, load_bus_dbcs
from vehicle_agent.profile import DBC_DIR_ENV, ProfileError, load_profile
from vehicle_agent.state_store import Change

_LOGGER = logging.getLogger(__name__)
_CHUNK = 1024  # frames between two writes of VSS updates


class UsageError(Exception):
    """Bad command-line input: reported on stderr with exit code 2."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `decode` sub-command."""
    parser = subparsers.add_parser(
        "decode",
        help="decode a CAN log file with DBC files (and optionally a car profile)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log", required=True, type=Path, help="CAN log (.log .asc .blf .trc)")
    parser.add_argument(
        "--dbc", action="append", default=[], type=Path, help="DBC file for every bus (repeatable)"
    )
    parser.add_argument(
        "--bus-map",
        action="append",
        default=[],
        metavar="BUS=FILE",
        help="DBC file for one bus only, e.g. can1=toyota_adas.dbc (repeatable)",
    )
    parser.add_argument("--profile", help="car profile (file or bundled name): print VSS updates")
    parser.add_argument(
        "--dbc-dir", type=Path, help=f"where the profile's DBC files are (default ${DBC_DIR_ENV})"
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, help="replay at X times recorded speed")
    pace.add_argument("--fast", action="store_true", help="as fast as possible (default)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command; see the module docstring."""
    try:
        return _run(args, sys.stdout, sys.stderr)
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: stop quietly, like other Unix tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (UsageError, ProfileError, DbcLoadError, CanInputError, OSError) as exc:
        print(f"vehicle-agent decode: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if not args.log.is_file():
        raise UsageError(f"log file not found: {args.log}")
    speed: float | None = None if args.fast or args.speed is None else args.speed
    if speed is not None and speed <= 0:
        raise UsageError("--speed must be > 0")
    for f in args.dbc:
        if not f.is_file():
            raise UsageError(f"DBC file not found: {f}")
    bus_map = _parse_bus_map(args.bus_map)
    frames = replay_log(args.log, speed=speed)
    if args.profile:
        return _decode_profile(args, frames, out, err)
    if not args.dbc and not bus_map:
        raise UsageError("give --dbc FILE, --bus-map BUS=FILE or --profile")
    warn_if_slow_decoding()
    files: dict[str, list[Path]] = dict(bus_map)
    if args.dbc:
        files["*"] = list(args.dbc)
        for bus in files:
            if bus != "*":
                files[bus] = files[bus] + list(args.dbc)
    dbcs = load_bus_dbcs(files)
    decoder = FrameDecoder(dbcs.databases, decode_choices=True)
    write = out.write
    for msg in frames:
        frame = decoder.decode_message(msg)
        if frame is None:
            continue
        record = {
            "t": frame.timestamp,
            "bus": frame.bus,
            "id": frame.frame_id,
            "message": frame.message,
            "signals": {k: _jsonable(v) for k, v in frame.signals.items()},
        }
        write(json.dumps(record) + "\n")
    _summary(err, decoder.stats, dbcs)
    return 0


def _decode_profile(
    args: argparse.Namespace, frames: Iterable[can.Message], out: IO[str], err: IO[str]
) -> int:
    profile = load_profile(args.profile)
    pipeline = CanPipeline.from_profile(profile, dbc_dir=args.dbc_dir, dbc_files=args.dbc)
    store = pipeline.store
    write = out.write

    def emit(changes: list[Change]) -> None:
        for c in changes:
            write(json.dumps({"t": c.ts, "path": c.path, "value": c.value}) + "\n")

    iterator = iter(frames)
    while chunk := list(islice(iterator, _CHUNK)):
        pipeline.feed_all(chunk)
        emit(store.drain())
    store.flush()  # the replay ended: send what is still held, nothing stays superseded
    emit(store.drain())
    _summary(err, pipeline.decoder.stats, pipeline.dbcs, vss_paths=len(store))
    return 0


def _parse_bus_map(items: list[str]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for item in items:
        bus, sep, file = item.partition("=")
        if not sep or not bus or not file:
            raise UsageError(f"--bus-map wants BUS=FILE, got {item!r}")
        path = Path(file)
        if not path.is_file():
            raise UsageError(f"DBC file not found: {path}")
        out.setdefault(bus, []).append(path)
    return out


def _jsonable(value: object) -> object:
    """cantools returns NamedSignalValue for value-table entries: print their name."""
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _summary(
    err: IO[str], stats: DecodeStats, dbcs: LoadedDbcs, *, vss_paths: int | None = None
) -> None:
    counts = stats.as_dict()
    print(
        "summary: {frames_read} frames read, {decoded} decoded, {unchanged} unchanged, "
        "{filtered} not needed, {unknown_id_frames} with unknown IDs ({unknown_ids} IDs), "
        "{decode_errors} decode errors ({decode_error_ids} IDs)".format(**counts),
        file=err,
    )
    if vss_paths is not None:
        print(f"summary: {vss_paths} VSS paths known", file=err)
    print(f"summary: {dbcs.issue_count} DBC statements repaired or skipped", file=err)
    for report in dbcs.reports:
        for issue in report.issues:
            print(f"  {report.name}: {issue}", file=err)
