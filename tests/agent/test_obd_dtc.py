"""DTC wire decoding, response parsing and descriptions."""

import re

import pytest

from vehicle_agent.obd.dtc import (
    DESCRIPTIONS,
    DtcKind,
    decode_dtc,
    describe,
    encode_dtc,
    is_manufacturer_specific,
    make_dtc,
    parse_dtc_payload,
)
from vehicle_agent.obd.errors import ObdResponseError


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        ("0133", "P0133"),
        ("0301", "P0301"),
        ("1234", "P1234"),
        ("2a00", "P2A00"),
        ("4123", "C0123"),
        ("9234", "B1234"),
        ("c100", "U0100"),
        ("ffff", "U3FFF"),
    ],
)
def test_decode_and_encode(wire, code):
    raw = bytes.fromhex(wire)
    assert decode_dtc(raw[0], raw[1]) == code
    assert encode_dtc(code) == raw


@pytest.mark.parametrize("bad", ["P01", "X0133", "P4133", "P01G3", ""])
def test_encode_rejects_garbage(bad):
    with pytest.raises(ValueError, match="not a DTC"):
        encode_dtc(bad)


def test_parse_payload_with_count_byte():
    # 43 03 01 33 03 01 C1 00 after the service byte: three codes.
    assert parse_dtc_payload(bytes.fromhex("03013303 01c100".replace(" ", ""))) == [
        "P0133",
        "P0301",
        "U0100",
    ]


def test_parse_payload_padding():
    assert parse_dtc_payload(bytes.fromhex("0201330000aaaa")) == ["P0133"]
    assert parse_dtc_payload(b"\x00") == []
    assert parse_dtc_payload(bytes.fromhex("00aaaa")) == []


def test_parse_payload_count_mismatch_is_error():
    with pytest.raises(ObdResponseError, match="announces 3"):
        parse_dtc_payload(bytes.fromhex("03013303"))
    with pytest.raises(ObdResponseError, match="count byte"):
        parse_dtc_payload(b"")


def test_descriptions():
    assert describe("P0420") == "Catalyst System Efficiency Below Threshold (Bank 1)"
    assert describe("p0301") == "Cylinder 1 Misfire Detected"
    assert describe("P0171") == "System Too Lean (Bank 1)"
    assert describe("P0135") == "O2 Sensor Heater Circuit (Bank 1 Sensor 1)"
    assert describe("P0118") == "Engine Coolant Temperature Sensor 1 Circuit High"
    assert describe("P0354") == 'Ignition Coil "D" Primary/Secondary Circuit'
    assert describe("P0264") == 'Cylinder 2 Injector "A" Circuit Low'
    assert "Manufacturer-specific" in describe("P1456")
    assert "Manufacturer-specific" in describe("P3000")
    assert "Manufacturer-specific" in describe("B1234")
    assert "Generic powertrain" in describe("P0999")
    assert "Generic network" in describe("U0999")
    assert describe("garbage") == "Unrecognised code"


def test_manufacturer_ranges():
    assert is_manufacturer_specific("P1000")
    assert is_manufacturer_specific("P3300")
    assert not is_manufacturer_specific("P3400")
    assert not is_manufacturer_specific("P2096")
    assert is_manufacturer_specific("C1234") and is_manufacturer_specific("U2100")
    assert not is_manufacturer_specific("U0100")


def test_table_is_large_and_well_formed():
    assert len(DESCRIPTIONS) >= 300
    for code, text in DESCRIPTIONS.items():
        assert re.fullmatch(r"[PCBU][0-3][0-9A-F]{3}", code), code
        assert not is_manufacturer_specific(code), code
        assert text and text == text.strip()


def test_dtc_dict_form():
    assert make_dtc("P0420", DtcKind.PERMANENT).to_dict() == {
        "code": "P0420",
        "description": "Catalyst System Efficiency Below Threshold (Bank 1)",
        "kind": "permanent",
    }
