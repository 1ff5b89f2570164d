"""The CAN pipeline in one object: frames -> decoder -> mapper -> state store.

Used by ``vehicle-agent decode``, the run loop and the benchmark, so all three
measure and run the same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import can
from cantools.database.can import Database

from vehicle_agent.dbc_loader import LoadedDbc, load_dbc, warn_if_slow_decoding
from vehicle_agent.decoder import FrameDecoder
from vehicle_agent.mapper import SignalMapper
from vehicle_agent.profile import CarProfile, resolve_dbc_files
from vehicle_agent.state_store import Change, StateStore

_LOGGER = logging.getLogger(__name__)
# How often (in frames) a replay lets the store flush held values by log time.
_TICK_EVERY = 64


@dataclass(slots=True)
class LoadedDbcs:
    """Databases per bus, and every DBC file's load report."""

    databases: dict[str, list[Database]]
    reports: list[LoadedDbc] = field(default_factory=list)

    @property
    def issue_count(self) -> int:
        """Total repaired or skipped statements over all files."""
        return sum(len(r.issues) for r in self.reports)


def load_bus_dbcs(files_per_bus: Mapping[str, Sequence[str | Path]]) -> LoadedDbcs:
    """Load the DBC files of each bus (a file shared by two buses is parsed once)."""
    cache: dict[Path, LoadedDbc] = {}
    out = LoadedDbcs(databases={})
    for bus, files in files_per_bus.items():
        for f in files:
            path = Path(f).resolve()
            if path not in cache:
                cache[path] = load_dbc(path)
                out.reports.append(cache[path])
            out.databases.setdefault(bus, []).append(cache[path].database)
    return out


class CanPipeline:
    """Decode, map and store frames for one car profile."""

    def __init__(
        self,
        profile: CarProfile,
        dbcs: LoadedDbcs,
        *,
        store: StateStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.dbcs = dbcs
        self.mapper = SignalMapper(profile, dbcs.databases)
        self.decoder = FrameDecoder(dbcs.databases, wanted=self.mapper.wanted)
        self.store = store or StateStore(self.mapper.policies(), clock=clock)
        self._last_tick = 0

    @classmethod
    def from_profile(
        cls,
        profile: CarProfile,
        *,
        dbc_dir: str | Path | None = None,
        dbc_files: Sequence[str | Path] = (),
        store: StateStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> CanPipeline:
        """Resolve and load the profile's DBC files, then build the pipeline."""
        warn_if_slow_decoding()
        files = resolve_dbc_files(profile, dbc_dir=dbc_dir, dbc_files=dbc_files)
        return cls(profile, load_bus_dbcs(files), store=store, clock=clock)

    def feed(self, msg: can.Message) -> list[Change]:
        """Process one frame; return the changes the store emitted because of it."""
        frame = self.decoder.decode_message(msg)
        if frame is None:
            return []
        out: list[Change] = []
        update = self.store.update
        for path, value, ts in self.mapper.map(frame):
            change = update(path, value, ts)
            if change is not None:
                out.append(change)
        return out

    def feed_all(self, frames: Iterable[can.Message]) -> int:
        """Process *frames* (a replay), ticking the store by log time; return the count.

        Emitted changes stay in the store's queue (:meth:`StateStore.drain`).
        """
        decode = self.decoder.decode_message
        mapper_map = self.mapper.map
        update = self.store.update
        tick = self.store.tick
        count = 0
        for msg in frames:
            count += 1
            frame = decode(msg)
            if frame is not None:
                for path, value, ts in mapper_map(frame):
                    update(path, value, ts)
            if count % _TICK_EVERY == 0:
                tick(msg.timestamp)
        return count
