"""OBD-II over ISO-TP: PID decoding, trouble codes, a client, a poller, a simulated ECU.

OBD-II queries *transmit* on the CAN bus (unlike the listen-only CAN decoder),
so the poller runs only while the car is on (see :mod:`.power`).
"""

from vehicle_agent.obd.client import ObdClient, ObdStats, PidReading
from vehicle_agent.obd.dtc import Dtc, DtcKind, decode_dtc, describe
from vehicle_agent.obd.errors import (
    ObdError,
    ObdNegativeResponseError,
    ObdNotSupportedError,
    ObdResponseError,
    ObdTimeoutError,
    ObdTransportError,
)
from vehicle_agent.obd.pids import PIDS, PidSpec, get_pid
from vehicle_agent.obd.poller import ObdPoller, PollerStats
from vehicle_agent.obd.power import PowerMonitor, PowerPolicy

__all__ = [
    "PIDS",
    "Dtc",
    "DtcKind",
    "ObdClient",
    "ObdError",
    "ObdNegativeResponseError",
    "ObdNotSupportedError",
    "ObdPoller",
    "ObdResponseError",
    "ObdStats",
    "ObdTimeoutError",
    "ObdTransportError",
    "PidReading",
    "PidSpec",
    "PollerStats",
    "PowerMonitor",
    "PowerPolicy",
    "decode_dtc",
    "describe",
    "get_pid",
]
