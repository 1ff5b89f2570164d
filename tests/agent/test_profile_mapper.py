"""Car profiles (YAML schema, bundled files) and the signal mapper."""

import pytest
import yaml

from tests.data_paths import DBC_DIR
from vehicle_agent.dbc_loader import load_dbc, load_dbc_string
from vehicle_agent.decoder import DecodedFrame
from vehicle_agent.mapper import SignalMapper, VssUpdate
from vehicle_agent.profile import (
    AsciiSource,
    CanSource,
    ObdSource,
    ProfileError,
    bundled_profiles,
    load_profile,
    parse_profile,
    resolve_dbc_files,
)


def test_bundled_profiles_load_and_bind_to_their_dbcs():
    names = {p.stem for p in bundled_profiles()}
    assert {"toyota_rav4", "honda_civic_2016", "obd_generic"} <= names
    for path in bundled_profiles():
        profile = load_profile(path)
        files = resolve_dbc_files(profile, dbc_dir=DBC_DIR)
        dbs = {bus: [load_dbc(f).database for f in fs] for bus, fs in files.items()}
        SignalMapper(profile, dbs)  # raises if a message/signal/value name is wrong


def test_rav4_profile_covers_the_required_signals():
    profile = load_profile("toyota_rav4")
    required = [
        "Vehicle.Speed",
        "Vehicle.Powertrain.CombustionEngine.Speed",
        "Vehicle.Powertrain.Transmission.SelectedGear",
        "Vehicle.TraveledDistance",
        "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen",
        "Vehicle.Cabin.Door.Row1.PassengerSide.IsOpen",
        "Vehicle.Cabin.Door.Row2.DriverSide.IsOpen",
        "Vehicle.Cabin.Door.Row2.PassengerSide.IsOpen",
        "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted",
        "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked",
        "Vehicle.Chassis.Brake.IsPressed",
        "Vehicle.Chassis.SteeringWheel.Angle",
        "Vehicle.VehicleIdentification.VIN",
    ]
    assert set(required) <= set(profile.signals)
    assert profile.buses == {
        "can0": ("toyota_new_mc_pt_generated.dbc",),
        "can1": ("toyota_adas.dbc",),
    }
    vin = profile.signals["Vehicle.VehicleIdentification.VIN"].source
    assert isinstance(vin, AsciiSource) and len(vin.parts) == 17
    assert {m for m, _ in vin.parts} == {"VIN_PART_1", "VIN_PART_2", "VIN_PART_3"}
    hello = profile.hello_signals()
    assert hello["Vehicle.Speed"] == {"unit": "km/h", "datatype": "float"}


def test_obd_profile_uses_simple_pid_sources():
    profile = load_profile("obd_generic")
    assert profile.can_signals() == []
    pids = {s.path: s.source for s in profile.obd_signals()}
    assert pids["Vehicle.Speed"] == ObdSource(pid=0x0D, mode=1, interval=1.0)
    assert pids["Vehicle.TraveledDistance"].pid == 0xA6
    assert {0x0C, 0x05, 0x2F, 0x04, 0x0F, 0x42} <= {s.pid for s in pids.values()}


BASE = {
    "name": "Test car",
    "buses": {"can0": {"dbc": "test.dbc"}},
    "signals": {"Vehicle.Speed": {"source": {"bus": "can0", "message": "M", "signal": "S"}}},
}


def with_signal(**spec):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["signals"]["Vehicle.Speed"].update(spec)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "mapping at top level"),
        ({**BASE, "colour": "red"}, "unknown top-level keys: colour"),
        ({**BASE, "name": ""}, "'name'"),
        ({**BASE, "signals": {}}, "non-empty mapping"),
        ({**BASE, "buses": {"can0": {"dbc": 3}}}, "buses.can0"),
        ({**BASE, "signals": {"Speed": {"source": {"pid": 13}}}}, "not a VSS path"),
        (with_signal(deadband=-1), "deadband must be >= 0"),
        (with_signal(rate_limit="fast"), "rate_limit must be a number"),
        (with_signal(datatype="double"), "datatype must be one of"),
        (with_signal(sacle=2), "unknown keys: sacle"),
        (with_signal(map={}), "map must be a non-empty mapping"),
        (with_signal(precision=-1), "precision"),
        (with_signal(source={"bus": "can7", "message": "M", "signal": "S"}), "bus 'can7'"),
        (with_signal(source={"pid": 0x1FF}), "0x00..0xFF"),
        (with_signal(source={"pid": 5, "mode": 99}), "mode"),
        (with_signal(source={"message": "M"}), "needs 'pid'"),
        (with_signal(source={"bus": "can0", "ascii": ["NODOT"]}), "MESSAGE.SIGNAL"),
        (with_signal(source={"bus": "can0", "message": "M"}), "'message' and 'signal'"),
        (with_signal(scale_by={"signal": "U"}), "scale_by.map"),
        (with_signal(source={"pid": 5}, scale_by={"signal": "U", "map": {1: 2}}), "CAN signal"),
    ],
)
def test_profile_validation_errors(data, message):
    with pytest.raises(ProfileError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_profile(data)


def test_profile_file_errors(tmp_path):
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match="invalid YAML"):
        load_profile(bad)


def test_defaults_and_parsed_fields():
    data = with_signal(unit="km/h", precision=1, rate_limit=3)
    data["defaults"] = {"deadband": 0.5, "rate_limit": 10, "quiet_period": 4}
    spec = parse_profile(data).signals["Vehicle.Speed"]
    assert spec.source == CanSource("can0", "M", "S")
    assert (spec.deadband, spec.rate_limit, spec.quiet_period) == (0.5, 3.0, 4.0)
    assert (spec.datatype, spec.unit, spec.precision) == ("float", "km/h", 1)


def test_resolve_dbc_files(tmp_path, monkeypatch):
    profile = parse_profile(BASE)
    with pytest.raises(ProfileError, match=r"test\.dbc for bus can0 not found"):
        resolve_dbc_files(profile)
    (tmp_path / "test.dbc").write_text("x")
    assert resolve_dbc_files(profile, dbc_dir=tmp_path) == {"can0": [tmp_path / "test.dbc"]}
    monkeypatch.setenv("CARHUB_DBC_DIR", str(tmp_path))
    assert resolve_dbc_files(profile)["can0"] == [tmp_path / "test.dbc"]
    other = tmp_path / "elsewhere" / "test.dbc"
    other.parent.mkdir()
    other.write_text("y")
    assert resolve_dbc_files(profile, dbc_files=[other])["can0"] == [other]


DBC = """VERSION ""
BS_:
BU_: X
BO_ 1 M: 8 X
 SG_ S : 0|16@1+ (0.01,0) [0|655] "km/h" X
 SG_ U : 16|2@1+ (1,0) [0|3] "" X
 SG_ G : 18|3@1+ (1,0) [0|7] "" X
 SG_ C1 : 24|8@1+ (1,0) [0|255] "" X
 SG_ C2 : 32|8@1+ (1,0) [0|255] "" X
BO_ 2 N: 1 X
 SG_ C3 : 0|8@1+ (1,0) [0|255] "" X
VAL_ 1 U 1 "km" 2 "miles";
VAL_ 1 G 0 "P" 3 "D";
"""


def mapper_for(signals):
    data = {"name": "t", "buses": {"can0": {"dbc": "t.dbc"}}, "signals": signals}
    return SignalMapper(parse_profile(data), {"can0": [load_dbc_string(DBC).database]})


def frame(message, ts=1.0, **signals):
    return DecodedFrame(ts, "can0", 0, message, signals)


def test_mapper_scales_maps_and_converts():
    m = mapper_for(
        {
            "Vehicle.Speed": {
                "source": {"bus": "can0", "message": "M", "signal": "S"},
                "scale": 2,
                "offset": 1,
                "precision": 1,
            },
            "Vehicle.Powertrain.Transmission.SelectedGear": {
                "source": {"bus": "can0", "message": "M", "signal": "G"},
                "datatype": "string",
                "map": {"P": "P", "D": "D", 5: "S"},
            },
            "Vehicle.TraveledDistance": {
                "source": {"bus": "can0", "message": "M", "signal": "S"},
                "scale_by": {"signal": "U", "map": {"km": 1, "miles": 1.609344}},
                "datatype": "int",
            },
        }
    )
    assert m.wanted == {"can0": {"M": {"S", "G", "U"}}}
    out = m.map(frame("M", S=10.04, U=2, G=3))
    assert VssUpdate("Vehicle.Speed", 21.1, 1.0) in out
    assert VssUpdate("Vehicle.Powertrain.Transmission.SelectedGear", "D", 1.0) in out
    assert VssUpdate("Vehicle.TraveledDistance", 16, 1.0) in out
    # unmapped raw gear and unknown unit: those paths are skipped, others still map
    out = m.map(frame("M", S=1.0, U=0, G=7))
    assert [u.path for u in out] == ["Vehicle.Speed"]
    assert m.map(frame("N", C3=65)) == []


def test_mapper_default_for_unmapped_and_bool():
    m = mapper_for(
        {
            "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted": {
                "source": {"bus": "can0", "message": "M", "signal": "G"},
                "map": {0: False},
                "default": True,
                "datatype": "bool",
            },
            "Vehicle.Chassis.Brake.IsPressed": {
                "source": {"bus": "can0", "message": "M", "signal": "U"},
                "datatype": "bool",
            },
        }
    )
    values = {u.path: u.value for u in m.map(frame("M", G=4, U=2))}
    assert values == {
        "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted": True,
        "Vehicle.Chassis.Brake.IsPressed": True,
    }


def test_mapper_assembles_text_across_messages():
    m = mapper_for(
        {
            "Vehicle.VehicleIdentification.VIN": {
                "source": {"bus": "can0", "ascii": ["M.C1", "M.C2", "N.C3"]},
            }
        }
    )
    assert m.map(frame("M", C1=ord("A"), C2=ord("B"))) == []  # N not seen yet
    assert m.map(frame("N", C3=ord("C"), ts=2.0)) == [
        VssUpdate("Vehicle.VehicleIdentification.VIN", "ABC", 2.0)
    ]
    assert m.map(frame("M", C1=0, C2=ord("B"))) == []  # a non-printable part: incomplete


@pytest.mark.parametrize(
    ("source", "extra", "message"),
    [
        ({"message": "NOPE", "signal": "S"}, {}, "message NOPE is not in"),
        ({"message": "M", "signal": "NOPE"}, {}, "signal NOPE is not in message M"),
        ({"message": "M", "signal": "G"}, {"map": {"X": "x"}}, "value names: D, P"),
        ({"message": "M", "signal": "S"}, {"scale_by": {"signal": "Q", "map": {1: 1}}}, "Q"),
    ],
)
def test_mapper_rejects_what_the_dbc_lacks(source, extra, message):
    with pytest.raises(ProfileError, match=message):
        mapper_for({"Vehicle.Speed": {"source": {"bus": "can0", **source}, **extra}})


def test_mapper_rejects_bus_without_dbc():
    data = {"name": "t", "buses": {"can0": {"dbc": "t.dbc"}}, "signals": BASE["signals"]}
    with pytest.raises(ProfileError, match="no DBC loaded for bus can0"):
        SignalMapper(parse_profile(data), {})
