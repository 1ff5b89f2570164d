"""CAN frames in: live python-can buses (listen-only by default) and log replay.

Live buses
    :func:`open_bus` opens any python-can interface. On a car the agent must
    never put a frame (or an ACK) on the bus unless it means to, so it opens
    buses listen-only by default:

    * every interface: ``receive_own_messages=False`` and the returned
      :class:`ListenOnlyBus` wrapper refuses ``send()`` in software;
    * interfaces whose python-can driver has a hardware silent mode get it:
      ``listen_only=True`` (vector, slcan, nixnet), ``state=BusState.PASSIVE``
      (pcan, systec), ``driver_mode=False`` i.e. silent (kvaser),
      ``operation_mode="silent"`` (seeedstudio);
    * socketcan cannot switch the controller from user space: configure the
      link as listen-only with ``ip link set can0 type can bitrate 500000
      listen-only on`` (the software guard still applies);
    * ``virtual`` and ``udp_multicast`` are simulations: software guard only.

Replay
    :func:`replay_log` reads any file python-can's ``LogReader`` reads (candump
    ``.log``, ``.asc``, ``.blf``, ``.trc``, ...) and yields ``can.Message`` at
    the recorded pace, a multiple of it, or as fast as possible. candump logs
    use a faster parser of our own (about twice python-can's rate), because
    reading is part of the decode budget. :func:`areplay_log` is the asyncio
    variant. The bus name of a frame is ``str(msg.channel)`` (e.g. ``"can0"``),
    see :func:`bus_name`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Self

import can

_LOGGER = logging.getLogger(__name__)

DEFAULT_BUS = "can0"
_CAN_ERR_FLAG = 0x20000000
_CANFD_BRS = 0x01
_CANFD_ESI = 0x02

# interface name -> extra kwargs that put its controller in listen-only mode
_SILENT_KWARGS: dict[str, dict[str, Any]] = {
    "vector": {"listen_only": True},
    "slcan": {"listen_only": True},
    "nixnet": {"listen_only": True},
    "pcan": {"state": can.BusState.PASSIVE},
    "systec": {"state": can.BusState.PASSIVE},
    "kvaser": {"driver_mode": False},  # canlib.DRIVER_MODE_SILENT
    "seeedstudio": {"operation_mode": "silent"},
}


class CanInputError(Exception):
    """A bus could not be opened, or a log file could not be read."""


class ListenOnlyBus:
    """A python-can bus that can receive but refuses to send (software guard)."""

    def __init__(self, bus: can.BusABC) -> None:
        self._bus = bus

    @property
    def bus(self) -> can.BusABC:
        """The wrapped python-can bus (for notifiers and filters)."""
        return self._bus

    @property
    def channel_info(self) -> str:
        """Human-readable description of the wrapped channel."""
        return str(self._bus.channel_info)

    def recv(self, timeout: float | None = None) -> can.Message | None:
        """Receive one frame, or None after *timeout* seconds."""
        msg: can.Message | None = self._bus.recv(timeout)
        return msg

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Always raises: this bus was opened listen-only."""
        raise CanInputError("bus opened listen-only: refusing to send")

    def __iter__(self) -> Iterator[can.Message]:
        while True:
            msg = self._bus.recv(timeout=1.0)
            if msg is not None:
                yield msg

    def shutdown(self) -> None:
        """Close the underlying bus."""
        self._bus.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def silent_mode_kwargs(interface: str) -> dict[str, Any]:
    """The python-can kwargs that make *interface*'s controller listen-only, if any."""
    return dict(_SILENT_KWARGS.get(interface, {}))


def open_bus(
    interface: str,
    channel: str | int | None = None,
    *,
    listen_only: bool = True,
    bitrate: int | None = None,
    **kwargs: object,
) -> can.BusABC | ListenOnlyBus:
    """Open a python-can bus; listen-only (see module docstring) unless told otherwise.

    Returns a :class:`ListenOnlyBus` when *listen_only*, else the raw bus (for
    OBD-II, which must send requests). Raises :class:`CanInputError`.
    """
    options: dict[str, Any] = {"receive_own_messages": False}
    if bitrate is not None:
        options["bitrate"] = bitrate
    if listen_only:
        options.update(silent_mode_kwargs(interface))
        if interface == "socketcan":
            _LOGGER.info(
                "socketcan: listen-only is a link setting; use `ip link set %s type can "
                "listen-only on` for hardware silence (sending is refused in software)",
                channel,
            )
    options.update(kwargs)
    try:
        bus = can.Bus(interface=interface, channel=channel, **options)
    except (can.CanError, OSError, ValueError, ImportError, NotImplementedError) as exc:
        raise CanInputError(f"cannot open {interface} bus {channel!r}: {exc}") from exc
    _LOGGER.info("opened %s bus %s (listen_only=%s)", interface, channel, listen_only)
    return ListenOnlyBus(bus) if listen_only else bus


def bus_name(msg: can.Message) -> str:
    """The bus name of a frame: its channel as a string, ``can0`` when unknown."""
    channel = msg.channel
    return DEFAULT_BUS if channel is None else str(channel)


# --- log reading ------------------------------------------------------------


def read_log(path: str | Path) -> Iterator[can.Message]:
    """Yield every frame of a log file python-can can read, as fast as possible.

    Malformed lines of candump logs are logged and skipped, never fatal.
    """
    path = Path(path)
    if not path.is_file():
        raise CanInputError(f"log file not found: {path}")
    if path.suffix.lower() == ".log":
        return _read_candump(path)
    return _read_with_python_can(path)


def _read_with_python_can(path: Path) -> Iterator[can.Message]:
    try:
        reader = can.LogReader(path)
    except (ValueError, OSError) as exc:
        raise CanInputError(f"cannot read {path}: {exc}") from exc
    with reader:
        yield from reader


def _read_candump(path: Path) -> Iterator[can.Message]:
    """Parse ``(timestamp) channel ID#DATA [R|T]`` lines (candump -L format)."""
    message = can.Message
    with path.open("r", encoding="ascii", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                stamp, channel, frame = parts[0], parts[1], parts[2]
                ident, _, payload = frame.partition("#")
                can_id = int(ident, 16)
                timestamp = float(stamp[1:-1])
                is_rx = len(parts) < 4 or parts[3].lower() != "t"
                if can_id & _CAN_ERR_FLAG:
                    yield message(timestamp=timestamp, is_error_frame=True, channel=channel)
                    continue
                if payload[:1] == "#":  # CAN FD: ID##<flags><data>
                    flags = int(payload[1], 16)
                    yield message(
                        timestamp=timestamp,
                        arbitration_id=can_id,
                        is_extended_id=len(ident) > 3,
                        is_fd=True,
                        bitrate_switch=bool(flags & _CANFD_BRS),
                        error_state_indicator=bool(flags & _CANFD_ESI),
                        data=bytes.fromhex(payload[2:]),
                        channel=channel,
                        is_rx=is_rx,
                    )
                elif payload[:1] in ("R", "r"):
                    yield message(
                        timestamp=timestamp,
                        arbitration_id=can_id,
                        is_extended_id=len(ident) > 3,
                        is_remote_frame=True,
                        dlc=int(payload[1:]) if len(payload) > 1 else 0,
                        channel=channel,
                        is_rx=is_rx,
                    )
                else:
                    yield message(
                        timestamp=timestamp,
                        arbitration_id=can_id,
                        is_extended_id=len(ident) > 3,
                        data=bytes.fromhex(payload),
                        channel=channel,
                        is_rx=is_rx,
                        check=False,
                    )
            except (IndexError, ValueError) as exc:
                _LOGGER.warning("%s:%d: skipping malformed line (%s)", path, number, exc)


# --- replay pacing ------------------------------------------------------------


class ReplayPacer:
    """Decides how long to wait before each frame of a replay.

    Frames are scheduled on absolute targets (start + elapsed log time / speed),
    so sleep overshoot does not accumulate. ``speed=None`` (or inf) means as
    fast as possible. The clock is injected so the logic is testable.
    """

    def __init__(self, speed: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        if speed is not None and not (speed > 0):
            raise ValueError(f"replay speed must be > 0, got {speed}")
        self.speed = None if speed is None or math.isinf(speed) else speed
        self._clock = clock
        self._log_start: float | None = None
        self._wall_start = 0.0

    def delay(self, timestamp: float) -> float:
        """Seconds to wait before emitting a frame recorded at *timestamp* (>= 0)."""
        if self.speed is None:
            return 0.0
        if self._log_start is None:
            self._log_start = timestamp
            self._wall_start = self._clock()
            return 0.0
        target = self._wall_start + (timestamp - self._log_start) / self.speed
        return max(0.0, target - self._clock())


def _looped(
    source: Callable[[], Iterable[can.Message]], loop: bool, gap: float = 0.1
) -> Iterator[can.Message]:
    """Yield *source*'s frames once, or forever with timestamps kept increasing."""
    offset = 0.0
    while True:
        first: float | None = None
        last = 0.0
        count = 0
        for msg in source():
            if first is None:
                first = msg.timestamp
            last = msg.timestamp
            if offset:
                msg.timestamp += offset
            count += 1
            yield msg
        if not loop or count == 0 or first is None:
            return
        offset += (last - first) + gap


def replay_log(
    path: str | Path,
    *,
    speed: float | None = 1.0,
    loop: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[can.Message]:
    """Yield the frames of *path* paced at *speed* x recorded time (None: no pacing).

    With *loop* the file restarts at its end and timestamps keep increasing.
    """
    if not Path(path).is_file():
        raise CanInputError(f"log file not found: {path}")
    pacer = ReplayPacer(speed, clock)
    for msg in _looped(lambda: read_log(path), loop):
        wait = pacer.delay(msg.timestamp)
        if wait > 0:
            sleep(wait)
        yield msg


async def areplay_log(
    path: str | Path,
    *,
    speed: float | None = 1.0,
    loop: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    batch: int = 256,
) -> AsyncIterator[can.Message]:
    """Asyncio variant of :func:`replay_log`.

    Without pacing it still yields to the event loop every *batch* frames so a
    fast replay never starves other tasks.
    """
    pacer = ReplayPacer(speed, clock)
    for count, msg in enumerate(_looped(lambda: read_log(path), loop), start=1):
        wait = pacer.delay(msg.timestamp)
        if wait > 0:
            await sleep(wait)
        elif count % batch == 0:
            await sleep(0)
        yield msg


async def aiter_bus(
    bus: can.BusABC | ListenOnlyBus, *, poll: float = 0.5
) -> AsyncIterator[can.Message]:
    """Yield frames from a live bus without blocking the event loop.

    python-can's ``recv`` blocks, so each call runs in the default executor with
    a short timeout; cancelling the consumer stops the loop within *poll* s.
    """
    loop = asyncio.get_running_loop()
    while True:
        msg = await loop.run_in_executor(None, bus.recv, poll)
        if msg is not None:
            yield msg
