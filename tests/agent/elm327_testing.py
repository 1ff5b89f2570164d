"""Test helpers: the real ELM327-emulator as a subprocess, and a TCP relay in front of it.

The emulator runs on a pseudo-terminal (its default; a symlink stands for the
dongle's stable device path, as udev's /dev/serial/by-id does, so a restarted
emulator is found at the same path) or on a TCP port of 127.0.0.1. The relay
listens on an ephemeral port and can freeze (a dongle that stops answering),
inject garbage, and records what the client sent. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

START_WAIT = 15.0
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """An ephemeral port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ElmEmulator:
    """``python -m elm -s car`` (through tests.agent.elm327_emulator_main) on a pty or TCP."""

    def __init__(
        self,
        workdir: Path,
        *,
        tcp: bool = False,
        dtcs: str = "",
        voltage: float = 14.2,
        missing: str = "",
    ) -> None:
        self.missing = missing
        self.workdir = workdir
        self.tcp = tcp
        self.dtcs = dtcs
        self.voltage_file = workdir / "voltage"
        self.voltage_file.write_text(str(voltage))
        self.device = workdir / "ttyELM"
        """Stable path of the pty (a symlink re-pointed at each start)."""
        self.port = free_port() if tcp else 0
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def target(self) -> str:
        """What ``--elm327`` takes."""
        return f"127.0.0.1:{self.port}" if self.tcp else str(self.device)

    def set_voltage(self, volts: float) -> None:
        """The battery the emulator reports (PID 0x42 and ATRV) from now on."""
        self.voltage_file.write_text(str(volts))

    async def start(self) -> None:
        """Start the emulator and wait until its pty or port is there."""
        out = self.workdir / f"elm-out-{self.starts}.txt"
        args = [sys.executable, "-m", "tests.agent.elm327_emulator_main", "-s", "car"]
        args += ["-b", str(out)]
        if self.tcp:
            args += ["-n", str(self.port)]
        env = dict(
            os.environ,
            CARHUB_ELM_DTCS=self.dtcs,
            CARHUB_ELM_VOLTAGE_FILE=str(self.voltage_file),
            CARHUB_ELM_MISSING=self.missing,
            CARHUB_ELM_FAST="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        # stdin stays an open pipe: the emulator's batch interpreter waits on it.
        # It writes elm.log into its working directory: the test's, not the repository.
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdin=subprocess.PIPE, env=env, cwd=self.workdir
        )
        self.starts += 1
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"the emulator exited with {self.proc.returncode}")
            if self.tcp:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    return
            elif out.exists() and out.read_text().startswith("/dev/"):
                pty = out.read_text().splitlines()[0].strip()
                tmp = self.workdir / "ttyELM.new"
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(pty)
                tmp.replace(self.device)
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the emulator did not start in time")

    async def stop(self) -> None:
        """Kill the emulator (a dongle pulled out)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.kill()
        await asyncio.wait_for(proc.wait(), 10)


class TcpRelay:
    """A TCP hop between the client and the emulator that can misbehave like a dongle."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.frozen = False
        """While True nothing passes either way (a dongle that hangs)."""
        self.sent = bytearray()
        """Everything the client sent (what reached the "dongle")."""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on 127.0.0.1, ephemeral port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def inject(self, garbage: bytes) -> None:
        """Send bytes to the client as if the dongle had said them."""
        for writer in self._writers:
            writer.write(garbage)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers.append(writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, log: bool) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(4096):
                    if self.frozen:
                        continue
                    if log:
                        self.sent += data
                    dst.write(data)
            dst.close()

        tasks = [
            asyncio.create_task(pump(reader, up_writer, True)),
            asyncio.create_task(pump(up_reader, writer, False)),
        ]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._writers.remove(writer)

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
