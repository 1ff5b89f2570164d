"""End to end on real data: the RAV4 highway log through the RAV4 profile."""

from collections import defaultdict

import pytest

from tests.data_paths import CAN_LOG, DBC_DIR
from vehicle_agent.can_input import read_log
from vehicle_agent.pipeline import CanPipeline
from vehicle_agent.profile import load_profile
from vehicle_agent.vin import is_valid_vin

LOG = CAN_LOG
DOORS = [
    "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen",
    "Vehicle.Cabin.Door.Row1.PassengerSide.IsOpen",
    "Vehicle.Cabin.Door.Row2.DriverSide.IsOpen",
    "Vehicle.Cabin.Door.Row2.PassengerSide.IsOpen",
]


@pytest.fixture(scope="module")
def run():
    pipeline = CanPipeline.from_profile(load_profile("toyota_rav4"), dbc_dir=DBC_DIR)
    # Every update the mapper produces, before the store thins them out.
    raw = defaultdict(list)
    decode, mapper_map, update = (
        pipeline.decoder.decode_message,
        pipeline.mapper.map,
        pipeline.store.update,
    )
    for msg in read_log(LOG):
        frame = decode(msg)
        if frame is None:
            continue
        for path, value, ts in mapper_map(frame):
            raw[path].append(value)
            update(path, value, ts)
    emitted = pipeline.store.drain() + pipeline.store.flush()
    return pipeline, raw, emitted


def test_counters(run):
    pipeline, _, _ = run
    stats = pipeline.decoder.stats
    assert stats.frames == 98_800
    assert stats.errors == 0
    assert stats.unknown > 0  # IDs neither DBC describes are counted, not errors
    assert stats.decoded + stats.unchanged + stats.filtered + stats.unknown == stats.frames


def test_speed_in_range_and_peaks_above_70(run):
    _, raw, emitted = run
    speeds = raw["Vehicle.Speed"]
    assert len(speeds) > 100
    assert all(25 <= s <= 80 for s in speeds)
    assert max(speeds) > 70
    sent = [c.value for c in emitted if c.path == "Vehicle.Speed"]
    assert max(sent) > 70 and all(25 <= s <= 80 for s in sent)
    # the state store thinned 2.5k frames to a rate-limited trickle (2/s over 60 s)
    assert len(sent) <= 2 * 61 + 2


def test_gear_d_throughout(run):
    _, raw, _ = run
    assert raw["Vehicle.Powertrain.Transmission.SelectedGear"]
    assert set(raw["Vehicle.Powertrain.Transmission.SelectedGear"]) == {"D"}


def test_doors_closed_locked_and_belted(run):
    _, raw, _ = run
    for door in DOORS:
        assert raw[door] and set(raw[door]) == {False}, door
    assert set(raw["Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"]) == {True}
    assert set(raw["Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted"]) == {True}
    assert set(raw["Vehicle.Chassis.Brake.IsPressed"]) <= {True, False}


def test_vin_is_valid(run):
    pipeline, raw, _ = run
    vin = pipeline.store.value("Vehicle.VehicleIdentification.VIN")
    assert isinstance(vin, str) and len(vin) == 17
    assert is_valid_vin(vin)
    assert set(raw["Vehicle.VehicleIdentification.VIN"]) == {vin}


def test_other_signals_plausible(run):
    pipeline, raw, _ = run
    assert pipeline.decoder.stats.decoded > 0
    rpm = raw["Vehicle.Powertrain.CombustionEngine.Speed"]
    assert min(rpm) > 600 and max(rpm) < 4000
    odo = raw["Vehicle.TraveledDistance"]
    assert 10_000 < min(odo) <= max(odo) < min(odo) + 5  # km, a minute of driving
    assert all(-90 < a < 90 for a in raw["Vehicle.Chassis.SteeringWheel.Angle"])  # highway
    snapshot = pipeline.store.snapshot()
    assert snapshot["Vehicle.Powertrain.CombustionEngine.IsRunning"]["value"] is True
    assert len(snapshot) == 14
