"""StateStore: the latest value of every VSS path, and which changes are worth sending.

Rules per path (a :class:`SignalPolicy`):

* the first value is always emitted;
* a value that differs from the last *emitted* one by more than ``deadband``
  (any difference for booleans, strings and lists) is emitted at once, unless
  the path emitted less than ``1 / rate_limit`` seconds ago: then it is held and
  emitted as soon as the rate window opens (by :meth:`StateStore.tick`);
* a value within the deadband is held; once the value has stayed unchanged for
  ``quiet_period`` seconds it is emitted, so the home never keeps showing a
  value that was superseded;
* going back to the emitted value cancels a held one.

Time is injected: every call takes an explicit timestamp (log time during
replay) or falls back to the store's clock (monotonic when live), so tests are
deterministic. Emitted changes go to listeners and to an internal queue that
:meth:`StateStore.drain` empties (the run loop forwards them to the bridge).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

# What a VSS path holds: JSON scalars, or a list (DTCs) of JSON objects.
VssValue = bool | int | float | str | list[Any] | None

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignalPolicy:
    """When changes of one path are emitted."""

    deadband: float = 0.0
    rate_limit: float | None = None  # max emissions per second; None: unlimited
    quiet_period: float = 2.0  # seconds

    @property
    def min_interval(self) -> float:
        """Minimum seconds between two emissions."""
        return 0.0 if not self.rate_limit else 1.0 / self.rate_limit


class Change(NamedTuple):
    """An emitted value: what the home should now show for *path*."""

    path: str
    value: VssValue
    ts: float  # when the value was observed


Listener = Callable[[Change], None]


class _Entry:
    __slots__ = (
        "changed_at",
        "emitted_at",
        "held",
        "policy",
        "sent",
        "ts",
        "value",
    )

    def __init__(self, policy: SignalPolicy) -> None:
        self.policy = policy
        self.value: VssValue = None
        self.ts = 0.0
        self.changed_at = 0.0  # time the latest value first appeared
        self.sent: VssValue = None
        self.emitted_at = -float("inf")
        self.held = False  # latest value differs from the sent one and waits


def _significant(old: VssValue, new: VssValue, deadband: float) -> bool:
    """True if *new* differs from *old* by more than *deadband*."""
    if (
        deadband > 0
        and isinstance(new, int | float)
        and isinstance(old, int | float)
        and type(new) is not bool
        and type(old) is not bool
    ):
        return abs(new - old) > deadband
    return bool(old != new or type(old) is not type(new))


class StateStore:
    """Latest value + timestamp per VSS path, with deadband, rate limit and quiet period."""

    def __init__(
        self,
        policies: Mapping[str, SignalPolicy] | None = None,
        *,
        default_policy: SignalPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policies = dict(policies or {})
        self._default = default_policy or SignalPolicy()
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._held: set[str] = set()
        self._queue: list[Change] = []
        self._listeners: list[Listener] = []

    # --- listeners and queue ---

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call *listener* with every emitted change; returns a function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def drain(self) -> list[Change]:
        """Return and forget the changes emitted since the last drain, oldest first."""
        out, self._queue = self._queue, []
        return out

    @property
    def pending(self) -> int:
        """Number of emitted changes not drained yet."""
        return len(self._queue)

    @property
    def held(self) -> int:
        """Number of paths whose latest value waits for its rate window or quiet period."""
        return len(self._held)

    # --- updates ---

    def update(self, path: str, value: VssValue, ts: float | None = None) -> Change | None:
        """Record *value* for *path* observed at *ts*; return the change if emitted now."""
        now = self._clock() if ts is None else ts
        entry = self._entries.get(path)
        if entry is None:
            entry = self._entries[path] = _Entry(self._policies.get(path, self._default))
            entry.value, entry.ts, entry.changed_at = value, now, now
            return self._emit(path, entry, now)
        if value != entry.value or type(value) is not type(entry.value):
            entry.value = value
            entry.changed_at = now
        entry.ts = now
        policy = entry.policy
        if not _significant(entry.sent, value, 0.0):
            # Back at (or still at) what the home shows: nothing to send.
            if entry.held:
                entry.held = False
                self._held.discard(path)
            return None
        if _significant(entry.sent, value, policy.deadband):
            if now - entry.emitted_at >= policy.min_interval:
                return self._emit(path, entry, now)
        elif (
            now - entry.changed_at >= policy.quiet_period
            and now - entry.emitted_at >= policy.min_interval
        ):
            return self._emit(path, entry, now)
        if not entry.held:
            entry.held = True
            self._held.add(path)
        return None

    def tick(self, now: float | None = None) -> list[Change]:
        """Emit held values whose rate window opened or whose quiet period passed."""
        if not self._held:
            return []
        now = self._clock() if now is None else now
        out: list[Change] = []
        for path in list(self._held):
            entry = self._entries[path]
            policy = entry.policy
            if now - entry.emitted_at < policy.min_interval:
                continue
            if (
                _significant(entry.sent, entry.value, policy.deadband)
                or now - entry.changed_at >= policy.quiet_period
            ):
                out.append(self._emit(path, entry, now))
        return out

    def flush(self) -> list[Change]:
        """Emit every held value now, ignoring rate limits (shutdown, end of a replay)."""
        out = [self._emit(p, self._entries[p], self._entries[p].ts) for p in list(self._held)]
        return out

    def next_due(self) -> float | None:
        """Earliest time at which :meth:`tick` may emit something, or None."""
        due: float | None = None
        for path in self._held:
            entry = self._entries[path]
            policy = entry.policy
            when = entry.emitted_at + policy.min_interval
            if not _significant(entry.sent, entry.value, policy.deadband):
                when = max(when, entry.changed_at + policy.quiet_period)
            due = when if due is None else min(due, when)
        return due

    def _emit(self, path: str, entry: _Entry, now: float) -> Change:
        entry.sent = entry.value
        entry.emitted_at = now
        if entry.held:
            entry.held = False
            self._held.discard(path)
        change = Change(path, entry.value, entry.ts)
        self._queue.append(change)
        for listener in tuple(self._listeners):
            try:
                listener(change)
            except Exception:  # a broken listener must not stop the data flow
                _LOGGER.exception("state listener failed for %s", path)
        return change

    # --- reading ---

    def get(self, path: str) -> tuple[VssValue, float] | None:
        """Latest (value, ts) of *path*, or None if never seen."""
        entry = self._entries.get(path)
        return None if entry is None else (entry.value, entry.ts)

    def value(self, path: str, default: VssValue = None) -> VssValue:
        """Latest value of *path*, or *default*."""
        entry = self._entries.get(path)
        return default if entry is None else entry.value

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Everything known: ``{path: {"value": v, "ts": t}}`` (the snapshot body shape)."""
        return {p: {"value": e.value, "ts": e.ts} for p, e in self._entries.items()}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries
