"""Exceptions of the OBD-II package: one root, subclasses say what went wrong."""

from __future__ import annotations

NRC_NAMES: dict[int, str] = {
    0x10: "generalReject",
    0x11: "serviceNotSupported",
    0x12: "subFunctionNotSupported",
    0x13: "incorrectMessageLengthOrInvalidFormat",
    0x14: "responseTooLong",
    0x21: "busyRepeatRequest",
    0x22: "conditionsNotCorrect",
    0x24: "requestSequenceError",
    0x31: "requestOutOfRange",
    0x33: "securityAccessDenied",
    0x72: "generalProgrammingFailure",
    0x78: "requestCorrectlyReceivedResponsePending",
    0x7E: "subFunctionNotSupportedInActiveSession",
    0x7F: "serviceNotSupportedInActiveSession",
}
"""Negative response codes (ISO 14229 / ISO 15031-5) by number."""

UNSUPPORTED_NRCS = frozenset({0x11, 0x12, 0x31, 0x7E, 0x7F})
"""NRCs meaning "this ECU does not do that": retrying will not help."""


class ObdError(Exception):
    """Root of every OBD-II error."""


class ObdTimeoutError(ObdError):
    """No (complete) response arrived in time: the ECU is asleep, absent or busy."""


class ObdTransportError(ObdError):
    """The CAN bus or ISO-TP layer failed (send error, stack not running)."""


class ObdResponseError(ObdError):
    """A response arrived but is malformed (too short, wrong echo, junk bytes)."""


class ObdNegativeResponseError(ObdError):
    """The ECU answered with a negative response (``7F <service> <NRC>``)."""

    def __init__(self, service: int, nrc: int) -> None:
        self.service = service
        self.nrc = nrc
        self.nrc_name = NRC_NAMES.get(nrc, "unknown")
        super().__init__(f"ECU rejected service 0x{service:02X}: NRC 0x{nrc:02X} ({self.nrc_name})")


class ObdNotSupportedError(ObdNegativeResponseError):
    """Negative response saying the service or PID is not supported by this ECU."""


def negative_response_error(service: int, nrc: int) -> ObdNegativeResponseError:
    """Return the right exception class for a negative response."""
    if nrc in UNSUPPORTED_NRCS:
        return ObdNotSupportedError(service, nrc)
    return ObdNegativeResponseError(service, nrc)
