"""Streaming grammar decoding (any engine), off the event loop.

A :class:`GrammarDecoder` runs several grammar-constrained recognizers of one
engine (:mod:`vehicle_agent.voice.engine`)
side by side on speed-perturbed copies of the same audio (factors 0.9, 1.0,
1.1, 1.2 by default: the benchmark sweep found 0.9 more useful than 1.3, and
0.8 or a fifth pass did not help). Each pass returns an n-best list of
``(text, score)``; the
:class:`~vehicle_agent.voice.matcher.PhraseMatcher` combines them. Speed
perturbation is the standard trick to make an acoustic model robust to voices
it was not trained on; here it runs at recognition time, because passes that
hear the speech slightly faster and higher err differently from the plain one.

All engine calls of one decoder go through one worker thread (``executor``):
recognizers are not thread-safe and must never block the asyncio loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

from vehicle_agent.voice.audio import SAMPLE_RATE, HighPass, StreamResampler
from vehicle_agent.voice.engine import Engine, PassRecognizer
from vehicle_agent.voice.matcher import Hypothesis
from vehicle_agent.voice.model import VoiceModel, _vosk

_LOGGER = logging.getLogger(__name__)

DEFAULT_SPEEDS: tuple[float, ...] = (0.9, 1.0, 1.1, 1.2)
# Below this the car is loud and speech is not. Swept on the benchmark's 192
# utterances, decoded whole without the VAD: accuracy 41 % without a filter,
# 51 / 55 / 50 / 46 / 19 % with 100 / 150 / 220 / 300 / 600 Hz (accept rules of
# the time; they were re-tuned with the filter in place afterwards).
DEFAULT_HIGHPASS_HZ = 150.0


@dataclass(frozen=True, kw_only=True)
class FreeFormResult:
    """Unconstrained recognition: text and the mean word confidence."""

    text: str
    confidence: float


class _Pass:
    """One engine recognizer fed with audio played at one speed."""

    def __init__(self, recognizer: PassRecognizer, speed: float) -> None:
        self.recognizer = recognizer
        self.speed = speed
        self._fresh()

    def _fresh(self) -> None:
        self.resampler = StreamResampler(self.speed) if self.speed != 1.0 else None

    def accept(self, pcm: bytes) -> None:
        data = self.resampler.process(pcm) if self.resampler is not None else pcm
        if data:
            self.recognizer.accept(data)

    def finish(self) -> list[Hypothesis]:
        hypotheses = self.recognizer.finish()
        self._fresh()
        return hypotheses


class GrammarDecoder:
    """Grammar-mode vosk passes for one phrase list; reusable across utterances.

    The blocking methods (``accept_blocking``...) are for threads and tests;
    asyncio code uses :meth:`accept` / :meth:`finish`, which run them in the
    decoder's single worker thread.
    """

    def __init__(
        self,
        model: Engine,
        phrases: Sequence[str],
        *,
        speeds: Sequence[float] = DEFAULT_SPEEDS,
        n_best: int = 5,
        highpass_hz: float | None = DEFAULT_HIGHPASS_HZ,
        executor: Executor | None = None,
    ) -> None:
        self._highpass_hz = highpass_hz
        self._highpass = HighPass(highpass_hz) if highpass_hz else None
        self._passes = [_Pass(model.recognizer(phrases, n_best), speed) for speed in speeds]
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="vosk")

    def accept_blocking(self, pcm: bytes) -> None:
        """Feed audio to every pass (blocking)."""
        if self._highpass is not None:
            pcm = self._highpass.process(pcm)
        for p in self._passes:
            p.accept(pcm)

    def finish_blocking(self) -> list[list[Hypothesis]]:
        """End the utterance: the n-best texts of each pass; ready for the next one."""
        if self._highpass is not None:
            tail = self._highpass.flush()  # the filter's delay line holds the last 16 ms
            for p in self._passes:
                p.accept(tail)
        return [p.finish() for p in self._passes]

    def decode_blocking(self, pcm: bytes, chunk: int = 8000) -> list[list[Hypothesis]]:
        """Decode a whole utterance at once (blocking)."""
        for start in range(0, len(pcm), chunk):
            self.accept_blocking(pcm[start : start + chunk])
        return self.finish_blocking()

    async def accept(self, pcm: bytes) -> None:
        """Feed audio in the worker thread."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.accept_blocking, pcm)

    async def finish(self) -> list[list[Hypothesis]]:
        """End the utterance in the worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.finish_blocking)

    def close(self) -> None:
        """Release the engine's recognizers; stop the worker thread if this decoder made it."""
        for p in self._passes:
            release = getattr(p.recognizer, "close", None)
            if release is not None:
                release()
        if self._own_executor:
            self._executor.shutdown(wait=False)


class FreeFormDecoder:
    """Unconstrained large-vocabulary recognition (for requests handed to an LLM at home).

    Slow on small devices (the full language model graph), so it runs only when
    the grammar rejected an utterance and free-form fallback is enabled.
    """

    def __init__(self, model: VoiceModel) -> None:
        self._model = model

    def decode_blocking(self, pcm: bytes, chunk: int = 8000) -> FreeFormResult:
        """Recognise a whole utterance (blocking)."""
        rec = _vosk().KaldiRecognizer(self._model.raw, SAMPLE_RATE)
        rec.SetWords(True)
        for start in range(0, len(pcm), chunk):
            rec.AcceptWaveform(pcm[start : start + chunk])
        result = json.loads(rec.FinalResult())
        words = result.get("result") or []
        conf = sum(float(w.get("conf", 0.0)) for w in words) / len(words) if words else 0.0
        return FreeFormResult(text=str(result.get("text", "")).strip(), confidence=conf)
