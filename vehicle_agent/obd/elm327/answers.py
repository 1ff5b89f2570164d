"""What an ELM327 prints back, turned into per-ECU answers or an error.

The agent sets the dongle to echo off, spaces off and headers on (``ATE0``,
``ATS0``, ``ATH1``), so every line of an OBD answer is one frame: the header,
which says which ECU spoke, then the data. How long the header is depends on
the protocol ``ATDPN`` reports:

* ISO 15765-4 CAN, 11-bit IDs (protocols 6, 8): ``7E8`` + the ISO-TP PCI byte
  + data, e.g. ``7E803410D2A``. Long answers (VIN, DTC lists) come as a first
  frame and consecutive frames, reassembled here;
* CAN 29-bit IDs (7, 9): ``18DAF110`` + PCI + data;
* J1850 PWM/VPW, ISO 9141-2, ISO 14230 KWP (1-5): three header bytes
  (priority, target, source ECU) + data + a checksum byte.

Status lines (``SEARCHING...``, ``BUS INIT: ...OK``) are skipped; error lines
(``NO DATA``, ``CAN ERROR``, ``STOPPED``, ``BUFFER FULL``, ``?`` ...) become
an :class:`ElmStatus`; anything else that is not a frame is junk, counted and
dropped. Pure functions: no I/O here.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

_HEX = re.compile(r"^[0-9A-F]+$")


class ElmStatus(enum.Enum):
    """Error and status words an ELM327 prints instead of (or next to) data."""

    NO_DATA = "NO DATA"
    """The request went out but no ECU answered."""
    UNABLE_TO_CONNECT = "UNABLE TO CONNECT"
    """No protocol found: the ignition is off, or the car is not OBD-II."""
    BUS_ERROR = "BUS ERROR"
    """CAN ERROR, BUS ERROR, BUS BUSY, FB ERROR, BUS INIT: ...ERROR: the bus is silent or wrong."""
    STOPPED = "STOPPED"
    """The dongle stopped listening because a character arrived (worth one retry)."""
    BUFFER_FULL = "BUFFER FULL"
    """The dongle's receive buffer overflowed (the serial link is too slow)."""
    UNKNOWN_COMMAND = "?"
    """The dongle did not understand the command (clones lack some)."""
    DATA_ERROR = "DATA ERROR"
    """DATA ERROR, <DATA ERROR, <RX ERROR: a frame arrived damaged."""
    RESET = "RESET"
    """The dongle restarted (LV RESET, ERRxx, ACT ALERT, LP ALERT, its version banner)."""


_STATUS_PREFIXES: tuple[tuple[str, ElmStatus], ...] = (
    ("NO DATA", ElmStatus.NO_DATA),
    ("UNABLE TO CONNECT", ElmStatus.UNABLE_TO_CONNECT),
    ("CAN ERROR", ElmStatus.BUS_ERROR),
    ("BUS ERROR", ElmStatus.BUS_ERROR),
    ("BUS BUSY", ElmStatus.BUS_ERROR),
    ("FB ERROR", ElmStatus.BUS_ERROR),
    ("BUSINIT:", ElmStatus.BUS_ERROR),  # only "...ERROR" ends here; "...OK" is a status line
    ("STOPPED", ElmStatus.STOPPED),
    ("BUFFER FULL", ElmStatus.BUFFER_FULL),
    ("?", ElmStatus.UNKNOWN_COMMAND),
    ("DATA ERROR", ElmStatus.DATA_ERROR),
    ("<DATA ERROR", ElmStatus.DATA_ERROR),
    ("<RX ERROR", ElmStatus.DATA_ERROR),
    ("LV RESET", ElmStatus.RESET),
    ("ACT ALERT", ElmStatus.RESET),
    ("LP ALERT", ElmStatus.RESET),
    ("ELM327", ElmStatus.RESET),
    ("ERR", ElmStatus.RESET),
)
_INFO_PREFIXES = ("SEARCHING", "BUS INIT", "BUSINIT", "OK")

LEGACY_PROTOCOLS = frozenset("12345")
CAN_29BIT_PROTOCOLS = frozenset("79")


def header_length(protocol: str) -> int:
    """Hex digits of a frame header (headers on, spaces off) for an ``ATDPN`` answer."""
    number = protocol.strip().upper().removeprefix("A")[:1]
    if number in LEGACY_PROTOCOLS:
        return 6
    if number in CAN_29BIT_PROTOCOLS:
        return 8
    return 3  # 6, 8 and the user CAN protocols B/C as the agent leaves them: 11-bit


def is_can(protocol: str) -> bool:
    """True for the ISO 15765-4 CAN protocols (6-9, and the user CAN protocols)."""
    return protocol.strip().upper().removeprefix("A")[:1] not in LEGACY_PROTOCOLS


def split_lines(text: str) -> list[str]:
    """The non-empty lines of a raw answer (CR or LF separated, NULs and spaces dropped)."""
    cleaned = text.replace("\x00", "").replace("\n", "\r")
    return [line.replace(" ", "").upper() for line in cleaned.split("\r") if line.strip()]


def status_of(line: str) -> ElmStatus | None:
    """The :class:`ElmStatus` a line reports, or None for data and status lines."""
    if line.startswith(("BUSINIT", "BUS INIT")) and not line.endswith("ERROR"):
        return None
    for prefix, status in _STATUS_PREFIXES:
        if line.startswith(prefix.replace(" ", "")):
            return status
    return None


@dataclass(slots=True)
class ParsedAnswer:
    """An OBD answer split by ECU."""

    payloads: dict[str, bytes] = field(default_factory=dict)
    """Reassembled message per ECU header, in the order the ECUs first spoke."""
    frames: dict[str, list[bytes]] = field(default_factory=dict)
    """The data of each frame per ECU (legacy protocols: one message per frame)."""
    statuses: list[ElmStatus] = field(default_factory=list)
    junk: list[str] = field(default_factory=list)
    """Lines that were neither a frame nor a known word."""


@dataclass(slots=True)
class _IsoTp:
    """Reassembly of one ECU's ISO-TP message from the frames the ELM shows."""

    expected: int = 0
    data: bytearray = field(default_factory=bytearray)
    next_seq: int = 1
    done: bool = False

    def feed(self, pci_and_data: bytes) -> bool:
        """Take one CAN frame's bytes (PCI first); False when it does not fit."""
        kind, low = pci_and_data[0] >> 4, pci_and_data[0] & 0x0F
        if kind == 0:  # single frame
            if low == 0 or len(pci_and_data) < 1 + low:
                return False
            self.data = bytearray(pci_and_data[1 : 1 + low])
            self.expected, self.done = low, True
        elif kind == 1:  # first frame
            if len(pci_and_data) < 2:
                return False
            self.expected = (low << 8) | pci_and_data[1]
            self.data = bytearray(pci_and_data[2:])
            self.next_seq, self.done = 1, False
        elif kind == 2:  # consecutive frame
            if self.done or not self.expected or low != self.next_seq:
                return False
            self.data += pci_and_data[1:]
            self.next_seq = (self.next_seq + 1) & 0x0F
        else:  # flow control (3x) is ours to send, not data
            return kind == 3
        if len(self.data) >= self.expected:
            del self.data[self.expected :]
            self.done = True
        return True


def parse_answer(text: str, protocol: str, *, sent: str = "") -> ParsedAnswer:
    """Split a raw answer (up to the ``>`` prompt) into per-ECU payloads; see module docs.

    ``sent`` is the command, so an echo (a dongle that ignored ``ATE0``) is skipped.
    """
    result = ParsedAnswer()
    head = header_length(protocol)
    can = is_can(protocol)
    isotp: dict[str, _IsoTp] = {}
    for line in split_lines(text):
        if sent and line == sent.replace(" ", "").upper():
            continue
        status = status_of(line)
        if status is not None:
            result.statuses.append(status)
            continue
        if line.startswith(_INFO_PREFIXES):
            continue
        body = line[head:]
        if not _HEX.match(line) or (len(line) - head) % 2 or len(body) < 2:
            result.junk.append(line)
            continue
        header, data = line[:head], bytes.fromhex(body)
        if can:
            stream = isotp.setdefault(header, _IsoTp())
            if not stream.feed(data):
                result.junk.append(line)
                continue
            result.frames.setdefault(header, []).append(data)
        else:
            if len(data) < 2:  # at least one data byte and the checksum
                result.junk.append(line)
                continue
            result.frames.setdefault(header, []).append(data[:-1])
    for header, frames in result.frames.items():
        if can:
            stream = isotp[header]
            if stream.done:
                result.payloads[header] = bytes(stream.data)
            else:
                result.junk.append(f"{header}: incomplete ISO-TP message")
        else:
            result.payloads[header] = b"".join(frames)
    return result


def legacy_dtc_codes(frames: list[bytes]) -> list[bytes]:
    """Two-byte DTCs from legacy-protocol mode 03/07/0A frames (service byte + 3 pairs each)."""
    pairs: list[bytes] = []
    for frame in frames:
        body = frame[1:]
        pairs += [body[i : i + 2] for i in range(0, len(body) - 1, 2)]
    return [p for p in pairs if p != b"\x00\x00"]
