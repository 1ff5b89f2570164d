"""The agent run loop: CAN (+ GPS, OBD-II) -> state store -> every paired home.

:class:`AgentRuntime` owns the tasks of a running agent:

* CAN: frames from a live bus or a replayed log go through the
  :class:`~vehicle_agent.pipeline.CanPipeline` (decode, map, state store);
* extra update sources (GPS fixes, the OBD-II poller) feed the same store;
* the forwarder wakes every ``send_interval_s``: it lets the store flush held
  values, sends the emitted changes as one ``state`` message to every home,
  and sends ``event`` messages (trip start/end, DTCs appearing/clearing);
* incoming messages from a home: ``command`` (``snapshot``, ``clear_dtcs``) is
  answered with ``command_result``; ``notify`` is written to the journal; any
  type can also be handled by an extension (:meth:`AgentRuntime.add_handler`),
  which is how the voice assistant plugs in.

Time: in a running agent every timestamp is unix time (``time.time``), the
runtime's default clock: frames are re-stamped on arrival (a replayed log
keeps its own clock otherwise), GPS fixes and OBD answers carry the wall-clock
time they arrived, and the store ticks with the same clock (build its pipeline
with ``clock=time.time``). The ``ts`` of each signal goes on the wire as is,
and ages (stale ignition, quiet periods) are differences on that one clock.
Unix time can step (NTP); a step only shifts one rate-limit or quiet window.

Homes can come and go while the agent runs (:meth:`AgentRuntime.attach_link`,
:meth:`AgentRuntime.detach_link`): a removed home gets nothing more.

Links are anything with the :class:`Link` shape (``bridge.client.CarLink`` in
production, fakes in tests). Sending only appends to the link's durable
outbox, so a home that is offline gets everything when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import can

from bridge.protocol import Envelope, MessageType
from vehicle_agent import __version__
from vehicle_agent.charging import ChargingRecorder
from vehicle_agent.mapper import VssUpdate
from vehicle_agent.pipeline import CanPipeline
from vehicle_agent.state_store import Change
from vehicle_agent.trip_log import TripLog
from vehicle_agent.trips import IS_RUNNING as IS_RUNNING
from vehicle_agent.trips import ODOMETER as ODOMETER
from vehicle_agent.trips import SPEED as SPEED
from vehicle_agent.trips import TripDetector as TripDetector
from vehicle_agent.trips import TripRecorder

_LOGGER = logging.getLogger(__name__)

VIN = "Vehicle.VehicleIdentification.VIN"
DTCS = "Vehicle.Diagnostics.DTCs"


class Link(Protocol):
    """What the runtime needs from a link to one home (bridge.client.CarLink)."""

    @property
    def connected(self) -> bool:
        """True while the home is reachable."""
        ...

    async def start(self) -> None:
        """Open the outbox and connect in the background."""
        ...

    async def stop(self) -> None:
        """Disconnect and close the outbox."""
        ...

    async def send(self, type: MessageType, body: dict[str, Any]) -> int:
        """Append a durable message to the outbox; return its seq."""
        ...


class ObdActions(Protocol):
    """The OBD-II operations a home may ask for (vehicle_agent.obd.ObdClient)."""

    async def clear_dtcs(self) -> None:
        """Mode 04."""
        ...


# (hub_id, envelope) -> None
Handler = Callable[[str, Envelope], Awaitable[None]]
# (hub_id, hello_body, on_message, snapshot) -> Link
LinkFactory = Callable[
    [str, dict[str, Any], Callable[[Envelope], Awaitable[None]], Callable[[], dict[str, Any]]],
    Link,
]


class Journal:
    """JSON lines of what the driver would see or hear (docs/INTERFACES.md, run)."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._fh: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Line-buffered appends: each record is on disk as soon as it is written.
            self._fh = path.open("a", encoding="utf-8", buffering=1)

    def write(self, kind: str, **fields: object) -> None:
        """Append ``{"t", "kind", **fields}``."""
        if self._fh is None:
            return
        record = {"t": self._clock(), "kind": kind, **fields}
        try:
            # Readable as is: a Korean reply stays "네?", not "\ub124?".
            self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        except OSError as exc:
            _LOGGER.error("cannot write the journal: %s", exc)

    def close(self) -> None:
        """Close the file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _dtc_events(old: object, new: object, ts: float) -> list[dict[str, Any]]:
    """dtc_appeared / dtc_cleared events between two values of Vehicle.Diagnostics.DTCs."""

    def codes(value: object) -> dict[str, dict[str, Any]]:
        if not isinstance(value, list):
            return {}
        return {str(d["code"]): d for d in value if isinstance(d, dict) and "code" in d}

    before, after = codes(old), codes(new)
    events = [
        {"kind": "dtc_appeared", "ts": ts, "data": after[c]} for c in sorted(after.keys() - before)
    ]
    events += [
        {"kind": "dtc_cleared", "ts": ts, "data": before[c]} for c in sorted(before.keys() - after)
    ]
    return events


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeOptions:
    """Timing knobs of the runtime."""

    send_interval_s: float = 0.5
    trip_start_kmh: float = 5.0
    trip_end_idle_s: float = 120.0
    restamp_frames: bool = True  # replayed logs carry their own clock: use ours
    stop_drain_s: float = 3.0
    """On stop, wait up to this long for connected homes to ack what is queued."""

    def trip_detector(self) -> TripDetector:
        """A trip detector with these options' thresholds."""
        return TripDetector(start_kmh=self.trip_start_kmh, end_idle_s=self.trip_end_idle_s)


class AgentRuntime:
    """Runs the agent until :meth:`stop` (see the module docstring)."""

    def __init__(
        self,
        *,
        pipeline: CanPipeline,
        vehicle: dict[str, str],
        frames: AsyncIterator[can.Message] | None = None,
        sources: Iterable[AsyncIterator[VssUpdate]] = (),
        obd: ObdActions | None = None,
        journal: Journal | None = None,
        options: RuntimeOptions | None = None,
        clock: Callable[[], float] = time.time,
        trips: TripRecorder | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store = pipeline.store
        self.options = options or RuntimeOptions()
        self.journal = journal or Journal(None)
        self.obd = obd
        self.links: dict[str, Link] = {}
        # Without a trip log (tests, no state dir) trips are kept in memory.
        self.trips = trips or TripRecorder(TripLog(None), self.options.trip_detector())
        self.charging = ChargingRecorder()
        self._frames = frames
        self._sources = list(sources)
        self._clock = clock
        self._handlers: dict[str, list[Handler]] = {}
        self._extra_tasks: list[Callable[[], Awaitable[None]]] = []
        self._stop = asyncio.Event()
        self._running = False
        self._link_up: dict[str, bool] = {}
        self._dtcs: object = None
        self.frames_done = asyncio.Event()
        # One dict shared with every link's hello: CarLink copies the top level
        # only, so the VIN learnt from the CAN bus reaches later (re)connects.
        self._vehicle = dict(vehicle)
        self._hello: dict[str, Any] = {
            "protocols": [1],
            "agent_version": __version__,
            "vehicle": self._vehicle,
            "capabilities": self._capabilities(),
            "signals": pipeline.profile.hello_signals(),
        }

    # --- wiring ---

    def _capabilities(self) -> list[str]:
        caps = ["state", "snapshot", "events", "notify", "command:snapshot"]
        if self.obd is not None:
            caps.append("command:clear_dtcs")
        return caps

    @property
    def hello_body(self) -> dict[str, Any]:
        """The hello body every link sends."""
        return self._hello

    def add_link(self, hub_id: str, factory: LinkFactory) -> Link:
        """Create the link to one home with *factory*; it starts with :meth:`run`."""

        async def on_message(env: Envelope) -> None:
            await self.handle_message(hub_id, env)

        link = factory(hub_id, self._hello, on_message, self.snapshot)
        self.links[hub_id] = link
        return link

    async def attach_link(self, hub_id: str, factory: LinkFactory) -> Link | None:
        """Add a home while running (a pairing made meanwhile) and start its link.

        Returns None (nothing changes) if *hub_id* already has a link.
        """
        if hub_id in self.links:
            return None
        link = self.add_link(hub_id, factory)
        if self._running:
            await self._start_link(hub_id, link)
        return link

    async def detach_link(self, hub_id: str) -> bool:
        """Stop and forget the link to a home (the home was removed); False if unknown."""
        link = self.links.pop(hub_id, None)
        if link is None:
            return False
        self._link_up.pop(hub_id, None)
        try:
            await link.stop()
        except Exception as exc:
            _LOGGER.error("stopping the link to home %s: %s", hub_id, exc)
        _LOGGER.info("home %s removed: no more messages to it", hub_id)
        self.journal.write("link", hub_id=hub_id, connected=False, removed=True)
        return True

    async def _start_link(self, hub_id: str, link: Link) -> None:
        try:
            await link.start()
        except Exception as exc:
            _LOGGER.error("cannot start the link to home %s: %s", hub_id, exc)

    def add_handler(self, type: str, handler: Handler) -> None:
        """Also call *handler* for incoming messages of *type* (e.g. ``vocabulary``)."""
        self._handlers.setdefault(type, []).append(handler)

    def add_task(self, factory: Callable[[], Awaitable[None]]) -> None:
        """Run ``factory()`` as one more task while the runtime runs (extensions)."""
        self._extra_tasks.append(factory)

    def add_capability(self, capability: str) -> None:
        """Announce one more capability in the hello."""
        caps = self._hello["capabilities"]
        if capability not in caps:
            caps.append(capability)

    def declare_signals(self, signals: Mapping[str, Mapping[str, Any]]) -> None:
        """Announce signals from sources outside the car profile (GPS) in the hello,
        so the home creates their entities before the first value arrives."""
        hello_signals: dict[str, Any] = self._hello["signals"]
        hello_signals.update({path: dict(meta) for path, meta in signals.items()})

    def snapshot(self) -> dict[str, Any]:
        """Everything the car knows (the snapshot body's ``signals``)."""
        return self.store.snapshot()

    # --- sending ---

    async def broadcast(self, type: MessageType, body: dict[str, Any]) -> None:
        """Append *body* to every home's outbox; a failing link is logged, never fatal."""
        # A copy: homes may be attached or detached while a send awaits.
        for hub_id, link in list(self.links.items()):
            await self._send(hub_id, link, type, body)

    async def _send(self, hub_id: str, link: Link, type: MessageType, body: dict[str, Any]) -> None:
        try:
            await link.send(type, body)
        except Exception as exc:  # outbox full/broken, bad body: keep running
            _LOGGER.error("cannot queue %s for home %s: %s", type, hub_id, exc)

    async def send_event(self, kind: str, data: dict[str, Any], ts: float | None = None) -> None:
        """Send an ``event`` to every home."""
        body = {"kind": kind, "ts": self._clock() if ts is None else ts, "data": data}
        _LOGGER.info("event %s %s", kind, data)
        await self.broadcast(MessageType.EVENT, body)

    # --- incoming ---

    async def handle_message(self, hub_id: str, env: Envelope) -> None:
        """Handle one durable message from home *hub_id* (never raises)."""
        try:
            if env.type == MessageType.COMMAND:
                await self._command(hub_id, env)
            elif env.type == MessageType.NOTIFY:
                body = env.body
                _LOGGER.info("notify from %s: %s", hub_id, body.get("message"))
                self.journal.write(
                    "notify",
                    hub_id=hub_id,
                    message=body.get("message"),
                    priority=body.get("priority", "normal"),
                )
            for handler in self._handlers.get(str(env.type), ()):
                await handler(hub_id, env)
            if env.type not in (MessageType.COMMAND, MessageType.NOTIFY) and not self._handlers.get(
                str(env.type)
            ):
                _LOGGER.debug("no handler for %s from %s", env.type, hub_id)
        except Exception:  # a bad message or handler must not stop the link
            _LOGGER.exception("handling %s #%d from %s failed", env.type, env.seq, hub_id)

    async def _command(self, hub_id: str, env: Envelope) -> None:
        command = env.body.get("command")
        ok, detail = False, ""
        if command == "snapshot":
            link = self.links.get(hub_id)
            if link is not None:
                await self._send(
                    hub_id, link, MessageType.SNAPSHOT, {"signals": self.store.snapshot()}
                )
            ok, detail = True, f"{len(self.store)} signals"
        elif command == "clear_dtcs":
            if self.obd is None:
                detail = "no OBD-II connection on this car"
            else:
                try:
                    await self.obd.clear_dtcs()
                    ok, detail = True, "DTCs cleared"
                except Exception as exc:  # ObdError and transport errors
                    detail = f"clearing DTCs failed: {exc}"
        elif self._handlers.get(f"command:{command}"):
            for handler in self._handlers[f"command:{command}"]:
                await handler(hub_id, env)
            return  # the handler answers
        else:
            detail = f"unsupported command: {command!r}"
        _LOGGER.info("command %s from %s: ok=%s %s", command, hub_id, ok, detail)
        link = self.links.get(hub_id)
        if link is not None:
            result = {"command_seq": env.seq, "ok": ok, "detail": detail, "data": {}}
            await self._send(hub_id, link, MessageType.COMMAND_RESULT, result)

    # --- the loops ---

    def stop(self) -> None:
        """Ask :meth:`run` to finish."""
        self._stop.set()

    async def run(self) -> None:
        """Start the links and tasks; return after :meth:`stop` (links stopped cleanly)."""
        for hub_id, link in list(self.links.items()):
            await self._start_link(hub_id, link)
        self._running = True
        if not self.links:
            _LOGGER.warning(
                "no paired home: running without a link (pair with `vehicle-agent pair`)"
            )
        tasks = [asyncio.create_task(self._forward_loop(), name="forward")]
        if self._frames is not None:
            tasks.append(asyncio.create_task(self._can_loop(self._frames), name="can"))
        for i, source in enumerate(self._sources):
            tasks.append(asyncio.create_task(self._source_loop(source), name=f"source-{i}"))
        for factory in self._extra_tasks:
            tasks.append(asyncio.create_task(_guard(factory), name="extension"))
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._running = False
            # What is still held (rate limit, deadband) is the car's last word:
            # send it, so the home never keeps a superseded value.
            self.store.flush()
            await self._forward_once(final=True)
            await self._drain_links(self.options.stop_drain_s)
            for hub_id, link in list(self.links.items()):
                try:
                    await link.stop()
                except Exception as exc:
                    _LOGGER.error("stopping the link to home %s: %s", hub_id, exc)
            self.journal.close()

    async def _drain_links(self, timeout: float) -> None:  # noqa: ASYNC109 (a bound, not a cancel)
        """Give connected links up to *timeout* s to have their outbox acked.

        Links without a readable outbox (fakes) or not connected are not waited
        for: what they hold stays in their durable outbox for the next run.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(_unacked(link) for link in self.links.values() if link.connected):
                return
            await asyncio.sleep(0.05)
        _LOGGER.info("stopping with messages not yet acked; they stay in the outbox")

    async def _can_loop(self, frames: AsyncIterator[can.Message]) -> None:
        feed = self.pipeline.feed
        restamp = self.options.restamp_frames
        clock = self._clock
        try:
            async for msg in frames:
                if restamp:
                    msg.timestamp = clock()
                feed(msg)
        except Exception:
            _LOGGER.exception("CAN input failed; no more frames")
        finally:
            stats = self.pipeline.decoder.stats.as_dict()
            _LOGGER.info("CAN input ended: %s", stats)
            self.frames_done.set()

    async def _source_loop(self, source: AsyncIterator[VssUpdate]) -> None:
        update = self.store.update
        try:
            async for path, value, ts in source:
                update(path, value, ts)
        except Exception:
            _LOGGER.exception("an update source failed; it stays off")

    async def _forward_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.send_interval_s)
            await self._forward_once()

    async def _forward_once(self, *, final: bool = False) -> None:
        now = self._clock()
        self.store.tick(now)
        changes = self.store.drain()
        events: list[dict[str, Any]] = []
        for change in changes:
            events += self._observe(change)
        # Stopping ends the trip in progress (the car is switched off).
        events += self.trips.finish(now) if final else self.trips.tick(now)
        if changes:
            signals = {c.path: {"value": c.value, "ts": c.ts} for c in changes}
            await self.broadcast(MessageType.STATE, {"signals": signals})
        for event in events:
            _LOGGER.info("event %s %s", event["kind"], event["data"])
            await self.broadcast(MessageType.EVENT, event)
        self.trips.mark_sent(events)
        self._watch_links()

    def _observe(self, change: Change) -> list[dict[str, Any]]:
        path, value, ts = change
        if path == VIN and isinstance(value, str) and value != self._vehicle.get("vin"):
            self._vehicle["vin"] = value
            _LOGGER.info("VIN from the CAN bus: %s", value)
        if path == DTCS:
            events = _dtc_events(self._dtcs, value, ts)
            self._dtcs = value
            return events
        return self.trips.observe(path, value, ts) + self.charging.observe(path, value, ts)

    def _watch_links(self) -> None:
        for hub_id, link in list(self.links.items()):
            up = bool(link.connected)
            if self._link_up.get(hub_id) != up:
                self._link_up[hub_id] = up
                _LOGGER.info("home %s %s", hub_id, "connected" if up else "not connected")
                self.journal.write("link", hub_id=hub_id, connected=up)


def _unacked(link: Link) -> int:
    """Messages in *link*'s outbox not acked yet (0 if it has no outbox to look at)."""
    outbox = getattr(link, "outbox", None)
    last = getattr(outbox, "last_seq", None)
    acked = getattr(outbox, "acked_seq", None)
    if isinstance(last, int) and isinstance(acked, int):
        return max(0, last - acked)
    return 0


async def _guard(factory: Callable[[], Awaitable[None]]) -> None:
    try:
        await factory()
    except asyncio.CancelledError:
        raise
    except Exception:
        _LOGGER.exception("an agent extension failed")


async def retimed(
    updates: AsyncIterator[VssUpdate], clock: Callable[[], float] = time.time
) -> AsyncIterator[VssUpdate]:
    """Re-stamp updates with *clock* (recorded sources replayed live)."""
    async for path, value, _ in updates:
        yield VssUpdate(path, value, clock())
