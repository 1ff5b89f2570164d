"""Charging sessions from a synthetic MEB charging log built from the shipped DBC excerpt.

The log is made here with cantools from vehicle_agent/data/dbc/vw_meb_charging.dbc
(opendbc's vw_meb.dbc, BMS_04 and HVEM_02): 2 minutes parked, a 40-minute AC
charge from 31.5 % to 71.5 % (usable energy 21.0 -> 45.5 kWh), 2 minutes after.
It goes through the real pipeline (DBC load, profile, state store) as a candump
log; the expected session is what the log was made from.
"""

from __future__ import annotations

from pathlib import Path

import cantools
import pytest

from vehicle_agent.can_input import read_log
from vehicle_agent.charging import ChargingRecorder
from vehicle_agent.pipeline import CanPipeline
from vehicle_agent.profile import load_profile

DBC_DIR = Path(__file__).resolve().parents[2] / "vehicle_agent" / "data" / "dbc"
T0 = 1_700_000_000.0
PARKED_S, CHARGE_S = 120, 2400
SOC_START, SOC_END = 31.5, 71.5
KWH_START, KWH_END = 21.0, 45.5


def write_log(path: Path) -> None:
    db = cantools.database.load_file(str(DBC_DIR / "vw_meb_charging.dbc"), strict=False)
    bms, hvem = db.get_message_by_name("BMS_04"), db.get_message_by_name("HVEM_02")
    lines = []
    for second in range(PARKED_S + CHARGE_S + PARKED_S):
        charging = PARKED_S <= second < PARKED_S + CHARGE_S
        done = min(max(second - PARKED_S, 0), CHARGE_S) / CHARGE_S
        values = {s.name: 0 for s in bms.signals}
        values["BMS_IstModus"] = 4 if charging else 0  # AC_Laden / HV_inaktiv
        values["BMS_Soll_SOC_HiRes"] = SOC_START + (SOC_END - SOC_START) * done
        energy = {s.name: 0 for s in hvem.signals}
        energy["HVEM_Nutzbare_Energie"] = (KWH_START + (KWH_END - KWH_START) * done) * 1000
        ts = T0 + second
        for msg, vals in ((bms, values), (hvem, energy)):
            data = msg.encode(vals, scaling=True, strict=False)
            lines.append(f"({ts:.6f}) can0 {msg.frame_id:03X}#{data.hex().upper()}")
    path.write_text("\n".join(lines) + "\n")


def test_charging_session_from_the_synthetic_log(tmp_path: Path) -> None:
    log = tmp_path / "meb_charging.log"
    write_log(log)
    pipeline = CanPipeline.from_profile(load_profile("vw_meb_ev"), dbc_dir=DBC_DIR)
    recorder = ChargingRecorder()
    events = []
    for msg in read_log(log):
        pipeline.feed(msg)
        for path, value, ts in pipeline.store.drain():
            events += recorder.observe(path, value, ts)
    assert pipeline.decoder.stats.errors == 0
    assert [e["kind"] for e in events] == ["charging_start", "charging_end"]
    start, end = events
    assert start["ts"] == T0 + PARKED_S
    assert start["data"]["soc_percent"] == pytest.approx(SOC_START, abs=0.05)
    session = end["data"]
    assert end["ts"] == T0 + PARKED_S + CHARGE_S
    assert session["duration_s"] == CHARGE_S
    # The store's deadbands (0.1 %, 0.04 kWh) and the DBC's steps (0.05 %, 50 Wh) bound the error.
    assert session["soc_added_percent"] == pytest.approx(SOC_END - SOC_START, abs=0.2)
    assert session["energy_added_kwh"] == pytest.approx(KWH_END - KWH_START, abs=0.1)
    assert session["soc_end_percent"] == pytest.approx(SOC_END, abs=0.15)


def test_bad_values_and_repeats_do_not_start_sessions() -> None:
    recorder = ChargingRecorder()
    charging = "Vehicle.Powertrain.TractionBattery.Charging.IsCharging"
    assert recorder.observe(charging, "yes", 1.0) == []
    assert recorder.observe(charging, False, 2.0) == []  # not charging: nothing to end
    [start] = recorder.observe(charging, True, 3.0)
    assert start["data"] == {"start_ts": 3.0}  # no SoC or energy known
    assert recorder.observe(charging, True, 4.0) == []
    [end] = recorder.observe(charging, False, 63.0)
    assert end["data"] == {"start_ts": 3.0, "end_ts": 63.0, "duration_s": 60.0}
