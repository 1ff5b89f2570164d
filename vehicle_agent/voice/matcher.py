"""Phrase-level matching of recogniser n-best lists onto whole grammar phrases.

vosk turns a phrase list into a bigram language model, so its best path often
glues pieces of different phrases together, and a model without ``[unk]``
forces any speech onto some words. Instead of trusting the top string we
compare every n-best hypothesis of every decoding pass with every grammar
phrase by edit distance over sound units (Korean as pronounced, with cheaper
swaps between sounds the model confuses: see :mod:`vehicle_agent.voice.sound_units`;
letters otherwise).

Two numbers per meaning (phrase key) come out of that:

* distance: per pass the closest hypothesis, averaged over the passes but the
  worst one. The closest meaning is the candidate.
* support: evidence summed over all passes and all n-best alternatives, each
  alternative weighted by its share of vosk's own score within its pass
  (softmax of the alternatives' ``confidence``) and counted by how close it is
  to the phrase (1 at distance 0, nothing from ``support_distance`` on);
  divided by the number of passes, so 1.0 means every alternative of every
  pass spelled the phrase exactly. Unlike top-1 votes this keeps the second
  and third guesses of each pass, which is where a noisy pass keeps the truth.

The candidate is accepted by the rule of its class: home ACTIONS (turn on/off,
open/close, set) need more support and a wider support margin over the best
different meaning than QUESTIONS (car questions, home state questions), since
a wrong answer is harmless and a wrong action is not. Everything else is
"sorry, I did not catch that". The thresholds come from the sweep in
benchmarks/voice.py over all its rows (it also reports them tuned on one voice
and checked on the other two). Of the rules that accept none of the 24
out-of-grammar utterances, the action rule is the one the sweep picked (its
margin 0.15 refuses a "켜" heard as "꺼" that 0.10 let through); the question
rule keeps a small margin (0.03) where the sweep allowed none, at 1 point of
accuracy on that run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from vehicle_agent.voice.sound_units import HANGUL_UNITS, sound_units, substitution_cost


@dataclass(frozen=True, kw_only=True)
class Phrase:
    """One grammar phrase: what vosk is given, what it means."""

    spoken: str  # words in the model's vocabulary, space separated (given to vosk)
    text: str  # the sentence as written in the templates (given to hassil / the home)
    key: str  # phrases with the same key mean the same thing (intent + slots)


Hypothesis = tuple[str, float]  # an n-best alternative: text and vosk's score for it

# Intents that change something at home; everything else only asks.
ACTION_INTENTS: tuple[str, ...] = (
    "HassTurnOn",
    "HassTurnOff",
    "HassLightSet",
    "HassClimateSetTemperature",
)


@dataclass(frozen=True, kw_only=True)
class AcceptRule:
    """What a candidate of one class needs to be accepted."""

    max_distance: float  # edits per unit of the phrase
    min_support: float  # summed n-best evidence (0..1, see the module docstring)
    min_margin: float  # support of the candidate minus support of the best other meaning


@dataclass(frozen=True, kw_only=True)
class MatchConfig:
    """Decision thresholds (from the benchmark sweep; see benchmarks/results/voice.json)."""

    n_best: int = 5
    question: AcceptRule = AcceptRule(max_distance=0.55, min_support=0.1, min_margin=0.03)
    action: AcceptRule = AcceptRule(max_distance=0.35, min_support=0.2, min_margin=0.15)
    action_intents: tuple[str, ...] = ACTION_INTENTS
    confidence_temperature: float = 1.0  # softmax temperature over vosk's alternative scores
    support_distance: float = 0.5  # a hypothesis this far from a phrase supports it no more
    # Optional top-1 checks (the wake detector uses them): passes whose own best
    # meaning is the candidate, and the distance gap to the best other meaning.
    min_agree: int = 0
    min_distance_margin: float = 0.0
    # A near-exact phrase that every pass chose needs no margin (support or distance):
    # "켜" and "꺼" differ by one near sound (ㅋ/ㄲ), so "turn on" and "turn off"
    # always share support.
    sure_distance: float = 0.15

    def rule_for(self, key: str) -> AcceptRule:
        """The rule for a phrase key (``Intent(slots)``)."""
        return self.action if key.startswith(self.action_intents) else self.question


@dataclass(frozen=True, kw_only=True)
class Match:
    """The matcher's verdict on one utterance."""

    phrase: Phrase | None  # the best phrase, even when rejected
    accepted: bool
    distance: float
    margin: float  # support margin over the best different meaning
    agree: int
    support: float = 0.0
    action: bool = False  # judged by the stricter rule for home actions
    unanimous: bool = False  # near-exact and every pass's own choice: no margin needed
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
        # Every Hangul sound has a code from the start: a hypothesis may contain
        # sounds no phrase has, and those still cost less against their near ones.
        self._alphabet: dict[str, int] = {u: i for i, u in enumerate(HANGUL_UNITS)}
        encoded = [self._encode(sound_units(p.spoken)) for p in self.phrases]
        self._lengths = np.array([max(len(e), 1) for e in encoded], dtype=np.int32)
        width = int(self._lengths.max())
        unknown = len(self._alphabet)  # padding, and hypothesis sounds outside the alphabet
        self._codes = np.full((len(encoded), width), unknown, dtype=np.int32)
        for i, e in enumerate(encoded):
            self._codes[i, : len(e)] = e
        units = list(self._alphabet)
        self._cost = np.ones((unknown + 1, unknown + 1), dtype=np.float64)
        for i, a in enumerate(units):
            for j, b in enumerate(units):
                self._cost[i, j] = substitution_cost(a, b)
        self._unknown = unknown
        self._keys = [p.key for p in self.phrases]
        self._cache: dict[str, npt.NDArray[np.float64]] = {}

    def _encode(self, units: list[str], *, grow: bool = True) -> list[int]:
        out = []
        for u in units:
            code = self._alphabet.get(u)
            if code is None:
                if not grow:
                    code = self._unknown  # costs 1 against every phrase sound
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
            sub = row[:, :-1] + self._cost[self._codes, code]
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

    def match(self, passes: Sequence[Sequence[str | Hypothesis]]) -> Match:
        """Decide on one utterance from the n-best alternatives of each decoding pass.

        An alternative is ``(text, score)`` (vosk's ``confidence``) or plain text
        (all alternatives of a pass then weigh the same).
        """
        cfg = self.config
        cleaned = [[_hypothesis(h) for h in p[: cfg.n_best]] for p in passes if p]
        flat = tuple(t for p in cleaned for t, _ in p)
        if not any(t.strip() for t in flat):
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
        support = np.zeros(len(self.phrases))
        for hyps in cleaned:
            dists = np.stack([self.distances(t) for t, _ in hyps])
            per_pass.append(dists.min(axis=0))
            scores = np.array([s for _, s in hyps], dtype=np.float64)
            weights = np.exp((scores - scores.max()) / cfg.confidence_temperature)
            weights /= weights.sum()
            closeness = np.clip(1.0 - dists / cfg.support_distance, 0.0, None)
            # An alternative is evidence for the meaning it spells, not for its
            # one-jamo neighbours ("켜 줘" says nothing for "꺼 줘"): it only
            # supports the phrases nearest to it.
            closeness[dists > dists.min(axis=1, keepdims=True)] = 0.0
            support += weights @ closeness
        support /= len(cleaned)
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
        distance_margin = float(total[runner] - total[best]) if runner is not None else 1.0
        same = np.array([k == best_key for k in self._keys])
        key_support = float(support[same].max())
        other_support = float(support[~same].max()) if (~same).any() else 0.0
        margin = key_support - other_support
        agree = sum(1 for d in per_pass if self._keys[int(np.argmin(d))] == best_key)
        rule = cfg.rule_for(best_key)
        reasons = []
        if distance > rule.max_distance:
            reasons.append(f"distance {distance:.2f} > {rule.max_distance:.2f}")
        if key_support < rule.min_support:
            reasons.append(f"support {key_support:.2f} < {rule.min_support:.2f}")
        unanimous = agree == len(cleaned) and distance <= cfg.sure_distance
        if margin < rule.min_margin and not unanimous:
            reasons.append(f"margin {margin:.2f} < {rule.min_margin:.2f}")
        if distance_margin < cfg.min_distance_margin and not unanimous:
            reasons.append(f"distance margin {distance_margin:.2f} < {cfg.min_distance_margin:.2f}")
        if agree < min(cfg.min_agree, len(cleaned)):
            reasons.append(f"{agree} of {len(cleaned)} passes agree")
        return Match(
            phrase=self.phrases[best],
            accepted=not reasons,
            distance=distance,
            margin=margin,
            agree=agree,
            support=key_support,
            action=best_key.startswith(cfg.action_intents),
            unanimous=unanimous,
            reason="; ".join(reasons),
            runner_up=self.phrases[runner] if runner is not None else None,
            hypotheses=flat,
        )


def _hypothesis(h: str | Hypothesis) -> Hypothesis:
    return (h, 0.0) if isinstance(h, str) else (str(h[0]), float(h[1]))
