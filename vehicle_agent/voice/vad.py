"""End of utterance by silence: an energy VAD with an adaptive noise floor and hangover."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from vehicle_agent.voice.audio import BYTES_PER_SAMPLE, FRAME_MS


class VadEvent(enum.Enum):
    """What one frame changed."""

    NONE = "none"
    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"


@dataclass(frozen=True, kw_only=True)
class VadConfig:
    """Knobs of :class:`EnergyVad` (durations in milliseconds)."""

    margin_db: float = 10.0  # speech is this far above the noise floor
    min_level_db: float = -50.0  # and above this absolute level (dBFS)
    start_ms: int = 90  # this much speech (not necessarily contiguous) opens an utterance
    hangover_ms: int = 450  # this much silence closes it
    max_utterance_ms: int = 8000
    floor_rise_db_per_s: float = 3.0  # the floor follows rising noise slowly
    calibrate_ms: int = 240  # the first frames only measure the noise floor


def frame_level_db(frame: bytes) -> float:
    """RMS level of an int16 frame in dBFS (-120 for digital silence)."""
    x = np.frombuffer(frame, dtype=np.int16).astype(np.float32)
    if x.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(x * x))) / 32768.0
    return 20.0 * math.log10(rms) if rms > 1e-6 else -120.0


class EnergyVad:
    """Frame-by-frame speech/silence decisions.

    The noise floor drops at once to quieter frames and rises slowly, so a car
    cabin's steady noise becomes the floor while speech stays above it. An
    utterance starts after ``start_ms`` of loud frames within a short window and
    ends after ``hangover_ms`` of quiet frames (or at ``max_utterance_ms``).
    """

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config or VadConfig()
        self.floor_db = -70.0
        self._calibrated_ms = 0
        self.in_speech = False
        self._loud_frames = 0
        self._quiet_ms = 0
        self._speech_ms = 0
        self._recent: list[bool] = []

    def reset(self) -> None:
        """Forget the current utterance (keep the learnt noise floor)."""
        self.in_speech = False
        self._loud_frames = 0
        self._quiet_ms = 0
        self._speech_ms = 0
        self._recent.clear()

    def is_loud(self, level_db: float) -> bool:
        """Whether a frame at *level_db* counts as speech against the current floor."""
        c = self.config
        return level_db > max(self.floor_db + c.margin_db, c.min_level_db)

    def process(self, frame: bytes) -> VadEvent:
        """Classify one frame (about ``FRAME_MS`` long) and return the state change."""
        c = self.config
        ms = max(1, len(frame) // BYTES_PER_SAMPLE * 1000 // 16000) if frame else FRAME_MS
        level = frame_level_db(frame)
        if self._calibrated_ms < c.calibrate_ms:
            # Start from the cabin's own noise, not from an assumed quiet room.
            self.floor_db = level if self._calibrated_ms == 0 else min(self.floor_db, level)
            self._calibrated_ms += ms
            return VadEvent.NONE
        loud = self.is_loud(level)
        if level < self.floor_db:
            self.floor_db = level
        elif not loud or not self.in_speech:
            self.floor_db += min(level - self.floor_db, c.floor_rise_db_per_s * ms / 1000.0)
        if not self.in_speech:
            self._recent.append(loud)
            window = max(1, 2 * c.start_ms // ms)
            del self._recent[:-window]
            if sum(self._recent) * ms >= c.start_ms:
                self.in_speech = True
                self._quiet_ms = 0
                self._speech_ms = len(self._recent) * ms
                self._recent.clear()
                return VadEvent.SPEECH_START
            return VadEvent.NONE
        self._speech_ms += ms
        self._quiet_ms = 0 if loud else self._quiet_ms + ms
        if self._quiet_ms >= c.hangover_ms or self._speech_ms >= c.max_utterance_ms:
            self.reset()
            return VadEvent.SPEECH_END
        return VadEvent.NONE
