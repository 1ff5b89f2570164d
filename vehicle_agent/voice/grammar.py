"""The recognition grammar: template sentences rewritten into the model's vocabulary.

vosk silently drops grammar words it does not know, which turns "거실 불 꺼줘"
(turn the light off) into "거실 불" - a different request. So every phrase is
checked word by word at build time: digits become number words, unknown words
are split into known pieces ("꺼줘" -> "꺼 줘", which sounds the same), and a
phrase that still has an unknown word is left out and logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from unicode_rbnf import RbnfEngine

from vehicle_agent.voice.errors import GrammarError
from vehicle_agent.voice.intents import SentenceSet
from vehicle_agent.voice.matcher import Phrase

_LOGGER = logging.getLogger(__name__)

_PUNCT = re.compile(r"[^\w\s%'-]")
_NUMBER = re.compile(r"\d+")
_RBNF_LANG = {"zh": "zh", "ko": "ko", "en": "en"}
_PERCENT_WORD = {"en": "percent", "ko": "퍼센트", "zh": "百分之"}

KnowsWord = Callable[[str], bool]


@dataclass(kw_only=True)
class Grammar:
    """Phrases ready for vosk, and what the vocabulary check did."""

    phrases: list[Phrase]
    rewritten: dict[str, str] = field(default_factory=dict)  # word -> pieces
    dropped: list[str] = field(default_factory=list)  # sentences with unknown words
    guessed: list[str] = field(default_factory=list)  # words given a made-up pronunciation

    @property
    def spoken(self) -> list[str]:
        """The phrase list for vosk."""
        return sorted({p.spoken for p in self.phrases})


class VocabularyChecker:
    """Rewrites text into words a model knows (see the module docstring)."""

    def __init__(
        self,
        knows: KnowsWord,
        language: str,
        *,
        lowercase: bool = True,
        guess: KnowsWord | None = None,
    ) -> None:
        self._knows = knows
        self._guess = guess
        self.language = language
        self._lowercase = lowercase
        self.rewritten: dict[str, str] = {}
        self.guessed: list[str] = []

    def words(self, text: str) -> list[str] | None:
        """Known words for *text*, or None if some word cannot be expressed."""
        text = _percent_words(text, self.language)
        text = _numbers_to_words(text, self.language)
        text = _PUNCT.sub(" ", text)
        if self._lowercase:
            text = text.lower()
        out: list[str] = []
        for word in text.split():
            if self._knows(word):
                out.append(word)
                continue
            parts = [w for w in word.split("-") if w]
            # "twenty-one" is said as its parts.
            pieces = parts if len(parts) > 1 and all(map(self._knows, parts)) else None
            # An engine that can take a guessed pronunciation gets the whole
            # word: "sonoff" split into known words would be "son off".
            if pieces is None and self._guess is not None and self._guess(word):
                # The engine took a made-up pronunciation (and logged it).
                self.guessed.append(word)
                out.append(word)
                continue
            pieces = pieces or self._split(word)
            if pieces is None:
                return None
            if word not in self.rewritten:
                self.rewritten[word] = " ".join(pieces)
                _LOGGER.info("grammar: %r is not in the model; using %r", word, " ".join(pieces))
            out.extend(pieces)
        return out

    def _split(self, word: str) -> list[str] | None:
        """Fewest known pieces that spell *word* (ties: longest first piece)."""
        n = len(word)
        best: list[list[str] | None] = [None] * (n + 1)
        best[n] = []
        for start in range(n - 1, -1, -1):
            for end in range(n, start, -1):
                rest = best[end]
                piece = word[start:end]
                if rest is None or not self._knows(piece):
                    continue
                candidate = [piece, *rest]
                current = best[start]
                if current is None or len(candidate) < len(current):
                    best[start] = candidate
        return best[0]


def build_grammar(
    sentences: SentenceSet,
    knows: KnowsWord,
    *,
    extra: Iterable[tuple[str, str]] = (),
    max_phrases: int = 4000,
    guess: KnowsWord | None = None,
) -> Grammar:
    """Expand the templates (with the home's names) into checked phrases.

    *extra* adds ``(key, text)`` phrases that are not intents (wake phrase,
    fillers). Each phrase's key is its intent and slots as hassil reads the
    original sentence, so different wordings of one request share a key.
    *guess* may add a word the model lacks (pocketsphinx can; vosk cannot).
    """
    checker = VocabularyChecker(knows, sentences.language, guess=guess)
    phrases: list[Phrase] = []
    dropped: list[str] = []
    seen: set[str] = set()
    items: list[tuple[str | None, str]] = [(None, text) for _, text in sentences.sample()]
    items += [(key, text) for key, text in extra]
    for key, text in items:
        text = " ".join(text.split())
        words = checker.words(text)
        if words is None or not words:
            dropped.append(text)
            continue
        spoken = " ".join(words)
        if spoken in seen:
            continue
        if key is None:
            match = sentences.recognize(text)
            if match is None:  # a template hassil cannot read back: skip it
                dropped.append(text)
                continue
            key = match.key
        seen.add(spoken)
        phrases.append(Phrase(spoken=spoken, text=text, key=key))
        if len(phrases) >= max_phrases:
            _LOGGER.warning("grammar capped at %d phrases", max_phrases)
            break
    if dropped:  # one line: a home with names in another language drops hundreds
        _LOGGER.warning(
            "grammar: left out %d phrases with words missing from the model, e.g. %s",
            len(dropped),
            ", ".join(repr(t) for t in dropped[:3]),
        )
    if not phrases:
        raise GrammarError("no sentence survived the vocabulary check")
    return Grammar(
        phrases=phrases,
        rewritten=dict(checker.rewritten),
        dropped=dropped,
        guessed=list(checker.guessed),
    )


_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
# hassil's samples spell numbers in words too ("二十%", "贰拾%", "廿%").
_ZH_PERCENT = re.compile(
    r"(\d+(?:\.\d+)?|[零〇一二三四五六七八九十百千两廿卅初壹贰叁肆伍陆柒捌玖拾佰仟]+)\s*%"
)


def _percent_words(text: str, language: str) -> str:
    """ "50%" in words: "50 percent", "50 퍼센트", but "百分之50" (Chinese says the
    percent first; home-assistant-intents writes "百分之{brightness}")."""
    word = _PERCENT_WORD.get(language, "percent")
    if language == "zh":
        text = _ZH_PERCENT.sub(lambda m: f" {word}{m.group(1)} ", text)
    else:
        text = _PERCENT.sub(lambda m: f"{m.group(1)} {word} ", text)
    return text.replace("%", f" {word} ")


def _numbers_to_words(text: str, language: str) -> str:
    engine = _rbnf(_RBNF_LANG.get(language, "en"))
    if engine is None:
        return text

    def spell(m: re.Match[str]) -> str:
        try:
            return f" {engine.format_number(int(m.group())).text} "
        except Exception:  # a number rbnf cannot spell: keep the digits (checked later)
            return m.group()

    return _NUMBER.sub(spell, text)


@lru_cache(maxsize=4)
def _rbnf(language: str) -> RbnfEngine | None:
    try:
        return RbnfEngine.for_language(language)
    except Exception:  # no rules for this language
        return None
