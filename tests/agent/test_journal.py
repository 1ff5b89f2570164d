"""The journal: JSON lines a person can read, one record per line."""

from __future__ import annotations

import json
from pathlib import Path

from vehicle_agent.runtime import Journal


def test_journal_lines_are_json_and_keep_non_ascii_text_readable(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "journal.jsonl"
    journal = Journal(path, clock=lambda: 12.5)
    journal.write("spoken", text="네?", language="ko")
    journal.write("notify", message="车门未锁", extra=Path("/x"))  # non-JSON values as str
    journal.close()
    raw = path.read_text(encoding="utf-8")
    assert "네?" in raw and "车门未锁" in raw  # not \\uXXXX escapes
    records = [json.loads(line) for line in raw.splitlines()]
    assert records == [
        {"t": 12.5, "kind": "spoken", "text": "네?", "language": "ko"},
        {"t": 12.5, "kind": "notify", "message": "车门未锁", "extra": "/x"},
    ]


def test_journal_without_a_path_writes_nothing(tmp_path: Path) -> None:
    journal = Journal(None)
    journal.write("spoken", text="x")
    journal.close()
    assert list(tmp_path.iterdir()) == []
