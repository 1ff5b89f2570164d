"""NMEA RMC/GGA parsing, including malformed input."""

import math
from datetime import UTC, datetime

import pytest

from vehicle_agent.gps.nmea import NmeaError, NmeaStats, checksum, parse_nmea, parse_sentence

# The classic example sentences (checksums as published).
RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"


def sentence(body):
    return f"${body}*{checksum(body):02X}"


def test_checksum_matches_published_examples():
    assert checksum(RMC[1:-3]) == 0x6A
    assert checksum(GGA[1:-3]) == 0x47


def test_rmc_and_gga_merge_into_one_fix():
    stats = NmeaStats()
    fixes = parse_nmea([RMC + "\r\n", GGA + "\r\n"], stats)
    assert len(fixes) == 1
    fix = fixes[0]
    assert fix.lat == pytest.approx(48 + 7.038 / 60)
    assert fix.lon == pytest.approx(11 + 31.0 / 60)
    assert fix.speed_kmh == pytest.approx(22.4 * 1.852)
    assert fix.track_deg == pytest.approx(84.4)
    assert fix.alt_m == pytest.approx(545.4)
    assert fix.mode == 3
    assert fix.time == datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC).timestamp()
    assert (stats.sentences, stats.fixes, stats.malformed, stats.bad_checksum) == (2, 1, 0, 0)


def test_hemispheres_and_other_talkers():
    s = sentence("GNRMC,010203.50,A,3352.1280,S,15112.3500,W,0.0,,010124,,,A")
    parsed = parse_sentence(s)
    assert parsed.lat == pytest.approx(-(33 + 52.128 / 60))
    assert parsed.lon == pytest.approx(-(151 + 12.35 / 60))
    assert parsed.track_deg is None
    assert parsed.tod.microsecond == 500000


def test_malformed_lines_are_counted_and_skipped():
    lines = [
        "",
        "garbage without a dollar",
        RMC[:-2] + "00",  # wrong checksum
        RMC[:-2] + "ZZ",  # unreadable checksum
        sentence("GPRMC,123520,A,48"),  # truncated
        sentence("GPRMC,123521,A,4875.000,N,01131.000,E,0,0,230394,,"),  # 75 minutes
        sentence("GPRMC,12x521,A,4807.000,N,01131.000,E,0,0,230394,,"),  # bad time
        sentence("GPRMC,123522,A,4807.000,N,01131.000,E,0,0,320394,,"),  # 32 March
        sentence("GPGGA,123523,4807.038,N,01131.000,E,x,08,0.9,545.4,M,46.9,M,,"),
        sentence("GPRMC,123524,A,4807.000,Q,01131.000,E,0,0,230394,,"),  # hemisphere Q
        sentence("GPRMC,123525,A,4807.000,N,01131.000,E,nan,0,230394,,"),
        "$GPRMC,123526,A,4807.000,N,01131.000,E,\u00e9,0,230394,,",
        "\x00\xff\x13$$$,,,*",
        sentence("XX1YY,1,2"),  # bad sentence id
        sentence("PGRME,15.0,M,45.0,M,25.0,M"),  # proprietary: well-formed, ignored
        sentence("GPGSV,3,1,11,03,03,111,00"),  # fine, not a position sentence
        RMC,
        GGA,
    ]
    stats = NmeaStats()
    fixes = parse_nmea(lines, stats)
    assert len(fixes) == 1
    assert stats.bad_checksum == 1
    assert stats.malformed == 12
    assert stats.ignored == 2
    assert stats.errors and all(e.startswith("line ") for e in stats.errors)


def test_no_fix_sentences():
    void = sentence("GPRMC,000001,V,,,,,,,010124,,")
    no_quality = sentence("GPGGA,000002,4807.038,N,01131.000,E,0,00,,,M,,M,,")
    stats = NmeaStats()
    assert parse_nmea([void, no_quality], stats) == []
    assert stats.no_fix == 2


def test_gga_only_uses_first_rmc_date_and_rolls_over_midnight():
    lines = [
        sentence("GPGGA,235959,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
        sentence("GPRMC,235959,A,4807.038,N,01131.000,E,10,90,311224,,"),
        sentence("GPGGA,000000,4807.038,N,01131.100,E,1,08,0.9,545.4,M,46.9,M,,"),
    ]
    fixes = parse_nmea(lines)
    assert len(fixes) == 2
    assert fixes[0].time == datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    assert fixes[1].time == datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC).timestamp()
    assert fixes[1].speed_kmh is None and fixes[1].mode == 3


def test_parse_sentence_raises_clear_errors():
    with pytest.raises(NmeaError, match="checksum"):
        parse_sentence(RMC[:-2] + "00")
    assert parse_sentence(sentence("GPVTG,084.4,T,,M,022.4,N,041.5,K")) is None
    assert math.isclose(parse_sentence(GGA).hdop, 0.9)
