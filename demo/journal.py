"""Reading the agent's journal: JSON lines of what the driver would see and hear.

``vehicle-agent run --journal FILE`` appends one object per line,
``{"t": float, "kind": "spoken"|"notify"|"voice_reply"|"intent"|"link", ...}``
(docs/INTERFACES.md). The demo and its checks observe the car only through it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

type Entry = dict[str, Any]


def read_journal(path: Path) -> list[Entry]:
    """Every well-formed entry of the journal (a half-written last line is skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    entries: list[Entry] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


async def wait_for_entry(
    path: Path,
    match: Callable[[Entry], bool],
    *,
    timeout_s: float,
    after: float | None = None,
    poll_s: float = 0.1,
) -> Entry | None:
    """Wait until an entry matching ``match`` (with ``t`` >= ``after`` if given) appears."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        for entry in read_journal(path):
            if after is not None and float(entry.get("t", 0.0)) < after:
                continue
            if match(entry):
                return entry
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(poll_s)
