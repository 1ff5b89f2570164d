"""ELM327 answer parsing: frames per ECU, ISO-TP reassembly, status words, junk, targets."""

import pytest

from vehicle_agent.obd.elm327.answers import (
    ElmStatus,
    header_length,
    legacy_dtc_codes,
    parse_answer,
)
from vehicle_agent.obd.elm327.wire import ElmTarget, parse_target


def test_single_frame_after_searching_and_echo():
    parsed = parse_answer("010D\rSEARCHING...\r7E803410D2A\r\r", "A6", sent="010D")
    assert parsed.payloads == {"7E8": bytes.fromhex("410D2A")}
    assert parsed.statuses == [] and parsed.junk == []


def test_two_ecus_answer_one_request():
    text = "7E8064100BE3FA813\r7E906410098180001\r"
    parsed = parse_answer(text, "6")
    assert list(parsed.payloads) == ["7E8", "7E9"]
    assert parsed.payloads["7E9"] == bytes.fromhex("410098180001")


def test_multi_frame_vin_is_reassembled_even_interleaved_with_another_ecu():
    text = (
        "7E81014490201575030\r"
        "7EA03410D00\r"
        "7E8215A5A5A39395A54\r"
        "7E82253333930303030\r"
    )
    parsed = parse_answer(text, "A6")
    vin = parsed.payloads["7E8"]
    assert vin[:3] == bytes.fromhex("490201") and vin[3:].decode() == "WP0ZZZ99ZTS390000"
    assert parsed.payloads["7EA"] == bytes.fromhex("410D00")


def test_spaces_left_on_by_a_clone_are_tolerated():
    parsed = parse_answer("7E8 03 41 0D 2A \r", "6")
    assert parsed.payloads == {"7E8": bytes.fromhex("410D2A")}


def test_29_bit_headers():
    assert header_length("A7") == 8
    parsed = parse_answer("18DAF11003410D37\r", "A7")
    assert parsed.payloads == {"18DAF110": bytes.fromhex("410D37")}


def test_legacy_protocol_headers_and_checksum():
    assert header_length("A3") == 6
    parsed = parse_answer("486B10410D2A11\r486B1A410D2B22\r", "3")
    assert parsed.payloads == {"486B10": bytes.fromhex("410D2A"), "486B1A": bytes.fromhex("410D2B")}
    dtcs = parse_answer("486B104301330420000055\r486B10430171000000007A\r", "A3")
    assert legacy_dtc_codes(dtcs.frames["486B10"]) == [
        bytes.fromhex("0133"),
        bytes.fromhex("0420"),
        bytes.fromhex("0171"),
    ]


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("NO DATA", ElmStatus.NO_DATA),
        ("UNABLE TO CONNECT", ElmStatus.UNABLE_TO_CONNECT),
        ("CAN ERROR", ElmStatus.BUS_ERROR),
        ("BUS INIT: ...ERROR", ElmStatus.BUS_ERROR),
        ("STOPPED", ElmStatus.STOPPED),
        ("BUFFER FULL", ElmStatus.BUFFER_FULL),
        ("?", ElmStatus.UNKNOWN_COMMAND),
        ("<RX ERROR", ElmStatus.DATA_ERROR),
        ("LV RESET", ElmStatus.RESET),
        ("ELM327 v1.5", ElmStatus.RESET),
    ],
)
def test_status_words(line, status):
    parsed = parse_answer(f"SEARCHING...\r{line}\r", "A6")
    assert parsed.statuses == [status] and parsed.payloads == {}


def test_bus_init_ok_is_not_an_error():
    parsed = parse_answer("BUS INIT: ...OK\r486B10410D2A11\r", "4")
    assert parsed.statuses == [] and parsed.payloads["486B10"] == bytes.fromhex("410D2A")


def test_garbage_is_junk_and_good_frames_survive():
    text = "\x00\x7f#~garbage\r7E803410D2A\rZZZZ\r7E8\r7E8217777\r"
    parsed = parse_answer(text, "6")
    assert parsed.payloads == {"7E8": bytes.fromhex("410D2A")}
    # the consecutive frame without a first frame, the bare header and the noise
    assert len(parsed.junk) == 4


def test_truncated_multi_frame_is_not_a_payload():
    parsed = parse_answer("7E81014490201575030\r7E8215A5A5A39395A54\r", "6")
    assert parsed.payloads == {}
    assert any("incomplete" in j for j in parsed.junk)


def test_targets():
    assert parse_target("/dev/ttyUSB0") == ElmTarget(serial="/dev/ttyUSB0")
    assert parse_target("/dev/rfcomm0") == ElmTarget(serial="/dev/rfcomm0")
    assert parse_target("192.168.0.10:35000") == ElmTarget(host="192.168.0.10", port=35000)
    assert parse_target("[::1]:35000") == ElmTarget(host="::1", port=35000)
    for bad in ("ttyUSB0", "host:", "host:99999", ":35000"):
        with pytest.raises(ValueError):
            parse_target(bad)
