"""Load real-world DBC files, repairing or skipping the statements cantools rejects.

Published DBC files (opendbc and friends) carry defects that strict parsers
refuse: a value table without its closing ``;``, comments that name no signal
(``CM_ SG_ 304 "..."``) or no object type at all (``CM_ 145 "..."``), 11-bit
message IDs above 0x7FF without the extended flag, value tables and comments
for signals the file never declares. A user with such a file still wants to
decode the rest of it, so :func:`load_dbc` parses with cantools (non-strict)
and, on each syntax error, repairs or blanks the offending statement and
retries. Every change is reported as a :class:`DbcIssue` with its line number,
so nothing is dropped silently.

Blanked statements are replaced by empty lines, which keeps the line numbers of
later errors equal to the line numbers of the original file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import textparser
from cantools.database.can import Database

_LOGGER = logging.getLogger(__name__)

# Top-level DBC keywords. A statement starts on a line beginning with one of
# them (no indentation) and runs until the next such line.
_KEYWORD_RE = re.compile(r"^([A-Z][A-Z0-9_]*)(?=[\s:]|$)")
# Statements that must end with ';' (BO_, SG_, BU_, NS_, BS_, VERSION do not).
_SEMICOLON_KEYWORDS = frozenset(
    {
        "CM_",
        "VAL_",
        "VAL_TABLE_",
        "BA_",
        "BA_DEF_",
        "BA_DEF_DEF_",
        "BA_REL_",
        "BA_DEF_REL_",
        "BA_DEF_DEF_REL_",
        "SIG_VALTYPE_",
        "SIG_GROUP_",
        "BO_TX_BU_",
        "SG_MUL_VAL_",
        "EV_",
        "ENVVAR_DATA_",
        "SGTYPE_",
        "SIG_TYPE_REF_",
        "CAT_DEF_",
        "CAT_",
        "FILTER",
    }
)
_CM_SG_NO_SIGNAL_RE = re.compile(r'^CM_\s+SG_\s+\d+\s+"')
_CM_NO_KIND_RE = re.compile(r'^CM_\s+\d+\s+"')
_VAL_RE = re.compile(r"^VAL_\s+(\d+)\s+(\w+)\s")
_CM_SG_RE = re.compile(r"^CM_\s+SG_\s+(\d+)\s+(\w+)\s")
_STANDARD_ID_MAX = 0x7FF
_EXTENDED_ID_MAX = 0x1FFFFFFF
_EXTENDED_FLAG = 0x80000000
# A file cannot need more repairs than it has lines; this bounds the retry loop.
_MAX_ROUNDS_FLOOR = 50


class DbcLoadError(Exception):
    """The file is not a DBC file cantools can use, even after repairs."""


class IssueAction(StrEnum):
    """What the loader did with a defective statement."""

    REPAIRED = "repaired"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class DbcIssue:
    """One statement of the file that was repaired or skipped."""

    line: int  # 1-based line number in the original file
    action: IssueAction
    reason: str
    statement: str  # the statement's first line, stripped (for the report)

    def __str__(self) -> str:
        return f"line {self.line}: {self.action} ({self.reason}): {self.statement[:120]}"


@dataclass(slots=True)
class LoadedDbc:
    """A parsed database plus the list of statements the loader had to touch."""

    name: str
    database: Database
    issues: list[DbcIssue] = field(default_factory=list)

    @property
    def skipped(self) -> list[DbcIssue]:
        """The statements that were dropped."""
        return [i for i in self.issues if i.action is IssueAction.SKIPPED]

    @property
    def repaired(self) -> list[DbcIssue]:
        """The statements that were changed and kept."""
        return [i for i in self.issues if i.action is IssueAction.REPAIRED]


def load_dbc(path: str | Path) -> LoadedDbc:
    """Load the DBC file at *path*, repairing or skipping what cantools rejects.

    Raises :class:`DbcLoadError` when the file cannot be read or nothing usable
    remains, and ``FileNotFoundError`` when it does not exist.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Vector tools write cp1252; latin-1 never fails and keeps byte positions.
        text = raw.decode("cp1252", errors="replace")
    return load_dbc_string(text, name=path.name)


def load_dbc_string(text: str, *, name: str = "<string>") -> LoadedDbc:
    """Parse DBC *text* (see :func:`load_dbc`)."""
    lines = text.splitlines()
    issues: list[DbcIssue] = []
    max_rounds = max(_MAX_ROUNDS_FLOOR, len(lines) + 1)
    for _ in range(max_rounds):
        db = Database(strict=False)
        try:
            db.add_dbc_string("\n".join(lines) + "\n")
        except textparser.ParseError as exc:
            _repair_or_skip(lines, exc.line, exc.column, issues)
            continue
        except Exception as exc:  # cantools raises assorted errors on semantic defects
            raise DbcLoadError(f"{name}: cannot load: {exc}") from exc
        _fix_semantics(db, lines, issues)
        if not db.messages:
            raise DbcLoadError(f"{name}: no messages could be loaded")
        issues.sort(key=lambda i: i.line)
        for issue in issues:
            _LOGGER.info("%s: %s", name, issue)
        return LoadedDbc(name=name, database=db, issues=issues)
    raise DbcLoadError(f"{name}: too many defects, gave up after {max_rounds} repairs")


def _statement_range(lines: list[str], index: int) -> tuple[int, int]:
    """Return [start, end) of the statement that contains line *index* (0-based)."""
    start = index
    while start > 0 and not _KEYWORD_RE.match(lines[start]):
        start -= 1
    end = index + 1
    while end < len(lines) and not _KEYWORD_RE.match(lines[end]):
        end += 1
    return start, end


def _previous_statement(lines: list[str], index: int) -> tuple[int, int] | None:
    """Return the range of the non-blank statement that ends before line *index*."""
    last = index - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    if last < 0:
        return None
    start, _ = _statement_range(lines, last)
    return start, last + 1


def _repair_or_skip(lines: list[str], line_no: int, column: int, issues: list[DbcIssue]) -> None:
    """Fix the statement at 1-based *line_no* so the next parse gets further."""
    index = min(max(line_no - 1, 0), len(lines) - 1) if lines else 0
    if not lines:
        raise DbcLoadError("empty file")
    here = lines[index]

    # A statement that starts cleanly but fails at its first column usually
    # means the statement before it was never terminated.
    if column == 1 and _KEYWORD_RE.match(here):
        prev = _previous_statement(lines, index)
        if prev is not None:
            p_start, p_end = prev
            keyword_match = _KEYWORD_RE.match(lines[p_start])
            keyword = keyword_match.group(1) if keyword_match else ""
            if keyword in _SEMICOLON_KEYWORDS and not lines[p_end - 1].rstrip().endswith(";"):
                lines[p_end - 1] = lines[p_end - 1].rstrip() + ";"
                issues.append(
                    DbcIssue(
                        line=p_end,
                        action=IssueAction.REPAIRED,
                        reason=f"{keyword} statement without closing ';' (added)",
                        statement=lines[p_start].strip(),
                    )
                )
                return

    stripped = here.strip()
    if stripped.startswith("SG_") and not _KEYWORD_RE.match(here):
        # One broken signal line: drop just that signal, keep its message.
        lines[index] = ""
        issues.append(
            DbcIssue(
                line=index + 1,
                action=IssueAction.SKIPPED,
                reason=f"unparsable signal definition (column {column})",
                statement=stripped,
            )
        )
        return

    start, end = _statement_range(lines, index)
    statement = lines[start].strip()
    if _CM_SG_NO_SIGNAL_RE.match(statement):
        reason = "signal comment names no signal"
    elif _CM_NO_KIND_RE.match(statement):
        reason = "comment names no object type (BO_/SG_/BU_/EV_)"
    else:
        reason = f"syntax error at line {line_no}, column {column}"
    for i in range(start, end):
        lines[i] = ""
    issues.append(
        DbcIssue(line=start + 1, action=IssueAction.SKIPPED, reason=reason, statement=statement)
    )


def _fix_semantics(db: Database, lines: list[str], issues: list[DbcIssue]) -> None:
    """Report and repair defects the non-strict parser accepted silently."""
    changed = False
    bo_lines = _message_lines(lines)
    for message in list(db.messages):
        frame_id = message.frame_id
        if not message.is_extended_frame and frame_id > _STANDARD_ID_MAX:
            line = bo_lines.get(frame_id, 0)
            if frame_id <= _EXTENDED_ID_MAX:
                # Only an extended frame can carry such an ID on the wire.
                message.is_extended_frame = True
                issues.append(
                    DbcIssue(
                        line=line,
                        action=IssueAction.REPAIRED,
                        reason=f"11-bit ID 0x{frame_id:X} > 0x7FF without extended flag: "
                        "marked extended",
                        statement=lines[line - 1].strip() if line else message.name,
                    )
                )
            else:
                db.messages.remove(message)
                issues.append(
                    DbcIssue(
                        line=line,
                        action=IssueAction.SKIPPED,
                        reason=f"frame ID 0x{frame_id:X} does not fit 29 bits",
                        statement=lines[line - 1].strip() if line else message.name,
                    )
                )
            changed = True
    if changed:
        db.refresh()

    declared = {(m.frame_id, s.name) for m in db.messages for s in m.signals}
    raw_declared = {
        (raw_id & ~_EXTENDED_FLAG, sig)
        for raw_id, sigs in _declared_signals(lines).items()
        for sig in sigs
    }
    declared |= raw_declared
    for number, line in enumerate(lines, start=1):
        for regex, what in ((_VAL_RE, "value table"), (_CM_SG_RE, "comment")):
            match = regex.match(line)
            if match is None:
                continue
            raw_id = int(match.group(1)) & ~_EXTENDED_FLAG
            signal = match.group(2)
            if (raw_id, signal) not in declared:
                # cantools ignores these; say so instead of dropping them silently.
                issues.append(
                    DbcIssue(
                        line=number,
                        action=IssueAction.SKIPPED,
                        reason=f"{what} for undeclared signal {signal} of message {raw_id}",
                        statement=line.strip(),
                    )
                )


_BO_RE = re.compile(r"^BO_\s+(\d+)\s")
_SG_RE = re.compile(r"^\s+SG_\s+(\w+)")


def _message_lines(lines: list[str]) -> dict[int, int]:
    """Map each message's raw ID (extended flag stripped) to its 1-based BO_ line."""
    out: dict[int, int] = {}
    for number, line in enumerate(lines, start=1):
        match = _BO_RE.match(line)
        if match:
            out.setdefault(int(match.group(1)) & ~_EXTENDED_FLAG, number)
    return out


def _declared_signals(lines: list[str]) -> dict[int, set[str]]:
    """Signal names declared under each BO_ (raw IDs as written)."""
    out: dict[int, set[str]] = {}
    current: int | None = None
    for line in lines:
        bo = _BO_RE.match(line)
        if bo:
            current = int(bo.group(1))
            out.setdefault(current, set())
            continue
        sg = _SG_RE.match(line)
        if sg and current is not None:
            out[current].add(sg.group(1))
        elif _KEYWORD_RE.match(line):
            current = None
    return out


def bitstruct_c_available() -> bool:
    """True when bitstruct's C extension (3x faster decoding) is importable."""
    try:
        import bitstruct.c  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def warn_if_slow_decoding() -> bool:
    """Log a warning when bitstruct.c is missing; return whether it is present."""
    present = bitstruct_c_available()
    if not present:
        _LOGGER.warning(
            "bitstruct C extension (bitstruct.c) is missing: CAN decoding will be about "
            "3x slower; reinstall bitstruct from a wheel or with a C compiler"
        )
    return present


__all__ = [
    "DbcIssue",
    "DbcLoadError",
    "IssueAction",
    "LoadedDbc",
    "bitstruct_c_available",
    "load_dbc",
    "load_dbc_string",
    "warn_if_slow_decoding",
]
