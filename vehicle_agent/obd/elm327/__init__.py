"""ELM327-compatible OBD-II dongles (USB, Bluetooth serial, Wi-Fi TCP) as an OBD-II source."""

from vehicle_agent.obd.elm327.client import Elm327Client, ElmOptions
from vehicle_agent.obd.elm327.wire import DEFAULT_BAUDRATE, ElmTarget, parse_target

__all__ = ["DEFAULT_BAUDRATE", "Elm327Client", "ElmOptions", "ElmTarget", "parse_target"]
