"""Energy VAD: speech start/end with hangover, steady noise ignored."""

from __future__ import annotations

import numpy as np

from vehicle_agent.voice.audio import FRAME_MS, split_frames
from vehicle_agent.voice.vad import EnergyVad, VadConfig, VadEvent


def noise(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, level, int(seconds * 16000))


def events(signal: np.ndarray, vad: EnergyVad) -> list[tuple[float, VadEvent]]:
    pcm = np.clip(signal, -32768, 32767).astype(np.int16).tobytes()
    out = []
    for i, frame in enumerate(split_frames(pcm)):
        ev = vad.process(frame)
        if ev is not VadEvent.NONE:
            out.append((i * FRAME_MS / 1000, ev))
    return out


def test_speech_in_noise_starts_and_ends_after_hangover() -> None:
    t = np.arange(int(1.5 * 16000)) / 16000
    speech = 6000 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    signal = np.concatenate([noise(2.0, 200), noise(1.5, 200, 1) + speech, noise(2.0, 200, 2)])
    got = events(signal, EnergyVad(VadConfig(hangover_ms=450)))
    assert [e for _, e in got] == [VadEvent.SPEECH_START, VadEvent.SPEECH_END]
    start, end = got[0][0], got[1][0]
    assert 2.0 <= start <= 2.2
    assert 3.5 + 0.4 <= end <= 3.5 + 0.6  # end of speech + hangover


def test_steady_car_noise_never_triggers() -> None:
    assert events(noise(20.0, 3000), EnergyVad()) == []


def test_max_utterance_closes_endless_speech() -> None:
    loud = noise(0.5, 100).tolist() + noise(12.0, 8000, 3).tolist()
    got = events(np.array(loud), EnergyVad(VadConfig(max_utterance_ms=3000)))
    assert got[0][1] is VadEvent.SPEECH_START and got[1][1] is VadEvent.SPEECH_END
    assert got[1][0] - got[0][0] < 3.2
