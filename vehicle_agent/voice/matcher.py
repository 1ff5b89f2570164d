"""Phrase-level matching of recogniser n-best lists onto whole grammar phrases.

vosk turns a phrase list into a bigram language model, so its best path often
glues pieces of different phrases together, and a model without ``[unk]``
forces any speech onto some words. Instead of trusting the top string we
compare every n-best hypothesis of every decoding pass with every grammar
phrase by edit distance over sound units (Hangul jamo for Korean, letters
otherwise), keep the best phrase, and accept it only when it is close, clearly
better than the best phrase of a different meaning, and agreed on by several
passes. Everything else is "sorry, I did not catch that".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

_HANGUL_BASE = 0xAC00
_HANGUL_COUNT = 11172


def sound_units(text: str) -> list[str]:
    """Text as a list of sound-ish units: Hangul syllables split into jamo, other
    characters lower-cased; spaces dropped (word boundaries are not audible)."""
    units: list[str] = []
    for ch in text:
        if ch.isspace():
            continue
        offset = ord(ch) - _HANGUL_BASE
        if 0 <= offset < _HANGUL_COUNT:
            units.append(chr(0x1100 + offset // 588))
            units.append(chr(0x1161 + (offset % 588) // 28))
            if offset % 28:
                units.append(chr(0x11A7 + offset % 28))
        else:
            units.append(ch.lower())
    return units


@dataclass(frozen=True, kw_only=True)
class Phrase:
    """One grammar phrase: what vosk is given, what it means."""

    spoken: str  # words in the model's vocabulary, space separated (given to vosk)
    text: str  # the sentence as written in the templates (given to hassil / the home)
    key: str  # phrases with the same key mean the same thing (intent + slots)


@dataclass(frozen=True, kw_only=True)
class MatchConfig:
    """Decision thresholds (distances are edits per unit of the phrase)."""

    n_best: int = 5
    max_distance: float = 0.45
    min_margin: float = 0.1
    min_agree: int = 2  # decoding passes whose own best phrase has the winning key
    # A near-exact phrase that every pass chose needs no margin: "켜" and "꺼" differ by
    # one jamo, so "turn on" and "turn off" are always close competitors.
    sure_distance: float = 0.15


@dataclass(frozen=True, kw_only=True)
class Match:
    """The matcher's verdict on one utterance."""

    phrase: Phrase | None  # the best phrase, even when rejected
    accepted: bool
    distance: float
    margin: float
    agree: int
    reason: str = ""
    runner_up: Phrase | None = None
    hypotheses: tuple[str, ...] = field(default_factory=tuple)


class PhraseMatcher:
    """Scores n-best lists against a fixed set of phrases (vectorised over phrases)."""

    def __init__(self, phrases: Sequence[Phrase], config: MatchConfig | None = None) -> None:
        if not phrases:
            raise ValueError("no phrases to match")
        self.phrases = list(phrases)
        self.config = config or MatchConfig()
        self._alphabet: dict[str, int] = {}
        encoded = [self._encode(sound_units(p.spoken)) for p in self.phrases]
        self._lengths = np.array([max(len(e), 1) for e in encoded], dtype=np.int32)
        width = int(self._lengths.max())
        self._codes = np.full((len(encoded), width), -1, dtype=np.int32)
        for i, e in enumerate(encoded):
            self._codes[i, : len(e)] = e
        self._keys = [p.key for p in self.phrases]
        self._cache: dict[str, npt.NDArray[np.float64]] = {}

    def _encode(self, units: list[str], *, grow: bool = True) -> list[int]:
        out = []
        for u in units:
            code = self._alphabet.get(u)
            if code is None:
                if not grow:
                    code = -2  # matches nothing in any phrase
                else:
                    code = self._alphabet[u] = len(self._alphabet)
            out.append(code)
        return out

    def distances(self, hypothesis: str) -> npt.NDArray[np.float64]:
        """Normalised edit distance from *hypothesis* to every phrase."""
        cached = self._cache.get(hypothesis)
        if cached is not None:
            return cached
        hyp = self._encode(sound_units(hypothesis), grow=False)
        n_phrases, width = self._codes.shape
        cols = np.arange(width + 1, dtype=np.float64)
        row = np.tile(cols, (n_phrases, 1))  # distance of "" to each phrase prefix
        for i, code in enumerate(hyp, 1):
            sub = row[:, :-1] + (self._codes != code)
            dele = row[:, 1:] + 1.0
            best = np.minimum(sub, dele)
            new = np.empty_like(row)
            new[:, 0] = i
            new[:, 1:] = best
            # Insertions chain along the row: d[j] = min_k (q[k] + j - k), a running minimum.
            new = np.minimum.accumulate(new - cols, axis=1) + cols
            row = new
        dist: npt.NDArray[np.float64] = row[np.arange(n_phrases), self._lengths] / self._lengths
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[hypothesis] = dist
        return dist

    def match(self, passes: Sequence[Sequence[str]]) -> Match:
        """Decide on one utterance from the n-best texts of each decoding pass."""
        cfg = self.config
        passes = [[h for h in p[: cfg.n_best]] for p in passes if p]
        flat = tuple(h for p in passes for h in p)
        if not passes or not any(h.strip() for h in flat):
            return Match(
                phrase=None,
                accepted=False,
                distance=1.0,
                margin=0.0,
                agree=0,
                reason="nothing recognised",
                hypotheses=flat,
            )
        per_pass = []
        for hyps in passes:
            per_pass.append(np.min(np.stack([self.distances(h) for h in hyps]), axis=0))
        stacked = np.stack(per_pass)
        if len(per_pass) >= 3:
            # One pass that went astray must not sink a phrase the others heard:
            # per phrase, average all passes but its worst.
            total = (stacked.sum(axis=0) - stacked.max(axis=0)) / (len(per_pass) - 1)
        else:
            total = stacked.mean(axis=0)
        order = np.argsort(total, kind="stable")
        best = int(order[0])
        best_key = self._keys[best]
        runner = next((int(i) for i in order[1:] if self._keys[int(i)] != best_key), None)
        distance = float(total[best])
        margin = float(total[runner] - total[best]) if runner is not None else 1.0
        agree = sum(1 for d in per_pass if self._keys[int(np.argmin(d))] == best_key)
        reasons = []
        if distance > cfg.max_distance:
            reasons.append(f"distance {distance:.2f} > {cfg.max_distance:.2f}")
        unanimous = agree == len(passes) and distance <= cfg.sure_distance
        if margin < cfg.min_margin and not unanimous:
            reasons.append(f"margin {margin:.2f} < {cfg.min_margin:.2f}")
        if agree < min(cfg.min_agree, len(passes)):
            reasons.append(f"{agree} of {len(passes)} passes agree")
        return Match(
            phrase=self.phrases[best],
            accepted=not reasons,
            distance=distance,
            margin=margin,
            agree=agree,
            reason="; ".join(reasons),
            runner_up=self.phrases[runner] if runner is not None else None,
            hypotheses=flat,
        )
