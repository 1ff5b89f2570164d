"""Tolerant DBC loading: every shared DBC loads, and each repair is reported."""

import logging

import pytest

from tests.data_paths import DBC_DIR
from vehicle_agent import dbc_loader
from vehicle_agent.dbc_loader import DbcLoadError, IssueAction, load_dbc, load_dbc_string

ALL_DBCS = sorted(DBC_DIR.glob("*.dbc"))


def _issues(loaded):
    return {(i.line, i.action, i.reason.split(":")[0]) for i in loaded.issues}


def test_all_five_shared_dbcs_load():
    assert len(ALL_DBCS) == 5
    for path in ALL_DBCS:
        loaded = load_dbc(path)
        assert len(loaded.database.messages) > 20, path.name


def test_toyota_powertrain_reports_missing_semicolon_and_dangling_comments():
    loaded = load_dbc(DBC_DIR / "toyota_new_mc_pt_generated.dbc")
    by_line = {i.line: i for i in loaded.issues}
    assert by_line[569].action is IssueAction.REPAIRED
    assert "without closing ';'" in by_line[569].reason
    assert by_line[569].statement.startswith("VAL_ 865 CLUTCH_RELEASED")
    assert by_line[625].action is IssueAction.SKIPPED
    assert "BRAKE_POSITION" in by_line[625].reason
    # The repaired value table is really there.
    signal = loaded.database.get_message_by_name("CLUTCH").get_signal_by_name("CLUTCH_RELEASED")
    assert signal.choices[1] == "clutch released"
    # And the statement after it (the one cantools choked on) was kept.
    gear = loaded.database.get_message_by_name("PCM_CRUISE_SM")
    assert gear.get_signal_by_name("CRUISE_CONTROL_STATE").choices[11] == "hold"


def test_honda_comments_without_signal_are_skipped():
    loaded = load_dbc(DBC_DIR / "honda_civic_touring_2016_can_generated.dbc")
    by_line = {i.line: i for i in loaded.issues}
    assert "names no signal" in by_line[153].reason
    assert "names no signal" in by_line[154].reason
    # overlapping signals: the later line goes, the message decodes
    assert "SET_ME_X48 of LKAS_HUD overlaps" in by_line[246].reason
    assert all(i.action is IssueAction.SKIPPED for i in loaded.issues)
    hud = loaded.database.get_message_by_name("LKAS_HUD")
    assert "SET_ME_X48" not in {s.name for s in hud.signals}
    assert hud.decode(bytes(hud.length)) is not None
    # The valid comment right after them survived.
    vsa = loaded.database.get_message_by_name("VSA_STATUS")
    assert vsa.get_signal_by_name("BRAKE_HOLD_RELATED").comment == "On when Brake Hold engaged"


def test_honda_2017_extended_ids_and_undeclared_value_tables():
    loaded = load_dbc(DBC_DIR / "honda_civic_hatchback_ex_2017_can_generated.dbc")
    repaired = {i.line: i for i in loaded.repaired}
    assert set(repaired) == {351, 372}
    assert "0x33DA" in repaired[351].reason
    message = loaded.database.get_message_by_name("LKAS_HUD_A")
    assert message.is_extended_frame and message.frame_id == 13274
    skipped = {i.line: i.reason for i in loaded.skipped}
    assert "ECON_ON_2" in skipped[502]
    assert "CMBS_BUTTON" in skipped[505]


def test_hyundai_comment_without_object_type_is_skipped():
    loaded = load_dbc(DBC_DIR / "hyundai_kia_generic.dbc")
    assert {i.line for i in loaded.skipped} == {1654, 1655}
    assert not loaded.repaired
    assert loaded.database.get_message_by_frame_id(145) is not None


def test_clean_file_has_no_issues():
    assert load_dbc(DBC_DIR / "toyota_adas.dbc").issues == []


MINI = """VERSION ""
BS_:
BU_: X

BO_ 100 ONE: 2 X
 SG_ A : 0|8@1+ (1,0) [0|255] "" X
 SG_ B : 8|8@1+ (0.5,0) [0|127] "" X

BO_ 200 TWO: 2 X
 SG_ C : 0|8@1+ (1,0) [0|255] "" X
 SG_ BROKEN :: garbage
 SG_ D : 8|1@1+ (1,0) [0|1] "" X
 SG_ E : 9|2@1+ (1,0) [0|3] "" X
 SG_ F : 10|1@1+ (1,0) [0|1] "" X

CM_ SG_ 100 A "fine";
CM_ BO_ 100 unquoted comment;
VAL_ 100 A 0 "zero" 1 "one"
VAL_ 200 C 3 "three";
"""


def test_repairs_on_a_small_file_keep_line_numbers():
    loaded = load_dbc_string(MINI, name="mini.dbc")
    db = loaded.database
    assert {m.name for m in db.messages} == {"ONE", "TWO"}
    # F overlaps E (declared first): F goes, the message stays decodable
    assert [s.name for s in db.get_message_by_name("TWO").signals] == ["C", "D", "E"]
    assert db.decode_message("TWO", b"\x03\x07")["E"] == 3
    lines = {i.line: i for i in loaded.issues}
    assert lines[11].action is IssueAction.SKIPPED  # the broken signal line only
    assert "signal" in lines[11].reason
    assert "F of TWO overlaps" in lines[14].reason
    assert lines[17].action is IssueAction.SKIPPED  # the comment without quotes
    assert lines[18].action is IssueAction.REPAIRED  # VAL_ without ';'
    assert db.get_message_by_name("ONE").get_signal_by_name("A").choices[1] == "one"
    assert db.get_message_by_name("TWO").get_signal_by_name("C").choices[3] == "three"
    assert db.get_message_by_name("ONE").get_signal_by_name("A").comment == "fine"
    # Every reported line points at a line that says what the report says.
    text_lines = MINI.splitlines()
    for issue in loaded.issues:
        assert text_lines[issue.line - 1].strip().startswith(issue.statement[:10])


def test_nothing_usable_is_an_error(tmp_path):
    with pytest.raises(DbcLoadError):
        load_dbc_string("this is not a dbc file at all\n", name="junk")
    missing = tmp_path / "missing.dbc"
    with pytest.raises(FileNotFoundError):
        load_dbc(missing)


def test_cp1252_file_loads(tmp_path):
    path = tmp_path / "latin.dbc"
    path.write_bytes(MINI.replace('"fine"', '"f\xfcr"').encode("cp1252"))
    loaded = load_dbc(path)
    assert loaded.database.get_message_by_name("ONE").get_signal_by_name("A").comment == "f\xfcr"


def test_bitstruct_warning(monkeypatch, caplog):
    assert dbc_loader.bitstruct_c_available()  # the venv has the C extension
    monkeypatch.setattr(dbc_loader, "bitstruct_c_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert dbc_loader.warn_if_slow_decoding() is False
    assert "bitstruct" in caplog.text
