"""FrameDecoder: counters, unknown IDs, decode errors logged once, profile shortcuts."""

import logging
import random

import can
import pytest

from tests.data_paths import DBC_DIR
from vehicle_agent.dbc_loader import load_dbc, load_dbc_string
from vehicle_agent.decoder import FrameDecoder, signal_bits

DBC = """VERSION ""
BS_:
BU_: X
BO_ 256 SPEED: 4 X
 SG_ KPH : 7|16@0+ (0.01,0) [0|300] "km/h" X
 SG_ COUNTER : 16|8@1+ (1,0) [0|255] "" X
BO_ 512 GEAR: 1 X
 SG_ GEAR : 0|3@1+ (1,0) [0|7] "" X
VAL_ 512 GEAR 0 "P" 3 "D";
"""


@pytest.fixture
def db():
    return load_dbc_string(DBC).database


def test_decodes_and_counts(db):
    dec = FrameDecoder({"can0": [db]})
    frame = dec.decode("can0", 256, bytes([0x1F, 0x40, 7, 0]), 1.5)
    assert frame is not None
    assert frame.message == "SPEED" and frame.bus == "can0" and frame.timestamp == 1.5
    assert frame.signals["KPH"] == pytest.approx(80.0)
    assert frame.signals["COUNTER"] == 7
    assert dec.decode("can0", 512, b"\x03", 2.0).signals == {"GEAR": 3}
    assert dec.stats.frames == 2 and dec.stats.decoded == 2


def test_decode_choices_gives_names(db):
    dec = FrameDecoder({"can0": [db]}, decode_choices=True)
    assert str(dec.decode("can0", 512, b"\x03", 0).signals["GEAR"]) == "D"


def test_unknown_ids_are_counted_not_errors(db, caplog):
    dec = FrameDecoder({"can0": [db]})
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert dec.decode("can0", 0x7AB, b"\x00" * 8, 0) is None
        assert dec.decode("can9", 256, b"\x00" * 4, 0) is None  # bus without DBC
    assert dec.stats.unknown == 4
    assert dec.stats.unknown_ids == {("can0", 0x7AB), ("can9", 256)}
    assert dec.stats.errors == 0
    assert caplog.records == []


def test_decode_errors_counted_and_logged_once_per_id(db, caplog):
    dec = FrameDecoder({"can0": [db]})
    with caplog.at_level(logging.WARNING, logger="vehicle_agent.decoder"):
        for _ in range(5):
            assert dec.decode("can0", 256, b"\x01", 0) is None  # too short
        for _ in range(2):
            assert dec.decode("can0", 512, b"", 0) is None
        # a good frame of the same ID still decodes afterwards
        assert dec.decode("can0", 256, b"\x00\x10\x00\x00", 0) is not None
    assert dec.stats.errors == 7
    assert dec.stats.error_ids == {("can0", 256), ("can0", 512)}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "0x100" in warnings[0].getMessage()


def test_wildcard_bus_and_python_can_messages(db):
    dec = FrameDecoder({"*": [db]})
    msg = can.Message(arbitration_id=512, data=b"\x00", channel="vcan3", timestamp=9.0)
    frame = dec.decode_message(msg)
    assert frame is not None and frame.bus == "vcan3"
    assert dec.decode_message(can.Message(arbitration_id=512, data=b"\x00")).bus == "can0"
    assert dec.decode_message(can.Message(is_error_frame=True)) is None
    assert dec.stats.frames == 3 and dec.stats.decoded == 2


def test_profile_filter_and_unchanged_shortcut(db):
    dec = FrameDecoder({"can0": [db]}, wanted={"can0": {"SPEED": {"KPH"}}})
    assert dec.decode("can0", 512, b"\x03", 0) is None  # known, not needed
    assert dec.decode("can0", 256, b"\x1f\x40\x00\x00", 0) is not None
    # only the counter changed: KPH bits are the same, no decode needed
    assert dec.decode("can0", 256, b"\x1f\x40\x01\x00", 0) is None
    assert dec.decode("can0", 256, b"\x1f\x41\x02\x00", 0).signals["KPH"] == pytest.approx(80.01)
    s = dec.stats
    assert (s.filtered, s.decoded, s.unchanged) == (1, 2, 1)
    dec.reset_stats()
    assert dec.stats.frames == 0


def test_extended_flag_mismatch_is_tolerated():
    loaded = load_dbc(DBC_DIR / "honda_civic_hatchback_ex_2017_can_generated.dbc")
    dec = FrameDecoder({"can0": [loaded.database]})
    assert dec.decode("can0", 13275, bytes(8), 0, is_extended=True).message == "LKAS_HUD_B"
    assert dec.decode("can0", 13275, bytes(8), 0, is_extended=False).message == "LKAS_HUD_B"
    assert dec.decode("can0", 13274, bytes(5), 0, is_extended=True).message == "LKAS_HUD_A"
    assert (dec.stats.errors, dec.stats.unknown) == (0, 0)


def test_signal_bits_cover_exactly_what_the_signal_reads():
    """Flipping bits outside the mask never changes the signal; inside, some flip does."""
    rng = random.Random(7)
    db = load_dbc(DBC_DIR / "toyota_new_mc_pt_generated.dbc").database
    for message in db.messages:
        for signal in message.signals:
            mask = signal_bits(message, {signal.name})
            assert mask, (message.name, signal.name)
            if mask >> (8 * message.length):
                continue  # published layout overruns the message: cannot decode at all
            for _ in range(5):
                data = bytes(rng.randrange(256) for _ in range(message.length))
                base = message.decode(data, decode_choices=False)[signal.name]
                noise = rng.getrandbits(8 * message.length) & ~mask
                other = (int.from_bytes(data, "little") ^ noise).to_bytes(message.length, "little")
                assert message.decode(other, decode_choices=False)[signal.name] == base
            # every bit in the mask matters to the raw value
            zero = bytes(message.length)
            for bit in range(8 * message.length):
                if mask >> bit & 1:
                    flipped = (1 << bit).to_bytes(message.length, "little")
                    a = message.decode(zero, decode_choices=False, scaling=False)[signal.name]
                    b = message.decode(flipped, decode_choices=False, scaling=False)[signal.name]
                    assert a != b, (message.name, signal.name, bit)
