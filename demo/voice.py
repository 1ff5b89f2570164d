"""A recorded voice command for the car: synthesized speech dropped into the agent's inbox.

The recording is made with espeak-ng (Debian) and converted by sox to what
the agent's recognizer takes: 16 kHz, mono, 16-bit PCM WAV. Dropping the
finished file into ``--voice-inbox`` is one push-to-talk press: the utterance
has ended when the file appears, so that moment is the "end of speech".
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class VoiceCommand:
    """One phrase, its language, and what it should do in Home Assistant."""

    text: str
    language: str  # "ko", "en": the recognizer's language
    espeak_voice: str
    entity_id: str  # the entity the command switches
    expected_state: str
    speed_wpm: int = 175
    pitch: int = 70


KOREAN_COMMAND = VoiceCommand(
    text="거실 조명 켜줘",
    language="ko",
    # The car refuses home actions it is not sure of (benchmarks/voice.py);
    # with the demo home's vocabulary this voice is accepted at 150-190 wpm
    # and pitch 40-70, where ko/ko+f3 recordings are often refused.
    espeak_voice="ko+f2",
    pitch=60,
    entity_id="light.living_room_light",
    expected_state="on",
)
KOREAN_PORCH_COMMAND = VoiceCommand(
    text="현관 조명 켜줘",
    language="ko",
    # Accepted with the demo home's vocabulary at 175-190 wpm, pitch 40-50.
    espeak_voice="ko+f2",
    pitch=50,
    entity_id="light.porch_light",
    expected_state="on",
)
ENGLISH_COMMAND = VoiceCommand(
    text="turn on the living room light",
    language="en",
    espeak_voice="en-us",
    pitch=50,
    entity_id="light.living_room_light",
    expected_state="on",
)
ENGLISH_PORCH_COMMAND = VoiceCommand(
    text="turn on the porch light",
    language="en",
    espeak_voice="en-us",
    pitch=50,
    entity_id="light.porch_light",
    expected_state="on",
)
#: The demo's two commands per language: the voice step speaks the first; the
#: crash step speaks both while the home is unreachable.
COMMANDS: dict[str, tuple[VoiceCommand, VoiceCommand]] = {
    "en": (ENGLISH_COMMAND, ENGLISH_PORCH_COMMAND),
    "ko": (KOREAN_COMMAND, KOREAN_PORCH_COMMAND),
}


class VoiceToolError(RuntimeError):
    """espeak-ng or sox is missing or failed."""


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise VoiceToolError(f"{argv[0]} did not finish within 60 s") from None
    if proc.returncode != 0:
        raise VoiceToolError(
            f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')}"
        )


async def synthesize(command: VoiceCommand, out: Path) -> Path:
    """Speak ``command.text`` into ``out`` as a 16 kHz mono 16-bit WAV."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise VoiceToolError(f"{tool} is not installed (Debian package {tool})")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="carhub-voice-") as tmp:
        raw = Path(tmp) / "raw.wav"
        await _run(
            "espeak-ng",
            "-v",
            command.espeak_voice,
            "-s",
            str(command.speed_wpm),
            "-p",
            str(command.pitch),
            "-w",
            str(raw),
            command.text,
        )
        # Silence either side, as a real push-to-talk recording has.
        # -R: sox dithers while resampling with a random seed per run; a fixed
        # seed makes every run of the demo speak the same recording.
        await _run(
            "sox",
            "-R",
            str(raw),
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(out),
            "pad",
            "0.4",
            "0.6",
        )
    return out


def drop_into_inbox(wav: Path, inbox: Path, *, name: str) -> float:
    """Move a finished recording into the agent's inbox atomically; return the wall time.

    The file is copied under a name the agent ignores, then renamed to
    ``name.wav``, so the agent never reads a half-written file.
    """
    inbox.mkdir(parents=True, exist_ok=True)
    partial = inbox / f".{name}.partial"
    shutil.copyfile(wav, partial)
    with partial.open("rb") as fh:
        os.fsync(fh.fileno())
    dropped_at = time.time()
    partial.rename(inbox / f"{name}.wav")
    return dropped_at
