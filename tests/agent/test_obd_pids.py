"""Mode 01 PID decoding: each PID against hand-computed byte vectors (SAE J1979 formulas)."""

import pytest

from vehicle_agent.obd.errors import ObdResponseError
from vehicle_agent.obd.pids import (
    PIDS,
    SUPPORTED_PID_BLOCKS,
    decode_supported_bitmap,
    encode_supported_bitmap,
    get_pid,
    parse_pid,
)


@pytest.mark.parametrize(
    ("pid", "data", "expected"),
    [
        (0x04, "40", 25.1),  # 64 * 100 / 255
        (0x04, "ff", 100.0),
        (0x05, "7b", 83),  # 123 - 40
        (0x05, "00", -40),
        (0x06, "80", 0.0),
        (0x06, "00", -100.0),
        (0x0B, "65", 101),
        (0x0C, "1af8", 1726.0),  # (26 * 256 + 248) / 4
        (0x0C, "0000", 0.0),
        (0x0D, "50", 80),
        (0x0D, "ff", 255),
        (0x0E, "90", 8.0),  # 144 / 2 - 64
        (0x0F, "28", 0),
        (0x10, "01f4", 5.0),  # 500 / 100 g/s
        (0x11, "80", 50.2),
        (0x1F, "012c", 300),
        (0x2F, "80", 50.2),
        (0x2F, "00", 0.0),
        (0x31, "0100", 256),
        (0x33, "64", 100),
        (0x42, "3714", 14.1),  # 14100 mV
        (0x42, "2ee0", 12.0),
        (0x46, "3a", 18),
        (0x5C, "82", 90),
        (0x5E, "0064", 5.0),  # 100 * 0.05 L/h
        (0x62, "7d", 0),
        (0xA6, "00075bcd", 48225.3),  # 482253 / 10 km
    ],
)
def test_pid_decoding(pid, data, expected):
    fields = get_pid(pid).decode(bytes.fromhex(data))
    assert fields["value"] == pytest.approx(expected, abs=1e-9)


def test_rpm_reports_running():
    assert get_pid(0x0C).decode(bytes.fromhex("0c80"))["running"] is True
    assert get_pid(0x0C).decode(b"\x00\x00")["running"] is False


def test_monitor_status_mil_and_count():
    fields = get_pid(0x01).decode(bytes.fromhex("83076500"))
    assert fields == {"value": True, "mil_on": True, "dtc_count": 3}
    assert get_pid(0x01).decode(bytes.fromhex("00076500"))["mil_on"] is False


def test_short_data_is_a_response_error():
    with pytest.raises(ObdResponseError, match="0x0C"):
        get_pid(0x0C).decode(b"\x1a")
    with pytest.raises(ObdResponseError):
        get_pid(0xA6).decode(b"\x00\x01\x02")


def test_extra_bytes_are_ignored():
    assert get_pid(0x0D).decode(b"\x50\xaa\xaa")["value"] == 80


def test_supported_bitmap_example():
    # The classic J1979 example answer to 01 00: BE 1F A8 13.
    supported = decode_supported_bitmap(0x00, bytes.fromhex("be1fa813"))
    assert supported == {
        0x01,
        0x03,
        0x04,
        0x05,
        0x06,
        0x07,
        0x0C,
        0x0D,
        0x0E,
        0x0F,
        0x10,
        0x11,
        0x13,
        0x15,
        0x1C,
        0x1F,
        0x20,
    }


@pytest.mark.parametrize("base", SUPPORTED_PID_BLOCKS)
def test_bitmap_round_trip(base):
    pids = {base + 1, base + 7, base + 0x20}
    encoded = encode_supported_bitmap(base, pids | {base + 0x21, 0x00})
    assert decode_supported_bitmap(base, encoded) == pids
    assert PIDS[base].decode(encoded)["count"] == 3


def test_bitmap_needs_four_bytes():
    with pytest.raises(ObdResponseError):
        decode_supported_bitmap(0x20, b"\x80\x00")


@pytest.mark.parametrize("pid", [p for p, s in PIDS.items() if s.linear])
def test_linear_encode_inverts_decode(pid):
    spec = PIDS[pid]
    raw = bytes(range(0x11, 0x11 + spec.length))
    assert spec.encode(float(spec.decode(raw)["value"])) == raw


def test_required_pids_present():
    for pid in (
        0x00,
        0x20,
        0x40,
        0x60,
        0x80,
        0xA0,
        0x01,
        0x04,
        0x05,
        0x0C,
        0x0D,
        0x0F,
        0x2F,
        0x42,
        0x46,
        0xA6,
    ):
        assert pid in PIDS


def test_parse_pid():
    assert parse_pid("0x0D") == 0x0D
    assert parse_pid("0d") == 0x0D
    assert parse_pid("speed") == 0x0D
    assert parse_pid("A6") == 0xA6
    with pytest.raises(ValueError, match="not a PID"):
        parse_pid("nonsense")
    with pytest.raises(ValueError, match="out of range"):
        parse_pid("0x100")
    with pytest.raises(KeyError, match="0x99"):
        get_pid(0x99)
