"""What the demo prints: numbered steps, details, PASS/FAIL lines and the live table."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO


@dataclass
class StepResult:
    """The outcome of one verified step."""

    number: int
    key: str  # stable name of the step (for reports and tests)
    title: str
    passed: bool
    detail: str


@dataclass
class Console:
    """Numbered steps and their results, on one stream."""

    stream: TextIO = sys.stdout
    results: list[StepResult] = field(default_factory=list)
    _step: int = 0
    _title: str = ""
    _key: str = ""

    def step(self, title: str, *, key: str) -> int:
        """Start the next numbered step."""
        self._step += 1
        self._title = title
        self._key = key
        self.say(f"\n[{self._step}] {title}")
        return self._step

    def say(self, text: str) -> None:
        """Print a line now."""
        print(text, file=self.stream, flush=True)

    def detail(self, text: str) -> None:
        """Print an indented detail of the current step."""
        self.say(f"    {text}")

    def verdict(self, passed: bool, detail: str) -> bool:
        """Record and print PASS/FAIL for the current step."""
        self.results.append(StepResult(self._step, self._key, self._title, passed, detail))
        self.say(f"    {'PASS' if passed else 'FAIL'}: {detail}")
        return passed

    @property
    def all_passed(self) -> bool:
        """True when at least one step was verified and none failed."""
        return bool(self.results) and all(r.passed for r in self.results)

    def summary(self) -> str:
        """One line per verified step, then the total."""
        lines = [
            f"  {'PASS' if r.passed else 'FAIL'}  [{r.number}] {r.title}: {r.detail}"
            for r in self.results
        ]
        passed = sum(r.passed for r in self.results)
        lines.append(f"  {passed}/{len(self.results)} steps passed")
        return "\n".join(lines)


def _age(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        changed = datetime.fromisoformat(iso)
    except ValueError:
        return ""
    seconds = max(0.0, (datetime.now(UTC) - changed).total_seconds())
    return f"{seconds:5.0f} s ago" if seconds < 3600 else changed.strftime("%H:%M:%S")


def _short_number(state: str) -> str:
    """At most two decimals for numeric states (``12.2075920003226`` -> ``12.21``)."""
    try:
        number = float(state)
    except ValueError:
        return state
    return state if round(number, 2) == number else f"{number:.2f}"


def render_table(title: str, states: list[dict[str, Any]]) -> str:
    """A text table of entity states: name, state with unit, when it last changed."""
    width = shutil.get_terminal_size((100, 30)).columns
    rows = []
    for st in sorted(states, key=lambda s: s["entity_id"]):
        attrs = st.get("attributes", {})
        name = attrs.get("friendly_name", st["entity_id"])
        value = _short_number(st["state"])
        if unit := attrs.get("unit_of_measurement"):
            value = f"{value} {unit}"
        rows.append((name, value, st["entity_id"], _age(st.get("last_changed"))))
    name_w = max([len(r[0]) for r in rows] + [6])
    value_w = max([len(r[1]) for r in rows] + [5])
    header = f"{title}  ({time.strftime('%H:%M:%S')}, {len(rows)} entities, Ctrl-C stops)"
    lines = [header, "-" * min(width, len(header) + 20)]
    for name, value, entity_id, age in rows:
        line = f"{name:<{name_w}}  {value:>{value_w}}  {age:>10}  {entity_id}"
        lines.append(line[:width])
    return "\n".join(lines)
