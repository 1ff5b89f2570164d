"""Plugs voice into ``vehicle-agent run`` (docs/INTERFACES.md, the voice runtime hook).

``attach(runtime, args)`` registers: the ``voice_reply``, ``vocabulary`` and
``notify`` handlers, push-to-talk from the state store, and a task that loads
the model (in a thread) and then serves the audio inputs given:

* ``--voice-inbox DIR``: every ``*.wav`` dropped there is one push-to-talk
  utterance (renamed ``*.done`` after);
* ``--voice-mic [DEVICE]``: live listening on a microphone (sounddevice),
  activated by the wake phrase or the steering-wheel voice button;
* ``--voice-stream FILE``: the same live listening over raw 16 kHz mono
  16-bit PCM read from a file or FIFO (replays, tests, an external capture).

The last vocabulary a home sent is kept in the state directory and used at
the next start, so a car restarted out of reach of home still knows the home's
names and says the home is unreachable rather than "did not catch that".
What the driver hears goes to the journal as ``spoken``; what the car
understood as ``intent``; the home's answer as ``voice_reply``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from bridge.protocol import Envelope, MessageType
from vehicle_agent.voice.assistant import VoiceAssistant, VoiceConfig, outcome_summary
from vehicle_agent.voice.audio import AudioSource, MicrophoneSource, PcmSource, read_wav
from vehicle_agent.voice.engine import Engine, load_engine
from vehicle_agent.voice.errors import VoiceError
from vehicle_agent.voice.home import FirstConnectedHome, HomeLink, HomeRequester
from vehicle_agent.voice.tts import NotificationSpeaker, TtsEngine, make_tts
from vehicle_agent.voice.vocabulary_store import VocabularyError, VocabularyFile, validate
from vehicle_agent.voice.wake import PushToTalk, WakeDetector

_LOGGER = logging.getLogger(__name__)

INBOX_POLL_S = 0.2
# Any of these switches voice on (argparse destinations of `vehicle-agent run`).
VOICE_OPTIONS = ("voice_model", "voice_inbox", "voice_mic", "voice_stream")


class _Journal(Protocol):
    def write(self, kind: str, **fields: object) -> None: ...


class _JournalingTts:
    """Speaks through an engine and records every text in the journal."""

    def __init__(self, engine: TtsEngine, journal: _Journal) -> None:
        self._engine = engine
        self._journal = journal

    async def speak(self, text: str, language: str) -> None:
        self._journal.write("spoken", text=text, language=language)
        await self._engine.speak(text, language)


class VoiceExtension:
    """The voice parts of a running agent (built by :func:`attach`)."""

    def __init__(
        self,
        runtime: Any,  # noqa: ANN401 (AgentRuntime; not imported to keep voice optional)
        args: argparse.Namespace,
        *,
        model: Engine | None = None,
    ) -> None:
        self.runtime = runtime
        self._model = model
        self.language: str = getattr(args, "voice_language", None) or "en"
        self.model_dir: Path | None = getattr(args, "voice_model", None)
        self.engine_name: str = getattr(args, "voice_engine", None) or "auto"
        self.inbox: Path | None = getattr(args, "voice_inbox", None)
        self.mic: str | None = getattr(args, "voice_mic", None)
        self.stream: Path | None = getattr(args, "voice_stream", None)
        self.wake_phrase: str | None = getattr(args, "wake_phrase", None)
        self.free_form = bool(getattr(args, "voice_free_form", False))
        state_dir: Path | None = getattr(args, "state_dir", None)
        self.saved = VocabularyFile(state_dir) if state_dir is not None else None
        self.tts = _JournalingTts(make_tts(getattr(args, "tts", "null") or "null"), runtime.journal)
        links: dict[str, HomeLink] = runtime.links
        self.home = HomeRequester(FirstConnectedHome(links))
        self.ptt = PushToTalk()
        self.assistant: VoiceAssistant | None = None
        self._vocabulary: dict[str, Any] | None = None
        self.notifications = NotificationSpeaker(
            self.tts, lambda path: runtime.store.value(path), language=self.language
        )

    def _load_model(self) -> Engine:
        return load_engine(self.language, self.model_dir, self.engine_name)

    async def on_voice_reply(self, hub_id: str, env: Envelope) -> None:
        self.runtime.journal.write(
            "voice_reply", hub_id=hub_id, text=env.body.get("text"), success=env.body.get("success")
        )
        self.home.on_reply(env.body)

    async def on_vocabulary(self, hub_id: str, env: Envelope) -> None:
        try:
            vocabulary = validate(env.body)
        except VocabularyError as exc:
            _LOGGER.error("ignoring a vocabulary from %s: %s", hub_id, exc)
            return
        self._vocabulary = vocabulary
        if self.saved is not None:
            saved = self.saved
            try:
                await asyncio.get_running_loop().run_in_executor(None, saved.save, vocabulary)
            except OSError as exc:  # a full disk must not cost the live grammar
                _LOGGER.error("cannot save the home vocabulary to %s: %s", saved.path, exc)
        if self.assistant is not None:
            await self.assistant.update_vocabulary(vocabulary)

    async def on_notify(self, hub_id: str, env: Envelope) -> None:
        self.notifications.submit(dict(env.body))

    async def run(self) -> None:
        """Load the model, then serve the inbox and notifications until cancelled."""
        speaker = asyncio.create_task(self.notifications.run())
        try:
            loop = asyncio.get_running_loop()
            try:
                model: Engine = (
                    self._model
                    if self._model is not None
                    else await loop.run_in_executor(None, self._load_model)
                )
                self.assistant = await loop.run_in_executor(
                    None,
                    lambda: VoiceAssistant(
                        model,
                        state=self.runtime.store,
                        home=self.home,
                        tts=self.tts,
                        config=VoiceConfig(
                            language=self.language, free_form_fallback=self.free_form
                        ),
                    ),
                )
            except VoiceError as exc:
                _LOGGER.error("voice disabled: %s", exc)
                await asyncio.Event().wait()
            assert self.assistant is not None
            if self._vocabulary is None and self.saved is not None:
                saved = self.saved
                self._vocabulary = await loop.run_in_executor(None, saved.load)
                if self._vocabulary is not None:
                    _LOGGER.info("voice: home names from %s until a home connects", saved.path)
            if self._vocabulary is not None:
                await self.assistant.update_vocabulary(self._vocabulary)
            _LOGGER.info("voice ready (%s, %s model %s)", self.language, model.name, model.path)
            inputs: list[Coroutine[Any, Any, object]] = []
            if self.inbox is not None:
                inputs.append(self._serve_inbox(self.inbox))
            if self.mic is not None:
                device = None if self.mic == "default" else self.mic
                device_id: int | str | None = int(device) if device and device.isdigit() else device
                inputs.append(self._listen(MicrophoneSource(device_id), "microphone"))
            if self.stream is not None:
                inputs.append(self._listen_stream(self.stream))
            inputs.append(asyncio.Event().wait())  # the handlers keep working without inputs
            await asyncio.gather(*inputs)
        finally:
            speaker.cancel()

    def _wake_detector(self, model: Engine) -> WakeDetector | None:
        """The wake phrase detector; None when ``--wake-phrase ""`` turned it off."""
        if self.wake_phrase == "":
            return None
        try:
            return WakeDetector(model, self.wake_phrase, language=self.language)
        except ValueError as exc:  # words the model does not know: push-to-talk only
            _LOGGER.error("wake phrase disabled: %s; the voice button still works", exc)
            return None

    async def _listen(self, source: AudioSource, name: str) -> None:
        """Live listening (wake phrase or voice button) on one source until it ends."""
        assistant = self.assistant
        assert assistant is not None
        loop = asyncio.get_running_loop()
        wake = await loop.run_in_executor(None, self._wake_detector, assistant.model)
        outcomes: asyncio.Queue[Any] = asyncio.Queue()

        async def journal_outcomes() -> None:
            while True:
                summary = outcome_summary(await outcomes.get())
                summary["outcome"] = summary.pop("kind")
                self.runtime.journal.write("intent", source=name, **summary)

        writer = asyncio.create_task(journal_outcomes())
        try:
            handled = await assistant.listen(source, wake=wake, ptt=self.ptt, outcomes=outcomes)
            _LOGGER.info("voice %s ended after %d utterances", name, handled)
        except VoiceError as exc:  # no microphone: the rest of the agent keeps going
            _LOGGER.error("voice %s unavailable: %s", name, exc)
        finally:
            while not outcomes.empty():
                summary = outcome_summary(outcomes.get_nowait())
                summary["outcome"] = summary.pop("kind")
                self.runtime.journal.write("intent", source=name, **summary)
            writer.cancel()

    async def _listen_stream(self, path: Path) -> None:
        loop = asyncio.get_running_loop()
        try:
            fh = await loop.run_in_executor(None, path.open, "rb")
        except OSError as exc:
            _LOGGER.error("voice stream %s cannot be opened: %s", path, exc)
            return
        try:
            await self._listen(PcmSource(stream=fh), f"stream {path.name}")
        finally:
            fh.close()

    async def _serve_inbox(self, inbox: Path) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: inbox.mkdir(parents=True, exist_ok=True))
        while True:
            for path in await loop.run_in_executor(None, lambda: sorted(inbox.glob("*.wav"))):
                await self.handle_file(path)
            await asyncio.sleep(INBOX_POLL_S)

    async def handle_file(self, path: Path) -> None:
        """One push-to-talk utterance from a WAV file; bad files are reported and skipped."""
        assert self.assistant is not None
        loop = asyncio.get_running_loop()
        try:
            pcm = await loop.run_in_executor(None, read_wav, path)
            outcome = await self.assistant.handle_pcm(pcm)
            summary = outcome_summary(outcome)
            summary["outcome"] = summary.pop("kind")
            self.runtime.journal.write("intent", file=path.name, **summary)
        except VoiceError as exc:
            _LOGGER.error("voice inbox: %s: %s", path.name, exc)
        except Exception:  # one bad utterance must not stop the inbox
            _LOGGER.exception("voice inbox: handling %s failed", path.name)
        finally:
            try:
                await loop.run_in_executor(None, path.rename, path.with_suffix(".done"))
            except OSError as exc:
                _LOGGER.error("voice inbox: cannot rename %s: %s", path, exc)


def attach(
    runtime: Any,  # noqa: ANN401
    args: argparse.Namespace,
    *,
    model: Engine | None = None,
) -> VoiceExtension | None:
    """Wire voice into a runtime when any voice option is given.

    *model* reuses an already loaded model (tests); otherwise the task loads it.
    """
    if not any(getattr(args, name, None) is not None for name in VOICE_OPTIONS):
        return None
    ext = VoiceExtension(runtime, args, model=model)
    runtime.add_handler(MessageType.VOICE_REPLY, ext.on_voice_reply)
    runtime.add_handler(MessageType.VOCABULARY, ext.on_vocabulary)
    runtime.add_handler(MessageType.NOTIFY, ext.on_notify)
    runtime.store.add_listener(ext.ptt.on_change)
    runtime.add_capability("voice")
    runtime.add_task(ext.run)
    return ext
