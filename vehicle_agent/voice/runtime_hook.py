"""Plugs voice into ``vehicle-agent run`` (docs/INTERFACES.md, the voice runtime hook).

``attach(runtime, args)`` registers: the ``voice_reply``, ``vocabulary`` and
``notify`` handlers, push-to-talk from the state store, and a task that loads
the model (in a thread) and then handles every ``*.wav`` dropped into
``--voice-inbox`` as one push-to-talk utterance (renamed ``*.done`` after).
What the driver hears goes to the journal as ``spoken``; what the car
understood as ``intent``; the home's answer as ``voice_reply``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any, Protocol

from bridge.protocol import Envelope, MessageType
from vehicle_agent.voice.assistant import VoiceAssistant, VoiceConfig, outcome_summary
from vehicle_agent.voice.audio import read_wav
from vehicle_agent.voice.errors import ModelError, VoiceError
from vehicle_agent.voice.home import FirstConnectedHome, HomeLink, HomeRequester
from vehicle_agent.voice.model import VoiceModel, packaged_model
from vehicle_agent.voice.tts import NotificationSpeaker, TtsEngine, make_tts
from vehicle_agent.voice.wake import PushToTalk

_LOGGER = logging.getLogger(__name__)

INBOX_POLL_S = 0.2


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
        model: VoiceModel | None = None,
    ) -> None:
        self.runtime = runtime
        self._model = model
        self.language: str = getattr(args, "voice_language", None) or "en"
        model = getattr(args, "voice_model", None)
        self.model_dir: Path | None = model or packaged_model(self.language)
        self.inbox: Path | None = getattr(args, "voice_inbox", None)
        self.tts = _JournalingTts(make_tts(getattr(args, "tts", "null") or "null"), runtime.journal)
        links: dict[str, HomeLink] = runtime.links
        self.home = HomeRequester(FirstConnectedHome(links))
        self.ptt = PushToTalk()
        self.assistant: VoiceAssistant | None = None
        self._vocabulary: dict[str, Any] | None = None
        self.notifications = NotificationSpeaker(
            self.tts, lambda path: runtime.store.value(path), language=self.language
        )

    def _load_model(self) -> VoiceModel:
        if self.model_dir is None:
            raise ModelError(f"no --voice-model and no packaged model for {self.language}")
        return VoiceModel(self.model_dir, language=self.language)

    async def on_voice_reply(self, hub_id: str, env: Envelope) -> None:
        self.runtime.journal.write(
            "voice_reply", hub_id=hub_id, text=env.body.get("text"), success=env.body.get("success")
        )
        self.home.on_reply(env.body)

    async def on_vocabulary(self, hub_id: str, env: Envelope) -> None:
        self._vocabulary = dict(env.body)
        if self.assistant is not None:
            await self.assistant.update_vocabulary(self._vocabulary)

    async def on_notify(self, hub_id: str, env: Envelope) -> None:
        self.notifications.submit(dict(env.body))

    async def run(self) -> None:
        """Load the model, then serve the inbox and notifications until cancelled."""
        speaker = asyncio.create_task(self.notifications.run())
        try:
            loop = asyncio.get_running_loop()
            try:
                model: VoiceModel = (
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
                        config=VoiceConfig(language=self.language),
                    ),
                )
            except VoiceError as exc:
                _LOGGER.error("voice disabled: %s", exc)
                await asyncio.Event().wait()
            assert self.assistant is not None
            if self._vocabulary is not None:
                await self.assistant.update_vocabulary(self._vocabulary)
            _LOGGER.info("voice ready (%s, model %s)", self.language, self.model_dir)
            if self.inbox is None:
                await asyncio.Event().wait()
            assert self.inbox is not None
            await self._serve_inbox(self.inbox)
        finally:
            speaker.cancel()

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
    model: VoiceModel | None = None,
) -> VoiceExtension | None:
    """Wire voice into a runtime when ``--voice-model`` or ``--voice-inbox`` is given.

    *model* reuses an already loaded model (tests); otherwise the task loads it.
    """
    if getattr(args, "voice_model", None) is None and getattr(args, "voice_inbox", None) is None:
        return None
    ext = VoiceExtension(runtime, args, model=model)
    runtime.add_handler(MessageType.VOICE_REPLY, ext.on_voice_reply)
    runtime.add_handler(MessageType.VOCABULARY, ext.on_vocabulary)
    runtime.add_handler(MessageType.NOTIFY, ext.on_notify)
    runtime.store.add_listener(ext.ptt.on_change)
    runtime.add_capability("voice")
    runtime.add_task(ext.run)
    return ext
