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
from cantools.database.can import Database, Signal

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
_BO_RE = re.compile(r"^BO_\s+(\d+)\s")
_SG_RE = re.compile(r"^\s+SG_\s+(\w+)")
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
    _fix_frame_ids(lines, issues)
    max_rounds = max(_MAX_ROUNDS_FLOOR, len(lines) + 1)
    for _ in range(max_rounds):
        db = Database(strict=False)
        try:
            db.add_dbc_string("\n".join(lines) + "\n")
        except textparser.ParseError as exc:
            _repair_or_skip(lines, exc.line, exc.column, issues)
            continue
        except ValueError as exc:
            if _skip_unused_value_tables(lines, str(exc), issues):
                continue
            raise DbcLoadError(f"{name}: cannot load: {exc}") from exc
        except Exception as exc:  # cantools raises assorted errors on semantic defects
            raise DbcLoadError(f"{name}: cannot load: {exc}") from exc
        _report_dangling(db, lines, issues)
        _drop_undecodable_signals(db, lines, issues)
        if not db.messages:
            raise DbcLoadError(f"{name}: no messages could be loaded")
        issues.sort(key=lambda i: i.line)
        for issue in issues:
            _LOGGER.info("%s: %s", name, issue)
        return LoadedDbc(name=name, database=db, issues=issues)
    raise DbcLoadError(f"{name}: too many defects, gave up after {max_rounds} repairs")


_UNUSED_VAL_RE = re.compile(r"VAL_ (\d+) (\w+)")


def _skip_unused_value_tables(lines: list[str], message: str, issues: list[DbcIssue]) -> bool:
    """Blank the VAL_ statements cantools names as unused; False if it named none."""
    if "unused VAL_" not in message:
        return False
    wanted = {(int(i), sig) for i, sig in _UNUSED_VAL_RE.findall(message)}
    found = False
    for index, line in enumerate(lines):
        match = _VAL_RE.match(line)
        if match is None or (int(match.group(1)), match.group(2)) not in wanted:
            continue
        start, end = _statement_range(lines, index)
        issues.append(
            DbcIssue(
                line=index + 1,
                action=IssueAction.SKIPPED,
                reason=f"value table for undeclared signal {match.group(2)} "
                f"of message {match.group(1)}",
                statement=line.strip(),
            )
        )
        for i in range(start, end):
            lines[i] = ""
        found = True
    return found


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


_ID_REF_RE = re.compile(
    r"^(\s*(?:BO_|CM_\s+BO_|CM_\s+SG_|VAL_|BA_\s+\"[^\"]*\"\s+BO_|BA_\s+\"[^\"]*\"\s+SG_"
    r"|SIG_VALTYPE_|BO_TX_BU_|SG_MUL_VAL_)\s+)(\d+)(?=\s|:|;)"
)


def _fix_frame_ids(lines: list[str], issues: list[DbcIssue]) -> None:
    """Mark 11-bit IDs above 0x7FF as extended (cantools refuses them even non-strict).

    Only an extended frame can carry such an ID on the wire, so setting the
    extended flag (bit 31 in DBC notation) keeps the message decodable. Every
    statement that refers to the message by ID is rewritten with it.
    """
    fix: dict[int, int] = {}
    for number, line in enumerate(lines, start=1):
        match = _BO_RE.match(line)
        if match is None:
            continue
        raw = int(match.group(1))
        if raw & _EXTENDED_FLAG or raw <= _STANDARD_ID_MAX:
            continue
        if raw <= _EXTENDED_ID_MAX:
            fix[raw] = raw | _EXTENDED_FLAG
            issues.append(
                DbcIssue(
                    line=number,
                    action=IssueAction.REPAIRED,
                    reason=f"11-bit ID 0x{raw:X} > 0x7FF without extended flag: marked extended",
                    statement=line.strip(),
                )
            )
        else:
            start, end = _statement_range(lines, number - 1)
            for i in range(start, end):
                lines[i] = ""
            issues.append(
                DbcIssue(
                    line=number,
                    action=IssueAction.SKIPPED,
                    reason=f"frame ID 0x{raw:X} does not fit 29 bits",
                    statement=line.strip(),
                )
            )
    if not fix:
        return
    for i, line in enumerate(lines):
        match = _ID_REF_RE.match(line)
        if match is not None and int(match.group(2)) in fix:
            lines[i] = f"{match.group(1)}{fix[int(match.group(2))]}{line[match.end(2) :]}"


def _report_dangling(db: Database, lines: list[str], issues: list[DbcIssue]) -> None:
    """Report value tables and comments for signals the file never declares."""
    declared = {(m.frame_id, s.name) for m in db.messages for s in m.signals}
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


def signal_mask(signal: Signal) -> int:
    """Bits (over ``int.from_bytes(data, "little")``) that *signal* occupies."""
    mask = 0
    pos = signal.start
    for i in range(signal.length):
        if signal.byte_order == "little_endian":
            mask |= 1 << (signal.start + i)
            continue
        mask |= 1 << pos
        # Motorola: start is the MSB in sawtooth numbering; walk towards the LSB.
        pos = pos + 15 if pos % 8 == 0 else pos - 1
    return mask


def _drop_undecodable_signals(db: Database, lines: list[str], issues: list[DbcIssue]) -> None:
    """Drop signals that overlap an earlier one or overrun their message.

    The non-strict parser accepts them, but cantools then fails on every frame
    of the message; without them the rest of the message decodes.
    """
    changed = False
    for message in db.messages:
        if message.is_multiplexed():
            continue  # multiplexed signals overlap by design
        try:
            message.decode(bytes(message.length), decode_choices=False)
        except Exception as exc:  # any failure means the layout is unusable
            _LOGGER.debug("%s does not decode (%s): checking its layout", message.name, exc)
        else:
            continue
        used = 0
        limit = 1 << (8 * message.length)
        # Earlier lines of the file win over later ones.
        order = {
            sig.name: _signal_line(lines, message.frame_id, sig.name) for sig in message.signals
        }
        for signal in sorted(message.signals, key=lambda sig: order[sig.name]):
            mask = signal_mask(signal)
            if mask & used or mask >= limit:
                why = "overlaps another signal" if mask & used else "runs past the message end"
                message.signals.remove(signal)
                line = order[signal.name]
                issues.append(
                    DbcIssue(
                        line=line,
                        action=IssueAction.SKIPPED,
                        reason=f"signal {signal.name} of {message.name} {why}",
                        statement=lines[line - 1].strip() if line else signal.name,
                    )
                )
                changed = True
            else:
                used |= mask
        message.refresh()
    if changed:
        db.refresh()


def _signal_line(lines: list[str], frame_id: int, signal: str) -> int:
    """1-based line of *signal*'s SG_ under message *frame_id* (0 if not found)."""
    inside = False
    for number, line in enumerate(lines, start=1):
        bo = _BO_RE.match(line)
        if bo:
            inside = int(bo.group(1)) & ~_EXTENDED_FLAG == frame_id
            continue
        sg = _SG_RE.match(line)
        if inside and sg and sg.group(1) == signal:
            return number
    return 0


def bitstruct_c_available() -> bool:
    """True when bitstruct's C extension (3x faster decoding) is importable."""
    try:
        import bitstruct.c  # noqa: F401
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
    "signal_mask",
    "warn_if_slow_decoding",
]
