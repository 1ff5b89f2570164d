"""Child processes of the demo: started with their output in a log file, stopped in order.

Children run in their own session so a Ctrl-C in the terminal reaches only the
demo, which then stops them in a known order (agent first, then Home
Assistant). On Linux each child also gets a parent-death signal, so a demo
that is itself killed with SIGKILL does not leave a `hass` behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM this child when the process that forked it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ProcessError(RuntimeError):
    """A child process could not be started or ended unexpectedly."""


class ManagedProcess:
    """One child process whose stdout and stderr go to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | Path],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Describe the process; nothing runs until :meth:`start`."""
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._env = dict(os.environ if env is None else env)
        self._cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0  # where this run's output starts in the (appended) log

    @property
    def pid(self) -> int | None:
        """The child's pid, or None before start."""
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """The exit status once the child has ended (negative: killed by that signal)."""
        return self._proc.returncode if self._proc else None

    @property
    def running(self) -> bool:
        """True while the child has been started and has not ended."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Start the child; its output is appended to the log file."""
        if self.running:
            raise ProcessError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        self._log.write(f"\n===== {self.name}: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=self._log,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except OSError as err:
            self._close_log()
            raise ProcessError(f"cannot start {self.name} ({self.argv[0]}): {err}") from err

    async def wait(self, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s`` seconds for the child to end; return its status or None."""
        if self._proc is None:
            return None
        try:
            return await asyncio.wait_for(self._proc.wait(), timeout_s)
        except TimeoutError:
            return None

    def kill(self) -> None:
        """SIGKILL the child now (no cleanup on its side: used to test crash safety)."""
        if self.running and self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGKILL)

    async def stop(self, *, timeout_s: float = 20.0, sig: int = signal.SIGTERM) -> int | None:
        """Ask the child to stop with ``sig``; SIGKILL it after ``timeout_s`` seconds."""
        if self._proc is None:
            return None
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)
            if await self.wait(timeout_s) is None:
                self.kill()
                await self.wait(10.0)
        self._close_log()
        return self._proc.returncode

    def log_text(self, *, tail: int | None = None, this_run: bool = False) -> str:
        """Return the child's log (the last ``tail`` bytes; only the latest start's output)."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        if this_run:
            data = data[self._log_offset :]
        if tail is not None:
            data = data[-tail:]
        return data.decode("utf-8", errors="replace")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


async def wait_for_log_line(
    proc: ManagedProcess,
    match: Callable[[str], str | None],
    *,
    timeout_s: float,
    poll: float = 0.2,
) -> str | None:
    """Poll the output of the child's latest start until ``match`` returns a value for a line.

    Returns that value, or None when the child ended or ``timeout_s`` passed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        for line in proc.log_text(this_run=True).splitlines():
            found = match(line)
            if found is not None:
                return found
        if not proc.running or loop.time() >= deadline:
            return None
        await asyncio.sleep(poll)
