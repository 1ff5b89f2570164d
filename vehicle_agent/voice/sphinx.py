"""The pocketsphinx engine: English with no download (the model ships in the wheel).

The ``pocketsphinx`` wheel on PyPI carries the CMU en-us acoustic model, a
134 000-word pronunciation dictionary and a phone language model. The car's
phrases become a JSGF grammar (:func:`jsgf`), so the decoder produces one
whole phrase, or nothing when no path through the grammar reaches its end.

Speech that is none of the phrases can still reach the end of some phrase.
So a free phone loop decodes the same audio beside the grammar, and the
confidence of an utterance is how well the best phrase fits compared with
free phones, per frame (the classic likelihood ratio: in-grammar speech fits
its phrase almost as well as free phones, other speech fits much worse).
Below :data:`MIN_CONFIDENCE` the recognizer reports "something else" (an
empty hypothesis), which the matcher refuses. An in-grammar "something else"
branch (a phone loop inside the JSGF) was tried first: it made the search
100 times slower.

Each recognizer has two decoders (about 30 MB each: the acoustic model and
the dictionary) fed while audio arrives, so at the end of speech only the
final searches remain.

Cepstral mean normalisation is live: each utterance starts from the mean of
the ones before, so the first utterance after start-up starts from the
model's default mean, far from a car microphone's (or a synthetic voice's).
The demo's "turn on the living room light" was refused as the first command
and accepted from the second on. So when the first utterance a recognizer
hears is refused, it is decoded once more by two fresh decoders starting
from that utterance's own mean (:meth:`SphinxEngine.utterance_mean`). The
recognizer's own decoders are left as they were: what later utterances
score does not change (the confidence gate was chosen on them).
Normalising every utterance over itself (``cmn=batch``) was tried too: it
fixed the first command but broke one-word answers ("no" is too short to
give a usable mean).
"""

from __future__ import annotations

import importlib
import itertools
import logging
import math
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from vehicle_agent.voice.errors import GrammarError, ModelError
from vehicle_agent.voice.g2p import guess_phones
from vehicle_agent.voice.matcher import Hypothesis

_LOGGER = logging.getLogger(__name__)

# A phrase whose words the decoder had to pull apart by more silence than this
# was other speech padded out with silence ("open the garage door" as
# "hey ... car"): something else.
MAX_INNER_SILENCE_S = 0.5
# The phrase's words must span this share of the speech the phone loop heard
# (first to last non-silence phone); else the decoder called the rest silence.
MIN_COVERAGE = 0.6
_FRAMES_PER_S = 100
_PLAIN_TOKEN = re.compile(r"^[\w'.-]+$")
# Per-frame log-likelihood of the best phrase minus that of free phones (natural
# log units of the decoder's scores): below this the speech was something else.
# Chosen in benchmarks/voice.py on the tuning voices (never the held-out ones).
MIN_CONFIDENCE = -0.0001
# The VAD ends an utterance long before this; the first utterance's audio is
# kept for its second decoding up to this length.
MAX_FIRST_UTTERANCE_S = 20.0
_MAX_FIRST_UTTERANCE_BYTES = int(MAX_FIRST_UTTERANCE_S * 16000) * 2


@lru_cache(maxsize=1)
def _pocketsphinx() -> Any:  # noqa: ANN401 (pocketsphinx has no type hints)
    try:
        return importlib.import_module("pocketsphinx")
    except ImportError as exc:  # pragma: no cover - pocketsphinx is a hard dependency
        raise ModelError("the 'pocketsphinx' package is not installed") from exc


def packaged_sphinx_model() -> Path:
    """The model directory inside the pocketsphinx wheel (holds ``en-us/``)."""
    return Path(_pocketsphinx().get_model_path())


def jsgf(phrases: Sequence[str], name: str = "carhub") -> str:
    """A JSGF grammar whose one public rule is any of *phrases* (words separated by spaces)."""
    alternatives = []
    for phrase in sorted(set(phrases)):
        words = phrase.split()
        if not words:
            continue
        alternatives.append(" ".join(w if _PLAIN_TOKEN.match(w) else _quote(w) for w in words))
    if not alternatives:
        raise GrammarError("no phrases for the JSGF grammar")
    body = "\n    | ".join(alternatives)
    return f"#JSGF V1.0;\ngrammar {name};\npublic <utterance> =\n      {body}\n    ;\n"


def _quote(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SphinxEngine:
    """pocketsphinx with the en-us model of its wheel (or a model directory laid out alike)."""

    name = "pocketsphinx"
    needs_value_pass = False
    # One pass: speed-perturbed copies did not help the FSG decoder enough to
    # pay for a second decoder pair (benchmarks/voice.py).
    default_speeds: tuple[float, ...] = (1.0,)

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        language: str = "en",
        min_confidence: float = MIN_CONFIDENCE,
    ) -> None:
        root = model_dir or packaged_sphinx_model()
        self._hmm = root / "en-us" / "en-us"
        self._lexicon = root / "en-us" / "cmudict-en-us.dict"
        if not (self._hmm / "mdef").is_file() or not self._lexicon.is_file():
            raise ModelError(f"{root} is not a pocketsphinx model directory (en-us/en-us/mdef)")
        self.path = root
        self.language = language
        self.min_confidence = min_confidence
        self.guessed: dict[str, str] = {}  # word -> phones the engine made up for it
        self._unpronounceable: set[str] = set()  # words guess() could do nothing with
        self._lock = threading.Lock()
        self._phone_lm = root / "en-us" / "en-us-phone.lm.bin"
        self._lexicon_decoder = self.new_decoder()  # answers knows() / guess()
        self._rescorer: Any = None  # the second pass's decoder, made on first use
        self._mean_estimator: Any = None  # utterance_mean()'s decoder, made on first use
        self._search_ids = itertools.count()

    def new_decoder(self, *, cmn: str = "live") -> Any:  # noqa: ANN401 (no type hints)
        """A decoder with the model, the dictionary and every guessed word."""
        ps = _pocketsphinx()
        try:
            # No language model: searches are added per grammar.
            config = ps.Config(
                hmm=str(self._hmm),
                dict=str(self._lexicon),
                lm=None,
                loglevel="ERROR",
                cmn=cmn,
                bestpath=False,  # no lattice: see SphinxRecognizer.finish
                # Digital silence (exact zeros, as in generated audio) throws the
                # energy features off; a little dither (fixed seed) keeps them sane.
                dither=True,
            )
            decoder = ps.Decoder(config)
        except Exception as exc:  # pocketsphinx raises RuntimeError/ValueError on bad models
            raise ModelError(f"cannot load the pocketsphinx model in {self.path}: {exc}") from exc
        for word, phones in self.guessed.items():
            decoder.add_word(word, phones, False)
        return decoder

    def knows(self, word: str) -> bool:
        """Whether *word* is in the dictionary (or was added by :meth:`guess`)."""
        return self._lookup(word) is not None

    def guess(self, word: str) -> bool:
        """Add a guessed pronunciation for *word* (see :mod:`vehicle_agent.voice.g2p`)."""
        if word in self._unpronounceable:
            return False
        phones = guess_phones(word, self._lookup)
        if phones is None:
            # Once per word: the grammar asks again for every phrase holding it.
            self._unpronounceable.add(word)
            _LOGGER.warning("voice: no pronunciation for %r; phrases with it are left out", word)
            return False
        with self._lock:
            self._lexicon_decoder.add_word(word, phones, True)
        self.guessed[word] = phones
        _LOGGER.warning("voice: %r is not in the dictionary; guessed it as %s", word, phones)
        return True

    def _lookup(self, word: str) -> str | None:
        with self._lock:
            found = self._lexicon_decoder.lookup_word(word)
        return str(found) if found is not None else None

    def recognizer(self, phrases: Sequence[str], n_best: int) -> SphinxRecognizer:
        """A streaming recognizer for *phrases* (its own decoder)."""
        return SphinxRecognizer(self, phrases, n_best)

    def rescore(self, pcm: bytes, chosen: str, rivals: Sequence[str]) -> float:
        """Per-frame score of *chosen* minus that of the best of *rivals*, each
        decoded alone over the whole utterance *pcm* (see
        :mod:`vehicle_agent.voice.second_pass`); ``inf`` if no rival fits at all."""
        with self._lock:
            if self._rescorer is None:
                self._rescorer = self.new_decoder()
            mine = self._forced(self._rescorer, pcm, [chosen])
            theirs = self._forced(self._rescorer, pcm, rivals)
        if mine is None:
            return -math.inf
        return math.inf if theirs is None else mine - theirs

    def _forced(self, decoder: Any, pcm: bytes, phrases: Sequence[str]) -> float | None:  # noqa: ANN401
        """Best per-frame score of *phrases* over *pcm*, or None if none reaches its end."""
        name = f"r{next(self._search_ids)}"
        decoder.add_jsgf_string(name, jsgf(phrases))
        try:
            decoder.activate_search(name)
            decoder.start_utt()
            decoder.process_raw(pcm, False, True)
            decoder.end_utt()
            best = decoder.hyp()
            frames = max(int(decoder.n_frames()), 1)
        finally:
            decoder.remove_search(name)
        if best is None or not best.hypstr:
            return None
        return _ln(best.score) / frames

    def utterance_mean(self, pcm: bytes) -> str:
        """The cepstral mean of *pcm* alone, in ``Decoder.set_cmn``'s format."""
        with self._lock:
            if self._mean_estimator is None:
                self._mean_estimator = self.phone_loop(cmn="batch")
            decoder = self._mean_estimator
            decoder.start_utt()
            decoder.process_raw(pcm, False, True)
            decoder.end_utt()
            return str(decoder.get_cmn(False))

    def grammar_decoder(self, grammar: str) -> Any:  # noqa: ANN401
        """A decoder searching the JSGF *grammar*."""
        decoder = self.new_decoder()
        try:
            decoder.add_jsgf_string("carhub", grammar)
            decoder.activate_search("carhub")
        except (ValueError, RuntimeError, KeyError) as exc:
            raise GrammarError(f"pocketsphinx rejected the grammar: {exc}") from exc
        return decoder

    def phone_loop(self, *, cmn: str = "live") -> Any:  # noqa: ANN401
        """A decoder running free phone recognition (the confidence's reference)."""
        decoder = self.new_decoder(cmn=cmn)
        try:
            decoder.add_allphone_file("phones", str(self._phone_lm))
            decoder.activate_search("phones")
        except (RuntimeError, KeyError) as exc:
            raise ModelError(f"cannot load the phone model {self._phone_lm}: {exc}") from exc
        return decoder


class SphinxRecognizer:
    """A JSGF search and a free phone loop, both fed while the utterance is spoken."""

    def __init__(self, engine: SphinxEngine, phrases: Sequence[str], n_best: int) -> None:
        del n_best  # one hypothesis: see finish()
        self._min_confidence = engine.min_confidence
        self.phrases = frozenset(phrases)
        self._engine = engine
        self._grammar = jsgf(phrases)
        self._decoders = (engine.grammar_decoder(self._grammar), engine.phone_loop())
        self._in_utterance = False
        # Audio of the first utterance, for its second decoding (module docstring).
        self._first: bytearray | None = bytearray()
        self.confidence: float | None = None  # of the last utterance, for benchmarks and logs
        self.last: list[Hypothesis] = []

    def accept(self, pcm: bytes) -> None:
        """Decode audio as it comes."""
        if not self._in_utterance:
            for d in self._decoders:
                d.start_utt()
            self._in_utterance = True
        for d in self._decoders:
            d.process_raw(pcm, False, False)
        if self._first is not None and len(self._first) < _MAX_FIRST_UTTERANCE_BYTES:
            self._first += pcm[: _MAX_FIRST_UTTERANCE_BYTES - len(self._first)]

    def finish(self) -> list[Hypothesis]:
        """End the utterance: the best whole phrase, or ``""`` (something else).

        One hypothesis only: pocketsphinx builds a word lattice for an n-best
        list or a posterior, which took 0.5-1 s after a long numeric command
        (benchmarks/voice.py); the phone-loop confidence needs no lattice.
        """
        self.confidence, self.last = None, [("", 0.0)]
        if not self._in_utterance:
            return self.last
        for d in self._decoders:
            d.end_utt()
        self._in_utterance = False
        first, self._first = self._first, None
        self.last = self._judge(*self._decoders)
        if first and not self.last[0][0]:
            self.last = self._judge(*self._decode_from_own_mean(bytes(first)))
            _LOGGER.debug("first utterance, decoded from its own mean: %r", self.last[0][0])
        return self.last

    def _decode_from_own_mean(self, audio: bytes) -> tuple[Any, Any]:
        """Fresh decoders over *audio*, starting from its own cepstral mean."""
        mean = self._engine.utterance_mean(audio)
        decoders = (self._engine.grammar_decoder(self._grammar), self._engine.phone_loop())
        for d in decoders:
            d.set_cmn(mean)
            d.start_utt()
            d.process_raw(audio, False, False)
            d.end_utt()
        return decoders

    def _judge(self, grammar: Any, phones: Any) -> list[Hypothesis]:  # noqa: ANN401
        """The grammar decoder's phrase if it passes the checks, else ``""``."""
        best, free = grammar.hyp(), phones.hyp()
        if best is None or best.hypstr not in self.phrases:
            return [("", 0.0)]
        frames = max(int(grammar.n_frames()), 1)
        reference = _ln(free.score) if free is not None else _ln(best.score)
        self.confidence = (_ln(best.score) - reference) / frames
        if (
            self.confidence < self._min_confidence
            or _longest_inner_gap(grammar) > MAX_INNER_SILENCE_S * _FRAMES_PER_S
            or _coverage(grammar, phones) < MIN_COVERAGE
        ):
            _LOGGER.debug(
                "heard %r at confidence %.5f: something else", best.hypstr, self.confidence
            )
            return [("", 0.0)]
        return [(best.hypstr, 0.0)]


def _longest_inner_gap(decoder: Any) -> int:  # noqa: ANN401
    """Frames of the longest silence or noise between two words of the best path."""
    words = [(str(s.word), int(s.start_frame), int(s.end_frame)) for s in decoder.seg() or ()]
    spoken = [i for i, (w, _, _) in enumerate(words) if not _is_filler(w)]
    if len(spoken) < 2:
        return 0
    inner = words[spoken[0] + 1 : spoken[-1]]
    return max((end - start + 1 for w, start, end in inner if _is_filler(w)), default=0)


def _coverage(grammar: Any, phones: Any) -> float:  # noqa: ANN401
    """Frames spanned by the phrase's words over frames of speech in the phone loop."""
    words = [
        (int(s.start_frame), int(s.end_frame))
        for s in grammar.seg() or ()
        if not _is_filler(s.word)
    ]
    speech = [
        (int(s.start_frame), int(s.end_frame)) for s in phones.seg() or () if not _is_filler(s.word)
    ]
    if not words or not speech:
        return 1.0
    spoken = speech[-1][1] - speech[0][0] + 1
    return (words[-1][1] - words[0][0] + 1) / max(spoken, 1)


def _is_filler(word: str) -> bool:
    return word.startswith(("<", "[", "(", "+")) or word == "SIL"


def _ln(exp_score: float) -> float:
    """pocketsphinx hands out ``1.0001 ** score``: back to a natural log."""
    return math.log(exp_score) if exp_score > 0 else -1e9
