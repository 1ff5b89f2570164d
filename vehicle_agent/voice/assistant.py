"""The voice assistant: utterance in, intent out, answer spoken.

Flow for one utterance: grammar decoding (several passes) -> phrase matching
with verification -> hassil intent -> car answer from the state store, or a
``voice_request`` to the home -> reply spoken. :meth:`VoiceAssistant.listen`
adds activation (wake phrase or push-to-talk) and end of speech (VAD) for a
live audio source.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vehicle_agent.voice.answers import CarAnswers, StateReader
from vehicle_agent.voice.audio import FRAME_MS, AudioSource, HighPass, split_frames
from vehicle_agent.voice.confirm import (
    ANSWERS,
    NO_KEY,
    YES_KEY,
    PendingAction,
    needs_confirmation,
)
from vehicle_agent.voice.engine import Engine
from vehicle_agent.voice.errors import HomeUnavailableError
from vehicle_agent.voice.grammar import Grammar, build_grammar
from vehicle_agent.voice.home import HomeRequester
from vehicle_agent.voice.intents import IntentMatch, SentenceSet
from vehicle_agent.voice.matcher import Match, MatchConfig, PhraseMatcher
from vehicle_agent.voice.model import VoiceModel
from vehicle_agent.voice.numeric_split import (
    MIN_FAMILY,
    SplitGrammar,
    ValuePass,
    combine,
    split_numeric,
)
from vehicle_agent.voice.recognizer import DEFAULT_HIGHPASS_HZ, FreeFormDecoder, GrammarDecoder
from vehicle_agent.voice.replies import reply
from vehicle_agent.voice.second_pass import MIN_MARGIN, rivals
from vehicle_agent.voice.tts import NullTts, TtsEngine
from vehicle_agent.voice.vad import EnergyVad, VadConfig, VadEvent
from vehicle_agent.voice.wake import PushToTalk, WakeDetector

_LOGGER = logging.getLogger(__name__)

PRE_ROLL_MS = 300


class OutcomeKind(enum.StrEnum):
    """What happened to an utterance."""

    CAR = "car"  # answered in the car
    HOME = "home"  # carried out (or answered) by the home
    HOME_FAILED = "home_failed"  # the home answered with success=false
    HOME_UNAVAILABLE = "home_unavailable"  # not connected / no reply: nothing queued
    REJECTED = "rejected"  # not understood: no action
    CONFIRM = "confirm"  # a door or lock action: asked "...?", waiting for "yes"
    CANCELLED = "cancelled"  # the driver said "no" (or something else) to the question


@dataclass(frozen=True, kw_only=True)
class VoiceConfig:
    """Voice settings (from the command line or the agent config)."""

    language: str | None = None  # default: the model's language
    wake_phrase: str | None = None  # default per language; "" disables the wake phrase
    speeds: tuple[float, ...] | None = (
        None  # default: the engine's (4 for vosk, 1 for pocketsphinx)
    )
    highpass_hz: float | None = DEFAULT_HIGHPASS_HZ  # None: no cabin-rumble filter
    n_best: int = 5
    match: MatchConfig = field(default_factory=MatchConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    home_timeout_s: float = 8.0
    free_form_fallback: bool = False  # rejected utterances go to the home's LLM agent
    free_form_min_confidence: float = 0.85
    listen_timeout_s: float = 6.0  # after the wake phrase / button, wait this long for speech


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """The result of one utterance."""

    kind: OutcomeKind
    reply: str
    text: str = ""  # what was understood (template sentence or free-form text)
    intent: IntentMatch | None = None
    match: Match | None = None
    decode_s: float = 0.0  # end of speech -> decision


@dataclass(frozen=True)
class _Built:
    """Everything built from one vocabulary, swapped in at once."""

    grammar: Grammar
    split: SplitGrammar
    decoder: GrammarDecoder
    matcher: PhraseMatcher
    values: ValuePass


class VoiceAssistant:
    """Recognises utterances, answers car questions, forwards home requests."""

    def __init__(
        self,
        model: Engine,
        *,
        state: StateReader,
        home: HomeRequester | None = None,
        tts: TtsEngine | None = None,
        config: VoiceConfig | None = None,
        sentences: SentenceSet | None = None,
    ) -> None:
        self.config = config or VoiceConfig()
        self.model = model
        self.language = self.config.language or model.language
        self.speeds = self.config.speeds or model.default_speeds
        self.sentences = sentences or SentenceSet(self.language)
        self.answers = CarAnswers(state, self.language)
        self.home = home
        self.tts: TtsEngine = tts or NullTts()
        self._pending: PendingAction | None = None
        self._free_form = (
            FreeFormDecoder(model)
            if self.config.free_form_fallback and isinstance(model, VoiceModel)
            else None
        )
        if self.config.free_form_fallback and self._free_form is None:
            _LOGGER.warning("free-form fallback needs a vosk model; %s has none", model.name)
        self.grammar: Grammar
        self.split: SplitGrammar
        self._decoder: GrammarDecoder
        self._matcher: PhraseMatcher
        self._values: ValuePass
        self._install(self._build())

    # --- grammar ---

    def _build(self) -> _Built:
        grammar = build_grammar(
            self.sentences,
            self.model.knows,
            guess=self.model.guess,
            extra=ANSWERS.get(self.language, ()),
        )
        # A strict finite-state grammar keeps every value in the first pass.
        split = split_numeric(
            grammar.phrases, min_family=MIN_FAMILY if self.model.needs_value_pass else 10**9
        )
        decoder = GrammarDecoder(
            self.model,
            [p.spoken for p in split.first],
            speeds=self.speeds,
            n_best=self.config.n_best,
            highpass_hz=self.config.highpass_hz,
        )
        values = ValuePass(
            self.model,
            split.families,
            speeds=self.speeds,
            n_best=self.config.n_best,
            highpass_hz=self.config.highpass_hz,
            match=self.config.match,
        )
        matcher = PhraseMatcher(split.first, self.config.match)
        return _Built(grammar, split, decoder, matcher, values)

    def _install(self, built: _Built) -> None:
        old = getattr(self, "_decoder", None)
        old_values = getattr(self, "_values", None)
        self.grammar, self.split = built.grammar, built.split
        self._decoder, self._matcher, self._values = built.decoder, built.matcher, built.values
        if old_values is not None:
            old_values.close()
        if old is not None:
            old.close()
        _LOGGER.info(
            "voice grammar (%s): %d phrases (%d words rewritten, %d guessed, %d left out)",
            self.model.name,
            len(self.grammar.phrases),
            len(self.grammar.rewritten),
            len(self.grammar.guessed),
            len(self.grammar.dropped),
        )

    async def update_vocabulary(self, body: dict[str, Any]) -> bool:
        """Apply a ``vocabulary`` message; False (logged, grammar unchanged) if it is bad."""
        entities, areas = body.get("entities"), body.get("areas")
        if not isinstance(entities, list) or not isinstance(areas, list):
            _LOGGER.warning("ignoring a malformed vocabulary message: %r", body)
            return False
        language = body.get("language")
        if isinstance(language, str) and language.split("-")[0] != self.language:
            _LOGGER.info(
                "vocabulary in %s, voice runs in %s: names used as given", language, self.language
            )
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.set_vocabulary_blocking, entities, areas)
        except Exception:
            _LOGGER.exception("cannot rebuild the voice grammar; keeping the old one")
            return False
        return True

    def set_vocabulary_blocking(self, entities: list[object], areas: list[object]) -> None:
        """Rebuild the grammar with the home's names (blocking: seconds on a big home)."""
        old = (list(self.sentences.entities), list(self.sentences.areas))
        self.sentences.set_vocabulary(entities, areas)
        try:
            built = self._build()
        except Exception:
            self.sentences.set_vocabulary(*old)
            raise
        self._install(built)

    # --- one utterance ---

    async def begin(self) -> None:
        """Start an utterance (the decoder is reusable; nothing to do but log)."""
        _LOGGER.debug("utterance started")

    async def feed(self, pcm: bytes) -> None:
        """Audio of the current utterance (decoded in the worker thread as it comes)."""
        await self._decoder.accept(pcm)

    async def end(self, pcm: bytes = b"", *, speak: bool = True) -> Outcome:
        """End of speech: decide, act and (by default) speak the reply.

        *pcm* is the whole utterance, needed for the value pass of numeric
        commands and for the free-form fallback.
        """
        start = time.perf_counter()
        passes = await self._decoder.finish()
        match = self._matcher.match(passes)
        family = match.phrase.key if match.phrase is not None else None
        if family in self.split.families:
            assert family is not None
            if pcm:
                match = combine(match, await self._values.match(family, pcm))
            else:  # nothing to decode the value from: never act on a representative
                match = replace(match, accepted=False, reason="no audio for the value pass")
        match = await self._second_pass(match, pcm)
        outcome = await self._decide(match, pcm, start)
        if speak:
            await self.tts.speak(outcome.reply, self.language)
        return outcome

    async def _second_pass(self, match: Match, pcm: bytes) -> Match:
        """Refuse an action whose opposite or other value fits as well (second_pass.py)."""
        rescore = getattr(self.model, "rescore", None)
        if rescore is None or not pcm or not match.accepted or not match.action:
            return match
        assert match.phrase is not None
        others = rivals(match.phrase, self.grammar.phrases, self.language)
        if not others:
            return match
        audio = HighPass(self.config.highpass_hz).process(pcm) if self.config.highpass_hz else pcm
        loop = asyncio.get_running_loop()
        margin = await loop.run_in_executor(None, rescore, audio, match.phrase.spoken, others)
        if margin > MIN_MARGIN:
            return match
        return replace(
            match, accepted=False, reason=f"second pass: a rival fits as well ({margin:.6f})"
        )

    async def handle_pcm(self, pcm: bytes, *, speak: bool = True) -> Outcome:
        """Recognise and handle one whole utterance (16 kHz mono int16)."""
        await self.begin()
        for chunk in split_frames(pcm, 4000):
            await self.feed(chunk)
        return await self.end(pcm, speak=speak)

    async def _decide(self, match: Match, pcm: bytes, start: float) -> Outcome:
        intent = None
        pending, self._pending = self._pending, None
        key = match.phrase.key if match.accepted and match.phrase is not None else None
        if key in (YES_KEY, NO_KEY):
            decode_s = time.perf_counter() - start
            if pending is not None and key == YES_KEY and not pending.expired():
                _LOGGER.info("confirmed %r", pending.intent.text)
                return await self._home(pending.intent.text, pending.intent, match, decode_s)
            if pending is not None:
                _LOGGER.info("cancelled %r", pending.intent.text)
                return Outcome(
                    kind=OutcomeKind.CANCELLED,
                    reply=reply(self.language, "cancelled"),
                    match=match,
                    decode_s=decode_s,
                )
        elif match.accepted and match.phrase is not None:
            intent = self.sentences.recognize(match.phrase.text)
        if pending is not None:
            _LOGGER.info("no answer to %r: not carried out", pending.intent.text)
        decode_s = time.perf_counter() - start
        if intent is None:
            _LOGGER.info(
                "not understood (%s): %s", match.reason or "no intent", match.hypotheses[:3]
            )
            free = await self._free_form_text(pcm)
            if free is not None:
                return await self._home(free, None, match, decode_s)
            return Outcome(
                kind=OutcomeKind.REJECTED,
                reply=reply(self.language, "not_understood"),
                match=match,
                decode_s=decode_s,
            )
        _LOGGER.info("understood %r -> %s", intent.text, intent.key)
        if intent.is_car:
            return Outcome(
                kind=OutcomeKind.CAR,
                reply=self.answers.answer(intent),
                text=intent.text,
                intent=intent,
                match=match,
                decode_s=decode_s,
            )
        if needs_confirmation(intent, self.language):
            self._pending = PendingAction(intent=intent, asked_at=time.monotonic())
            return Outcome(
                kind=OutcomeKind.CONFIRM,
                reply=reply(self.language, "confirm", text=_sentence_case(intent.text)),
                text=intent.text,
                intent=intent,
                match=match,
                decode_s=decode_s,
            )
        return await self._home(intent.text, intent, match, decode_s)

    async def _free_form_text(self, pcm: bytes) -> str | None:
        if self._free_form is None or not pcm:
            return None
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, self._free_form.decode_blocking, pcm)
        if result.text and result.confidence >= self.config.free_form_min_confidence:
            return result.text
        return None

    async def _home(
        self, text: str, intent: IntentMatch | None, match: Match, decode_s: float
    ) -> Outcome:
        def outcome(kind: OutcomeKind, said: str) -> Outcome:
            return Outcome(
                kind=kind, reply=said, text=text, intent=intent, match=match, decode_s=decode_s
            )

        if self.home is None or not self.home.is_connected:
            return outcome(OutcomeKind.HOME_UNAVAILABLE, reply(self.language, "home_unreachable"))
        try:
            answer = await self.home.request(
                text, self.language, timeout=self.config.home_timeout_s
            )
        except HomeUnavailableError as exc:
            key = "home_timeout" if "time" in str(exc) else "home_unreachable"
            return outcome(OutcomeKind.HOME_UNAVAILABLE, reply(self.language, key))
        if not answer.success:
            return outcome(
                OutcomeKind.HOME_FAILED, reply(self.language, "home_failed", text=answer.text)
            )
        return outcome(OutcomeKind.HOME, answer.text)

    # --- live listening ---

    async def listen(
        self,
        source: AudioSource,
        *,
        wake: WakeDetector | None = None,
        ptt: PushToTalk | None = None,
        outcomes: asyncio.Queue[Outcome] | None = None,
        max_utterances: int | None = None,
    ) -> int:
        """Run activation -> utterance -> answer over *source* until it ends.

        Without *wake* every utterance is handled (a source that is already
        push-to-talk gated, e.g. the demo inbox). Returns utterances handled.
        """
        vad = EnergyVad(self.config.vad)
        pre_roll: list[bytes] = []
        pre_frames = PRE_ROLL_MS // FRAME_MS
        armed = wake is None  # listening for a command (not for the wake phrase)
        armed_until = float("inf")
        in_segment = False
        segment: list[bytes] = []
        handled = 0
        now = 0.0  # audio time, seconds
        async for frame in source.chunks():
            now += len(frame) / 32000
            if ptt is not None and ptt.pressed and not armed:
                armed, armed_until = True, now + self.config.listen_timeout_s
            event = vad.process(frame)
            if event is VadEvent.SPEECH_START:
                in_segment = True
                segment = [*pre_roll, frame]
                if armed:
                    await self.begin()
                    for f in segment:
                        await self.feed(f)
                elif wake is not None:
                    for f in segment:
                        await wake.accept(f)
            elif in_segment and event is VadEvent.NONE:
                segment.append(frame)
                await (self.feed(frame) if armed else wake.accept(frame) if wake else _nothing())
            elif in_segment and event is VadEvent.SPEECH_END:
                in_segment = False
                if armed:
                    outcome = await self.end(b"".join(segment))
                    handled += 1
                    if outcomes is not None:
                        outcomes.put_nowait(outcome)
                    # A question to the driver ("Unlock the front door?") needs no wake phrase.
                    armed = wake is None or outcome.kind is OutcomeKind.CONFIRM
                    armed_until = now + self.config.listen_timeout_s
                    if max_utterances is not None and handled >= max_utterances:
                        return handled
                elif wake is not None and await wake.finish():
                    _LOGGER.info("wake phrase heard")
                    await self.tts.speak(reply(self.language, "wake"), self.language)
                    armed, armed_until = True, now + self.config.listen_timeout_s
            if armed and wake is not None and not in_segment and now > armed_until:
                armed = False  # nobody spoke after the wake phrase
            pre_roll.append(frame)
            del pre_roll[:-pre_frames]
        if in_segment and armed:
            with contextlib.suppress(Exception):
                await self.end(b"".join(segment))
        return handled

    def close(self) -> None:
        """Release worker threads."""
        self._decoder.close()
        self._values.close()


async def _nothing() -> None:
    return None


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def outcome_summary(outcome: Outcome) -> dict[str, Any]:
    """JSON-friendly view of an outcome (CLI, journal)."""
    m = outcome.match
    return {
        "kind": str(outcome.kind),
        "text": outcome.text,
        "intent": outcome.intent.name if outcome.intent else None,
        "slots": outcome.intent.slots if outcome.intent else {},
        "reply": outcome.reply,
        "distance": round(m.distance, 3) if m else None,
        "margin": round(m.margin, 3) if m else None,
        "agree": m.agree if m else None,
        "reason": m.reason if m else "",
        "hypotheses": list(m.hypotheses[:3]) if m else [],
    }


__all__: Sequence[str] = (
    "Outcome",
    "OutcomeKind",
    "VoiceAssistant",
    "VoiceConfig",
    "outcome_summary",
)
