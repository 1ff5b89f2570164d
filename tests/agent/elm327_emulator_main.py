"""Runs the real ELM327-emulator (PyPI ``ELM327-emulator``) with test knobs.

``python -m tests.agent.elm327_emulator_main [elm options]`` is ``python -m elm``
with two settings the emulator reads from its own module data, set before it
starts (the emulator documents editing them to simulate faults):

* ``CARHUB_ELM_DTCS``: ``stored=0301,0420;pending=0171;permanent=0420`` (its
  ``DTC_STORED`` / ``DTC_PENDING`` / ``DTC_PERMANENT`` lists);
* ``CARHUB_ELM_VOLTAGE_FILE``: a file holding a voltage; the answers to
  ``0142`` (control module voltage) and ``ATRV`` are read from it at each
  request, so a test can let the battery run down and charge again;
* ``CARHUB_ELM_MISSING``: AT commands to forget (``ATLP,ATRV``), answered
  ``?`` as by the clones that lack them;
* ``CARHUB_ELM_FAST=1``: ``ATZ`` and ``ATDPN`` take 0.05 s instead of 0.5 s
  (the protocol search after the first request keeps its 3 s).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from elm import obd_message
from elm.interpreter import main


def _voltage() -> float:
    return float(Path(os.environ["CARHUB_ELM_VOLTAGE_FILE"]).read_text().strip() or "14.2")


def _pid42(*_: Any) -> str:
    raw = round(_voltage() * 1000)
    return obd_message.PA(f"{raw >> 8:02X} {raw & 0xFF:02X}")


def _atrv(*_: Any) -> str:
    return f"<string>{_voltage():.1f}</string>"


def _configure() -> None:
    for part in filter(None, os.environ.get("CARHUB_ELM_DTCS", "").split(";")):
        kind, _, codes = part.partition("=")
        target = {
            "stored": obd_message.DTC_STORED,
            "pending": obd_message.DTC_PENDING,
            "permanent": obd_message.DTC_PERMANENT,
        }[kind]
        target[:] = [c for c in codes.split(",") if c]
    missing = {c for c in os.environ.get("CARHUB_ELM_MISSING", "").split(",") if c}
    fast = os.environ.get("CARHUB_ELM_FAST") == "1"
    for scenario in obd_message.ObdMessage.values():
        for key, entry in list(scenario.items()):
            request = str(entry.get("Request", ""))
            if request.removeprefix("^").removesuffix(obd_message.ELM_FOOTER).strip("$") in missing:
                del scenario[key]
            elif fast and request == "^ATZ$":
                entry["Exec"] = "self.reset(0.05)"
            elif fast and request == "^ATDPN$":
                entry["Exec"] = "time.sleep(0.05)"
    if os.environ.get("CARHUB_ELM_VOLTAGE_FILE"):
        for scenario in obd_message.ObdMessage.values():
            for entry in scenario.values():
                request = str(entry.get("Request", ""))
                if request.startswith("^0142"):
                    entry.pop("Response", None)
                    entry["ResponseFooter"] = _pid42
                elif request.startswith("^ATRV"):
                    entry["ResponseHeader"] = _atrv


if __name__ == "__main__":
    _configure()
    main()
