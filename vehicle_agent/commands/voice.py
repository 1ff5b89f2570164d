"""`vehicle-agent voice`: recognise a recording offline, or list known models.

vehicle-agent voice --wav FILE [--model DIR] [--engine E] [--language en|ko|zh]
                    [--profile PROFILE.yaml --replay LOG [--dbc-dir DIR]]
                    [--entities "거실 조명,차고 문" --areas "거실,부엌"]
vehicle-agent voice models
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from vehicle_agent.voice.errors import VoiceError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `voice` sub-command."""
    p = subparsers.add_parser(
        "voice",
        help="recognise a WAV file offline and print the intent and answer",
        description=(
            "Recognise one utterance from a WAV file with a grammar-constrained engine "
            "(the car's sentence templates plus home names), print what was understood "
            "and the answer the car would speak. English runs on pocketsphinx without a "
            "download; 'vehicle-agent voice models' lists the models installed as packages."
        ),
        epilog="example: vehicle-agent voice --wav speed.wav (English); "
        "vehicle-agent voice --language ko --wav speed.wav",
    )
    p.add_argument(
        "action",
        nargs="?",
        default="recognize",
        choices=["recognize", "models"],
        help="recognize a file (default) or list known models",
    )
    p.add_argument("--model", type=Path, help="vosk model directory (default: packaged model)")
    p.add_argument(
        "--engine",
        default="auto",
        choices=["auto", "vosk", "pocketsphinx"],
        help="speech engine (default: pocketsphinx for English without --model, else vosk)",
    )
    p.add_argument("--wav", type=Path, help="WAV file with one utterance (any rate, mono/stereo)")
    p.add_argument("--language", default="en", help="en, ko or zh (default: en)")
    p.add_argument("--profile", type=Path, help="car profile YAML, to answer car questions")
    p.add_argument("--replay", type=Path, help="CAN log to fill the car state before answering")
    p.add_argument("--dbc-dir", type=Path, help="directory of the profile's DBC files")
    p.add_argument("--entities", default="", help="comma-separated home entity names")
    p.add_argument("--areas", default="", help="comma-separated home area names")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


class _EmptyState:
    def value(self, path: str, default: Any = None) -> Any:  # noqa: ANN401
        return default


def _state(args: argparse.Namespace) -> Any:  # noqa: ANN401
    if args.profile is None:
        return _EmptyState()
    from vehicle_agent.can_input import read_log
    from vehicle_agent.pipeline import CanPipeline
    from vehicle_agent.profile import load_profile

    try:
        pipeline = CanPipeline.from_profile(load_profile(args.profile), dbc_dir=args.dbc_dir)
        if args.replay is not None:
            pipeline.feed_all(read_log(args.replay))
    except Exception as exc:  # profile, DBC and log errors all end the command the same way
        raise ValueError(f"cannot build the car state: {exc}") from exc
    return pipeline.store


def _models() -> int:
    from vehicle_agent.voice.model import known_models
    from vehicle_agent.voice.sphinx import packaged_sphinx_model

    print(f"en\t{packaged_sphinx_model()}\t(package:pocketsphinx)")
    for info in known_models():
        print(f"{info.language}\t{info.path}\t({info.source})")
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of `vehicle-agent voice`."""
    if args.action == "models":
        return _models()
    if args.wav is None:
        print("vehicle-agent voice: error: --wav FILE is required", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_recognize(args))
    except (VoiceError, OSError, ValueError) as exc:
        print(f"vehicle-agent voice: error: {exc}", file=sys.stderr)
        return 2


async def _recognize(args: argparse.Namespace) -> int:
    from vehicle_agent.voice.assistant import VoiceAssistant, VoiceConfig, outcome_summary
    from vehicle_agent.voice.audio import read_wav
    from vehicle_agent.voice.engine import load_engine

    model = load_engine(args.language, args.model, args.engine)
    assistant = VoiceAssistant(
        model, state=_state(args), config=VoiceConfig(language=args.language)
    )
    entities = [e.strip() for e in args.entities.split(",") if e.strip()]
    areas = [a.strip() for a in args.areas.split(",") if a.strip()]
    if entities or areas:
        await assistant.update_vocabulary({"entities": entities, "areas": areas})
    try:
        outcome = await assistant.handle_pcm(read_wav(args.wav), speak=False)
    finally:
        assistant.close()
    summary = outcome_summary(outcome)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(f"understood: {summary['text'] or '(nothing)'}")
        print(f"intent:     {summary['intent']} {summary['slots'] or ''}".rstrip())
        print(
            f"outcome:    {summary['kind']}  (distance {summary['distance']}, "
            f"margin {summary['margin']}, passes agreeing {summary['agree']})"
        )
        print(f"reply:      {summary['reply']}")
    return 0
