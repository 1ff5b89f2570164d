"""`vehicle-agent run`: the agent itself (CAN/GPS/OBD-II -> state -> every paired home).

    vehicle-agent run --profile P [--dbc-dir D]
        (--can-interface IF --can-channel CH [--obd] | --elm327 PORT_OR_HOST:PORT
         | --replay LOG [--loop] [--speed X])
        [--gps-track FILE | --gpsd HOST:PORT] [--state-dir DIR] [--journal FILE]
        [--voice-model DIR] [--voice-engine E] [--voice-language L] [--voice-inbox DIR]
        [--voice-mic [DEVICE]] [--voice-stream FILE] [--wake-phrase TEXT]
        [--voice-free-form] [--tts espeak|null]

Live buses are opened listen-only; ``--obd`` opens a second, transmitting
handle on the same channel for OBD-II polling and ``clear_dtcs``. ``--elm327``
polls through an ELM327 dongle instead (serial device or HOST:PORT; no CAN
frames are decoded then), reconnecting with back-off if it goes away. Polling
pauses while the car is off: ignition and 12 V battery come from the state
store (see :mod:`vehicle_agent.obd_service`). Frames of a live channel are
decoded as the profile's bus ``--can-bus`` (default: the channel's own name if
the profile declares it, else the profile's first bus). Homes paired or removed
while the agent runs are picked up within ``--homes-check`` seconds. Voice
options are handed to ``vehicle_agent.voice.runtime_hook.attach(runtime, args)``
when that module exists. Stops on SIGINT/SIGTERM (or after ``--duration``).
Exit codes: 0 stopped, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import can

from bridge.client import CarLink
from bridge.homes import HomeRecord, HomeRegistry, default_state_dir
from bridge.protocol import Envelope
from vehicle_agent.can_input import DEFAULT_BUS, CanInputError, aiter_bus, areplay_log, open_bus
from vehicle_agent.dbc_loader import DbcLoadError
from vehicle_agent.gps import HELLO_SIGNALS as GPS_HELLO_SIGNALS
from vehicle_agent.gps import GpsdClient, GpsFix, load_track, replay
from vehicle_agent.history import History, history_loop
from vehicle_agent.mapper import VssUpdate
from vehicle_agent.pipeline import CanPipeline
from vehicle_agent.profile import DBC_DIR_ENV, CarProfile, ProfileError, load_profile
from vehicle_agent.runtime import (
    AgentRuntime,
    Journal,
    Link,
    LinkFactory,
    ObdActions,
    RuntimeOptions,
)
from vehicle_agent.state_store import StateStore
from vehicle_agent.trip_log import TripLog
from vehicle_agent.trips import TripRecorder

if TYPE_CHECKING:  # only --obd imports can-isotp
    from vehicle_agent.obd_service import ObdOptions, ObdService

_LOGGER = logging.getLogger(__name__)
VOICE_HOOK = "vehicle_agent.voice.runtime_hook"


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `run` sub-command."""
    p = subparsers.add_parser(
        "run",
        help="run the agent: read the car and sync with every paired home",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--profile", required=True, help="car profile (file or bundled name)")
    p.add_argument("--dbc-dir", type=Path, help=f"where the profile's DBCs are (${DBC_DIR_ENV})")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--replay", type=Path, metavar="LOG", help="replay a CAN log file")
    src.add_argument("--can-interface", help="python-can interface (socketcan, virtual, ...)")
    src.add_argument(
        "--elm327",
        metavar="PORT_OR_HOST:PORT",
        help="poll OBD-II through an ELM327 dongle: /dev/ttyUSB0, /dev/rfcomm0 or "
        "192.168.0.10:35000 (implies --obd)",
    )
    p.add_argument("--can-channel", help="channel of --can-interface (e.g. can0)")
    p.add_argument("--can-bus", help="profile bus the live channel carries (default: see above)")
    p.add_argument("--bitrate", type=int, help="bitrate for interfaces that set it")
    p.add_argument("--obd", action="store_true", help="poll OBD-II PIDs on the live bus")
    p.add_argument(
        "--elm327-baud",
        type=int,
        default=38400,
        help="serial speed of --elm327 (default: 38400; ignored for TCP and rfcomm)",
    )
    p.add_argument(
        "--elm327-no-low-power",
        action="store_true",
        help="do not put the dongle into low-power mode (ATLP) while the car is off",
    )
    p.add_argument("--obd-dtc-interval", type=float, default=60.0, help="seconds between DTC reads")
    p.add_argument(
        "--obd-battery-hold",
        type=float,
        default=60.0,
        help="seconds of low 12 V battery before polling pauses",
    )
    p.add_argument(
        "--obd-probe-interval",
        type=float,
        default=120.0,
        help="seconds between battery probes (PID 0x42) while paused",
    )
    p.add_argument("--loop", action="store_true", help="restart the replay at its end")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = recorded pace)")
    gps = p.add_mutually_exclusive_group()
    gps.add_argument("--gps-track", type=Path, help="GPX or NMEA track to replay")
    gps.add_argument("--gpsd", metavar="HOST:PORT", help="read fixes from gpsd")
    p.add_argument("--gps-speed", type=float, help="replay speed of --gps-track (default: --speed)")
    p.add_argument("--state-dir", type=Path, help="car state (homes, outboxes)")
    p.add_argument("--journal", type=Path, help="JSON lines of what the driver sees/hears")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--send-interval", type=float, default=0.5, help="seconds between sends")
    p.add_argument(
        "--remote-only",
        action="store_true",
        help="dial only the homes' outside addresses, as on the road",
    )
    p.add_argument(
        "--homes-check", type=float, default=5.0, help="seconds between checks of paired homes"
    )
    voice = p.add_argument_group(
        "voice (handled by the voice extension; any of --voice-model, --voice-inbox, "
        "--voice-mic, --voice-stream turns it on)"
    )
    voice.add_argument(
        "--voice-model",
        type=Path,
        metavar="DIR",
        help="vosk model directory (default: none for English, which runs on the "
        "pocketsphinx model of its wheel; the packaged vosk model for other languages)",
    )
    voice.add_argument(
        "--voice-engine",
        default="auto",
        choices=["auto", "vosk", "pocketsphinx"],
        help="speech engine (default auto: vosk when --voice-model is given, "
        "pocketsphinx for English without one, else the packaged vosk model)",
    )
    voice.add_argument(
        "--voice-language",
        default="en",
        metavar="LANG",
        help="sentence templates and replies: ko, en or zh (default: en)",
    )
    voice.add_argument(
        "--voice-inbox",
        type=Path,
        metavar="DIR",
        help="handle each *.wav dropped here as one push-to-talk utterance (renamed *.done)",
    )
    voice.add_argument(
        "--voice-mic",
        nargs="?",
        const="default",
        metavar="DEVICE",
        help="listen on a microphone (needs carhub[mic]); DEVICE is a sounddevice "
        "index or name, the system default when omitted",
    )
    voice.add_argument(
        "--voice-stream",
        type=Path,
        metavar="FILE",
        help="listen on raw 16 kHz mono 16-bit PCM from a file or FIFO, like a microphone",
    )
    voice.add_argument(
        "--wake-phrase",
        metavar="TEXT",
        help='live listening starts after this phrase (default per language: "hey car", '
        '"안녕 자동차" in Korean); "" turns it off and leaves the steering-wheel voice button',
    )
    voice.add_argument(
        "--voice-free-form",
        action="store_true",
        help="send speech the car's sentences do not cover to the home's conversation "
        "agent (e.g. an LLM) as free-form text; off by default: unconstrained recognition "
        "takes seconds on small computers and the words leave the car",
    )
    voice.add_argument(
        "--tts",
        default="espeak",
        choices=["espeak", "null"],
        help="speech out: espeak-ng (default) or null (journal only)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run until stopped; see the module docstring."""
    try:
        return asyncio.run(_main(args))
    except (UsageError, ProfileError, DbcLoadError, CanInputError, OSError) as exc:
        print(f"vehicle-agent run: error: {exc}", file=sys.stderr)
        return 2


def default_link_factory(registry: HomeRegistry, *, remote_only: bool = False) -> LinkFactory:
    """Build ``bridge.client.CarLink`` objects for the homes of *registry*."""

    def factory(
        hub_id: str,
        hello: dict[str, Any],
        on_message: Callable[[Envelope], Awaitable[None]],
        snapshot: Callable[[], dict[str, Any]],
    ) -> Link:
        return CarLink(
            home_dir=registry.directory(hub_id),
            hello_body=hello,
            on_message=on_message,
            snapshot=snapshot,
            remote_only=remote_only,
        )

    return factory


async def _main(args: argparse.Namespace) -> int:
    if args.replay is not None and not args.replay.is_file():
        raise UsageError(f"log file not found: {args.replay}")
    if args.can_interface and not args.can_channel:
        raise UsageError("--can-interface needs --can-channel")
    if args.speed <= 0:
        raise UsageError("--speed must be > 0")
    if args.obd and not (args.can_interface or args.elm327):
        raise UsageError("--obd needs a live bus (--can-interface) or --elm327")
    if args.elm327 is not None:
        from vehicle_agent.obd.elm327.wire import parse_target

        try:
            parse_target(args.elm327)
        except ValueError as exc:
            raise UsageError(f"--elm327: {exc}") from exc
    if args.elm327_baud <= 0:
        raise UsageError("--elm327-baud must be > 0")
    for name in ("send_interval", "homes_check", "obd_dtc_interval", "obd_probe_interval"):
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0")
    if args.obd_battery_hold < 0:
        raise UsageError("--obd-battery-hold must be >= 0")
    loop = asyncio.get_running_loop()
    profile = load_profile(args.profile)
    # Unix time throughout (see vehicle_agent.runtime): the store ticks on it.
    pipeline = await loop.run_in_executor(
        None, lambda: CanPipeline.from_profile(profile, dbc_dir=args.dbc_dir, clock=time.time)
    )
    # (the DBC loader already logged every repaired or skipped statement)

    state_dir = args.state_dir or default_state_dir()
    args.state_dir = state_dir  # the voice extension keeps the home's names there
    registry = HomeRegistry(state_dir)
    vehicle_id = await loop.run_in_executor(None, registry.vehicle_id)
    homes = await loop.run_in_executor(None, registry.list)

    buses: list[Any] = []
    frames: AsyncIterator[can.Message] | None = None
    obd: ObdService | None = None
    sources: list[AsyncIterator[VssUpdate]] = []
    try:
        if args.replay is not None:
            frames = areplay_log(args.replay, speed=args.speed, loop=args.loop)
        elif args.elm327 is not None:
            obd = await _start_elm327(args, profile, pipeline.store)
            sources.append(obd.updates())
        else:
            bus = open_bus(args.can_interface, args.can_channel, bitrate=args.bitrate)
            buses.append(bus)
            frames = _as_bus(aiter_bus(bus), live_bus_name(profile, args))
            if args.obd:
                obd = await _start_obd(args, profile, pipeline.store, buses)
                sources.append(obd.updates())
        sources += _gps_sources(args)
        return await _run_runtime(
            args, profile, pipeline, registry, vehicle_id, homes, frames, sources, obd
        )
    finally:
        if obd is not None:
            with contextlib.suppress(Exception):
                await obd.close()
        for bus in buses:
            with contextlib.suppress(Exception):
                bus.shutdown()


async def _run_runtime(
    args: argparse.Namespace,
    profile: CarProfile,
    pipeline: CanPipeline,
    registry: HomeRegistry,
    vehicle_id: str,
    homes: list[HomeRecord],
    frames: AsyncIterator[can.Message] | None,
    sources: list[AsyncIterator[VssUpdate]],
    obd: ObdService | None,
) -> int:
    loop = asyncio.get_running_loop()
    actions: ObdActions | None = obd
    options = RuntimeOptions(send_interval_s=args.send_interval)
    # The driver's logbook: <state-dir>/trips.db (`vehicle-agent trips`).
    trip_log = TripLog(Path(args.state_dir) / "trips.db")
    runtime = AgentRuntime(
        pipeline=pipeline,
        vehicle={
            "vehicle_id": vehicle_id,
            "vin": "",
            "make": profile.make,
            "model": profile.model,
            "profile": profile.profile_id,
        },
        frames=frames,
        sources=sources,
        obd=actions,
        journal=Journal(args.journal),
        options=options,
        trips=TripRecorder(trip_log, options.trip_detector()),
    )
    if args.gps_track is not None or args.gpsd is not None:
        runtime.declare_signals(GPS_HELLO_SIGNALS)
    factory = default_link_factory(registry, remote_only=args.remote_only)
    for home in homes:
        runtime.add_link(home.hub_id, factory)
        _LOGGER.info("home %s: %s", home.hub_id, ", ".join(home.urls))
    if obd is not None:
        runtime.add_task(obd.probe_loop)
    # One row per numeric signal per minute, sent home after a dead zone.
    history = History(Path(args.state_dir) / "history.db")
    runtime.store.add_listener(history.on_change)
    runtime.add_task(lambda: history_loop(runtime.links, history))

    async def watch_homes() -> None:
        while True:
            await asyncio.sleep(args.homes_check)
            await sync_homes(runtime, registry, factory)

    runtime.add_task(watch_homes)
    _attach_voice(runtime, args)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, runtime.stop)
    if args.duration is not None:
        loop.call_later(args.duration, runtime.stop)
    if args.replay is not None and not args.loop and args.duration is None:
        # A finite replay ends the run once every frame went through.
        async def stop_when_done() -> None:
            await runtime.frames_done.wait()
            await asyncio.sleep(args.send_interval * 2)
            runtime.stop()

        runtime.add_task(stop_when_done)
    _LOGGER.info(
        "vehicle %s (%s) running with %d home(s)", vehicle_id, profile.name, len(runtime.links)
    )
    try:
        await runtime.run()
    finally:
        trip_log.close()
        history.close()
    return 0


async def sync_homes(runtime: AgentRuntime, registry: HomeRegistry, factory: LinkFactory) -> None:
    """Attach homes paired since the start, detach the ones removed (never raises)."""
    loop = asyncio.get_running_loop()
    try:
        records = await loop.run_in_executor(None, registry.list)
    except Exception as exc:  # unreadable state dir: keep the links we have
        _LOGGER.error("cannot list the paired homes: %s", exc)
        return
    present = {r.hub_id for r in records}
    for hub_id in [h for h in runtime.links if h not in present]:
        await runtime.detach_link(hub_id)
    for record in records:
        if record.hub_id not in runtime.links:
            _LOGGER.info("new home %s: %s", record.hub_id, ", ".join(record.urls))
            await runtime.attach_link(record.hub_id, factory)


def live_bus_name(profile: CarProfile, args: argparse.Namespace) -> str:
    """Which profile bus the frames of the live channel are decoded as."""
    if args.can_bus:
        if profile.buses and args.can_bus not in profile.buses:
            raise UsageError(
                f"--can-bus {args.can_bus!r} is not a bus of the profile "
                f"({', '.join(profile.buses)})"
            )
        return str(args.can_bus)
    channel = str(args.can_channel)
    if channel in profile.buses or not profile.buses:
        return channel if profile.buses else DEFAULT_BUS
    return next(iter(profile.buses))


async def _as_bus(frames: AsyncIterator[can.Message], name: str) -> AsyncIterator[can.Message]:
    # The decoder picks DBCs by the frame's channel; a live channel may be named
    # anything (vcan0, a virtual bus id), so label it as the profile's bus.
    async for msg in frames:
        msg.channel = name
        yield msg


async def _start_obd(
    args: argparse.Namespace, profile: CarProfile, store: StateStore, buses: list[Any]
) -> ObdService:
    # Imported here: only --obd needs can-isotp.
    from vehicle_agent.obd import ObdClient
    from vehicle_agent.obd_service import ObdService

    obd_bus = open_bus(args.can_interface, args.can_channel, listen_only=False)
    buses.append(obd_bus)
    client = ObdClient(obd_bus)  # type: ignore[arg-type]
    await client.start()
    return ObdService(client, store, profile, options=_obd_options(args))


def _obd_options(args: argparse.Namespace) -> ObdOptions:
    from vehicle_agent.obd.power import PowerPolicy
    from vehicle_agent.obd_service import ObdOptions

    return ObdOptions(
        power=PowerPolicy(low_voltage_hold_s=args.obd_battery_hold),
        dtc_interval_s=args.obd_dtc_interval,
        probe_interval_s=args.obd_probe_interval,
    )


async def _start_elm327(
    args: argparse.Namespace, profile: CarProfile, store: StateStore
) -> ObdService:
    from vehicle_agent.obd.elm327 import Elm327Client, ElmOptions
    from vehicle_agent.obd.errors import ObdError
    from vehicle_agent.obd_service import ObdService

    client = Elm327Client(
        args.elm327,
        options=ElmOptions(baudrate=args.elm327_baud, low_power=not args.elm327_no_low_power),
    )
    try:
        await client.start()
    except ObdError as exc:  # a dongle not plugged in yet: the poller keeps trying
        _LOGGER.warning("ELM327 not ready (%s); retrying in the background", exc)
    return ObdService(client, store, profile, options=_obd_options(args))


def _gps_sources(args: argparse.Namespace) -> list[AsyncIterator[VssUpdate]]:
    if args.gps_track is not None:
        try:
            track = load_track(args.gps_track)
        except Exception as exc:  # TrackError, OSError
            raise UsageError(f"GPS track: {exc}") from exc
        speed = args.speed if args.gps_speed is None else args.gps_speed
        return [_fix_updates(replay(track.fixes, speed=speed, loop=args.loop))]
    if args.gpsd is not None:
        host, _, port = args.gpsd.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--gpsd wants HOST:PORT, got {args.gpsd!r}")
        return [_fix_updates(GpsdClient(host, int(port)).fixes())]
    return []


async def _fix_updates(fixes: AsyncIterator[GpsFix]) -> AsyncIterator[VssUpdate]:
    async for fix in fixes:
        for update in fix.to_vss():
            yield update


def _attach_voice(runtime: AgentRuntime, args: argparse.Namespace) -> None:
    """Hand the runtime to the voice extension, if it is installed."""
    try:
        hook = importlib.import_module(VOICE_HOOK)
    except ImportError:
        voice_given = (args.voice_model, args.voice_inbox, args.voice_mic, args.voice_stream)
        if any(v is not None for v in voice_given):
            _LOGGER.warning("voice options given but %s is not available: no voice", VOICE_HOOK)
        return
    hook.attach(runtime, args)
