"""Audio input: WAV reading, resampling, PCM streams, microphone availability."""

from __future__ import annotations

import io
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from vehicle_agent.voice.audio import (
    SAMPLE_RATE,
    HighPass,
    MicrophoneSource,
    PcmSource,
    StreamResampler,
    read_wav,
    resample,
    write_wav,
)
from vehicle_agent.voice.errors import AudioError, MicrophoneUnavailableError


def tone(freq: float, seconds: float, rate: int, amplitude: float = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_freq(pcm: bytes, rate: int = SAMPLE_RATE) -> float:
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spectrum))])


def test_read_wav_resamples_and_mixes_down(tmp_path: Path) -> None:
    left = tone(440, 1.0, 44100)
    stereo = np.stack([left, left], axis=1).reshape(-1)
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(2)
        wf.setsampwidth(2)
        wf.setframerate(44100)
        wf.writeframes(stereo.tobytes())
    pcm = read_wav(path)
    assert abs(len(pcm) / 2 - SAMPLE_RATE) <= 2
    assert abs(dominant_freq(pcm) - 440) < 3


def test_read_wav_8_bit(tmp_path: Path) -> None:
    path = tmp_path / "u8.wav"
    samples = (tone(300, 0.5, 8000, 100) + 128).astype(np.uint8)
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(1)
        wf.setframerate(8000)
        wf.writeframes(samples.tobytes())
    pcm = read_wav(path)
    assert abs(len(pcm) / 2 - SAMPLE_RATE / 2) <= 2
    assert abs(dominant_freq(pcm) - 300) < 4


def test_bad_wav_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not a wav")
    with pytest.raises(AudioError, match="cannot read WAV"):
        read_wav(bad)
    with pytest.raises(AudioError):
        read_wav(tmp_path / "missing.wav")


def test_stream_resampler_in_chunks_matches_whole() -> None:
    x = tone(1000, 0.5, 48000).tobytes()
    whole = resample(x, 48000, SAMPLE_RATE)
    rs = StreamResampler(48000 / SAMPLE_RATE)
    parts = b"".join(rs.process(x[i : i + 999 * 2]) for i in range(0, len(x), 999 * 2))
    assert abs(len(parts) - len(whole)) <= 4
    assert abs(dominant_freq(parts) - 1000) < 5
    # Downsampling is low-passed: a 20 kHz tone does not alias into the speech band.
    high = resample(tone(20000, 0.3, 48000).tobytes(), 48000, SAMPLE_RATE)
    assert np.abs(np.frombuffer(high, dtype=np.int16)).mean() < 2500


def test_speed_perturbation_raises_pitch() -> None:
    x = tone(500, 1.0, SAMPLE_RATE).tobytes()
    fast = StreamResampler(1.2).process(x)
    assert abs(len(fast) / len(x) - 1 / 1.2) < 0.01
    assert abs(dominant_freq(fast) - 600) < 5


async def test_pcm_source_from_stream_and_bytes(tmp_path: Path) -> None:
    data = tone(200, 0.1, SAMPLE_RATE).tobytes() + b"\x01"  # a torn last sample
    chunks = [c async for c in PcmSource(stream=io.BytesIO(data)).chunks()]
    assert b"".join(chunks) == data[:-1]
    path = tmp_path / "a.wav"
    write_wav(path, data[:-1])
    from_file = b"".join([c async for c in PcmSource.from_wav(path).chunks()])
    assert from_file == data[:-1]
    with pytest.raises(ValueError):
        PcmSource()


async def test_microphone_without_sounddevice_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails
    source = MicrophoneSource()
    with pytest.raises(MicrophoneUnavailableError, match="sounddevice"):
        async for _ in source.chunks():
            break


def _rms(x: np.ndarray) -> float:
    settled = x.astype(np.float64)[SAMPLE_RATE // 4 :]  # after the filter's start-up
    return float(np.sqrt(np.mean(settled * settled)))


def _high_passed(x: np.ndarray) -> np.ndarray:
    return np.frombuffer(HighPass(150.0).process(x.tobytes()), dtype=np.int16)


def test_high_pass_removes_rumble_and_keeps_speech_band() -> None:
    rumble, voice = tone(40.0, 1.0, SAMPLE_RATE), tone(1000.0, 1.0, SAMPLE_RATE)
    assert _rms(_high_passed(rumble)) < 0.05 * _rms(rumble)  # at least 26 dB down
    assert 0.95 < _rms(_high_passed(voice)) / _rms(voice) < 1.05


def test_high_pass_in_chunks_matches_whole_and_delays_by_its_delay() -> None:
    src = np.concatenate([tone(40.0, 0.5, SAMPLE_RATE), tone(700.0, 0.5, SAMPLE_RATE)])
    pcm = src.tobytes()
    whole = HighPass(150.0)
    once = whole.process(pcm) + whole.flush()
    chunked = HighPass(150.0)
    parts = b"".join(chunked.process(pcm[i : i + 962]) for i in range(0, len(pcm), 962))
    assert parts + chunked.flush() == once
    out = np.frombuffer(once, dtype=np.int16).astype(np.float64)
    assert out.size == src.size + whole.delay_samples
    # The 700 Hz half comes out unchanged, shifted by exactly delay_samples.
    lo, hi = src.size // 2 + 2000, src.size - 1000
    shifted = out[lo + whole.delay_samples : hi + whole.delay_samples]
    assert np.max(np.abs(shifted - src[lo:hi])) < 0.02 * 8000


def test_high_pass_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="cutoff"):
        HighPass(9000.0)
    with pytest.raises(ValueError, match="odd"):
        HighPass(150.0, taps=512)
