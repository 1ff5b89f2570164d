"""Write a spoken sentence as a 16 kHz mono WAV (espeak-ng + sox), for trying the recognizer.

    python scripts/voice_say.py "지금 속도 알려줘" speed.wav [--voice ko+f3] [--speed 175]
        [--noise 15]   # add sox brown noise (car rumble) at this SNR in dB
    vehicle-agent voice --language ko --wav speed.wav

The tests synthesize their audio the same way at run time; nothing is stored.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.voice.conftest import add_noise, sox_noise, synth
from vehicle_agent.voice.audio import write_wav


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text")
    ap.add_argument("out", type=Path)
    ap.add_argument("--voice", default="ko+f3", help="espeak-ng voice (ko, ko+f3, en-us, cmn...)")
    ap.add_argument("--speed", type=int, default=175, help="words per minute")
    ap.add_argument("--pitch", type=int, default=70)
    ap.add_argument("--noise", type=float, help="add car noise at this SNR (dB)")
    args = ap.parse_args()
    try:
        pcm = synth(args.text, voice=args.voice, speed=args.speed, pitch=args.pitch)
        if args.noise is not None:
            pcm = add_noise(pcm, sox_noise(len(pcm) / 32000 + 0.1), args.noise)
    except (OSError, subprocess.CalledProcessError, AssertionError) as exc:
        print(f"voice_say: {exc}", file=sys.stderr)
        return 1
    write_wav(args.out, pcm)
    print(f"{args.out}: {len(pcm) / 32000:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
