"""Speech out: a TTS interface (espeak-ng or silent) and safe notification playback."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from vehicle_agent.voice.intents import base_language

_LOGGER = logging.getLogger(__name__)

ESPEAK_VOICES: dict[str, str] = {"en": "en-us", "ko": "ko", "zh": "cmn"}


class TtsEngine(Protocol):
    """Speaks text (blocking until done or failed)."""

    async def speak(self, text: str, language: str) -> None:
        """Say *text* in *language*."""
        ...


class NullTts:
    """Speaks nothing; remembers what it would have said (tests, headless runs)."""

    def __init__(self) -> None:
        self.spoken: list[tuple[str, str]] = []

    async def speak(self, text: str, language: str) -> None:
        """Record *text*."""
        self.spoken.append((text, language))


class EspeakTts:
    """espeak-ng (Debian package) as a subprocess, one voice per language.

    With ``output_dir`` unset it plays on the default audio device; ``synthesize``
    returns WAV bytes instead (tests, fixtures).
    """

    def __init__(
        self, *, binary: str = "espeak-ng", voices: dict[str, str] | None = None, speed: int = 165
    ) -> None:
        self.binary = binary
        self.voices = {**ESPEAK_VOICES, **(voices or {})}
        self.speed = speed

    def _args(self, language: str) -> list[str]:
        voice = self.voices.get(base_language(language), self.voices["en"])
        return [self.binary, "-v", voice, "-s", str(self.speed)]

    async def speak(self, text: str, language: str) -> None:
        """Say *text*; a failing synthesizer is logged, never raised."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._args(language),
                "--",
                text,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await proc.communicate()
        except OSError as exc:
            _LOGGER.error("cannot run %s: %s", self.binary, exc)
            return
        if proc.returncode:
            _LOGGER.error("%s failed: %s", self.binary, err.decode(errors="replace").strip())

    async def synthesize(self, text: str, language: str) -> bytes:
        """WAV bytes of *text* (espeak-ng's own rate, 22050 Hz mono)."""
        proc = await asyncio.create_subprocess_exec(
            *self._args(language),
            "--stdout",
            "--",
            text,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"{self.binary} failed: {err.decode(errors='replace').strip()}")
        return out


def make_tts(name: str) -> TtsEngine:
    """``espeak`` or ``null``."""
    if name == "null":
        return NullTts()
    if name == "espeak":
        return EspeakTts()
    raise ValueError(f"unknown TTS engine: {name!r} (use espeak or null)")


@dataclass(frozen=True, kw_only=True)
class ManoeuvrePolicy:
    """When the driver must not be distracted: fast and turning hard, or reversing."""

    speed_kmh: float = 30.0
    steering_deg: float = 45.0
    speed_path: str = "Vehicle.Speed"
    steering_path: str = "Vehicle.Chassis.SteeringWheel.Angle"
    gear_path: str = "Vehicle.Powertrain.Transmission.SelectedGear"

    def busy(self, value: Callable[[str], Any]) -> bool:
        """Whether the car is in a manoeuvre now (unknown values count as calm)."""
        speed, angle, gear = (
            value(self.speed_path),
            value(self.steering_path),
            value(self.gear_path),
        )
        if gear == "R":
            return True
        if isinstance(speed, int | float) and isinstance(angle, int | float):
            return float(speed) > self.speed_kmh and abs(float(angle)) > self.steering_deg
        return False


@dataclass(order=True)
class _Queued:
    rank: tuple[int, float]
    message: str = field(compare=False)
    expires_at: float = field(compare=False)


_PRIORITY = {"high": 0, "normal": 1, "low": 2}


class NotificationSpeaker:
    """Speaks ``notify`` messages from home when the car is not in a manoeuvre.

    Messages wait (highest priority first, then oldest) while the driver is busy;
    one that expires while waiting is dropped, never spoken late.
    """

    def __init__(
        self,
        tts: TtsEngine,
        value: Callable[[str], Any],
        *,
        language: str,
        policy: ManoeuvrePolicy | None = None,
        clock: Callable[[], float] = time.time,
        on_spoken: Callable[[str], None] | None = None,
    ) -> None:
        self._tts = tts
        self._value = value
        self.language = language
        self.policy = policy or ManoeuvrePolicy()
        self._clock = clock
        self._queue: list[_Queued] = []
        self._wakeup = asyncio.Event()
        self._on_spoken = on_spoken
        self.dropped: list[str] = []

    @property
    def pending(self) -> int:
        """Messages waiting."""
        return len(self._queue)

    def submit(self, body: dict[str, Any]) -> bool:
        """Queue a ``notify`` body; False (and logged) if it is malformed or expired."""
        message = body.get("message")
        expires = body.get("expires_at")
        if not isinstance(message, str) or not message.strip():
            _LOGGER.warning("notify without a message: %r", body)
            return False
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            expires = self._clock() + 3600.0
        now = self._clock()
        if float(expires) <= now:
            self.dropped.append(message)
            return False
        rank = (_PRIORITY.get(str(body.get("priority")), 1), now)
        heapq.heappush(self._queue, _Queued(rank, message, float(expires)))
        self._wakeup.set()
        return True

    async def pump(self) -> int:
        """Speak what may be spoken now; returns how many messages were spoken."""
        spoken = 0
        while self._queue:
            now = self._clock()
            if self._queue[0].expires_at <= now:
                self.dropped.append(heapq.heappop(self._queue).message)
                continue
            if self.policy.busy(self._value):
                break
            item = heapq.heappop(self._queue)
            await self._tts.speak(item.message, self.language)
            if self._on_spoken is not None:
                self._on_spoken(item.message)
            spoken += 1
        return spoken

    async def run(self, poll_s: float = 0.5) -> None:
        """Pump forever: on new messages, and every *poll_s* while some wait."""
        while True:
            await self.pump()
            self._wakeup.clear()
            timeout = poll_s if self._queue else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
