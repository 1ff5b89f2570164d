"""Two-stage grammar for commands with a number in them.

Setting brightness or a temperature expands into one phrase per value and per
way of saying the number: 147 of the 198 phrases of the benchmark home, each
bringing its number words ("스물", "열아홉", "쉰"...) into vosk's grammar. vosk
glues words of different phrases together, so those number words turn up
inside every other command as well. The first pass therefore hears each
numeric command with one representative value only ("부엌 조명 밝기 오십
퍼센트" for every brightness of the kitchen). When it picks such a family, a
second pass decodes the same utterance again with only that family's phrases,
which finds the value.

benchmarks/voice.py, before -> after: right command ranked first 66.7% ->
70.8%; command accuracy 48.2% -> 49.4%; p95 end-of-speech -> intent 138 ->
692 ms (the second pass decodes the utterance again); wrong home actions
1 -> 0 of 192 (with :func:`value_rule`). The first pass also stays small when a
home has many dimmable lights.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from vehicle_agent.voice.engine import Engine
from vehicle_agent.voice.matcher import Match, MatchConfig, Phrase, PhraseMatcher
from vehicle_agent.voice.recognizer import GrammarDecoder

# A slot whose value is a number, inside a phrase key "Intent(slot=value,...)".
_NUMERIC_SLOT = re.compile(r"=(-?\d+(?:\.\d+)?)(?=[,)])")
# Families this small stay in the first pass as they are.
MIN_FAMILY = 4


def family_key(key: str) -> str | None:
    """The key with its numeric slot values replaced by ``#``; None if it has none."""
    family = _NUMERIC_SLOT.sub("=#", key)
    return family if family != key else None


def _values(key: str) -> tuple[float, ...]:
    return tuple(float(v) for v in _NUMERIC_SLOT.findall(key))


@dataclass(frozen=True, kw_only=True)
class SplitGrammar:
    """The first-pass phrases and, per numeric family, every phrase of it."""

    first: list[Phrase]  # representatives carry the family key
    families: dict[str, list[Phrase]]  # family key -> phrases with their real keys


def split_numeric(phrases: Sequence[Phrase], *, min_family: int = MIN_FAMILY) -> SplitGrammar:
    """Split *phrases* into a first pass and second-pass families (see the module docstring).

    The representative of a family is its median value, in every wording the
    grammar has for it (both "오십" and "쉰" for 50).
    """
    grouped: dict[str, list[Phrase]] = {}
    for p in phrases:
        family = family_key(p.key)
        if family is not None:
            grouped.setdefault(family, []).append(p)
    families = {f: ps for f, ps in grouped.items() if len(ps) >= min_family}
    first: list[Phrase] = []
    representative: dict[str, tuple[float, ...]] = {}
    for family, members in families.items():
        values = sorted({_values(p.key) for p in members})
        representative[family] = values[(len(values) - 1) // 2]
    for p in phrases:
        family = family_key(p.key)
        if family is None or family not in families:
            first.append(p)
        elif _values(p.key) == representative[family]:
            first.append(Phrase(spoken=p.spoken, text=p.text, key=family))
    return SplitGrammar(first=first, families=families)


class ValuePass:
    """Second-pass decoders, one per numeric family, built on first use and kept.

    Decoding and building run in *executor* (vosk recognizers are not thread-safe,
    and building one compiles its grammar): never on the event loop.
    """

    def __init__(
        self,
        model: Engine,
        families: dict[str, list[Phrase]],
        *,
        speeds: Sequence[float],
        n_best: int,
        highpass_hz: float | None,
        match: MatchConfig,
    ) -> None:
        self._model = model
        self.families = families
        self._speeds = tuple(speeds)
        self._n_best = n_best
        self._highpass_hz = highpass_hz
        self._match = value_rule(match)
        self._built: dict[str, tuple[GrammarDecoder, PhraseMatcher]] = {}
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vosk-values")

    def _decoder(self, family: str) -> tuple[GrammarDecoder, PhraseMatcher]:
        built = self._built.get(family)
        if built is None:
            members = self.families[family]
            decoder = GrammarDecoder(
                self._model,
                [p.spoken for p in members],
                speeds=self._speeds,
                n_best=self._n_best,
                highpass_hz=self._highpass_hz,
                executor=self._executor,
            )
            built = self._built[family] = (decoder, PhraseMatcher(members, self._match))
        return built

    def match_blocking(self, family: str, pcm: bytes) -> Match:
        """Decode *pcm* with the family's phrases only (blocking)."""
        decoder, matcher = self._decoder(family)
        return matcher.match(decoder.decode_blocking(pcm))

    async def match(self, family: str, pcm: bytes) -> Match:
        """The family's best phrase for the utterance *pcm*, decided in the worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.match_blocking, family, pcm)

    def close(self) -> None:
        """Stop the worker thread."""
        self._executor.shutdown(wait=False)


def value_rule(config: MatchConfig) -> MatchConfig:
    """The second pass's decision rule: stricter than the first pass's.

    Every pass of the second stage is forced onto the family, so passes that
    agree on a near phrase say less than they do in the first pass; and the
    values differ by a syllable or two ("오십" / "육십"), the case the margin
    exemption for unanimous near-exact phrases would wave through. So: at least
    two passes must pick the value themselves, and the margin always applies.
    In the benchmark this refused both wrong values it had accepted (50 % heard
    as 10 % and 90 %) and kept all four right ones; six cases, so a judgement,
    not a fit.
    """
    return replace(config, min_agree=max(config.min_agree, 2), sure_distance=-1.0)


def combine(first: Match, second: Match) -> Match:
    """The verdict of both passes: the second pass's phrase, accepted only if both were."""
    reasons = [f"first pass: {first.reason}" if first.reason else "", second.reason]
    return replace(
        second,
        accepted=first.accepted and second.accepted,
        reason="; ".join(r for r in reasons if r),
        hypotheses=first.hypotheses + second.hypotheses,
    )
