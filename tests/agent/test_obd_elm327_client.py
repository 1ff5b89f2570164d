"""Elm327Client against a scripted dongle on 127.0.0.1: the error words the emulator never says.

The scripted dongle is a clone that ignores ``ATE0`` and ``ATS0`` (it echoes
every command and keeps spaces) and answers each OBD request from a script:
``STOPPED`` then data (one retry), ``BUFFER FULL`` twice, ``NO DATA``,
``CAN ERROR``, negative responses with and without "response pending", and
``LV RESET`` (the dongle restarted: reconnect and set up again), 70 kB of noise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from vehicle_agent.obd.elm327 import Elm327Client, ElmOptions
from vehicle_agent.obd.errors import (
    ObdNotSupportedError,
    ObdResponseError,
    ObdTimeoutError,
    ObdTransportError,
)

SCRIPT: dict[str, list[str]] = {
    "0100": ["SEARCHING...\r7E8 06 41 00 18 18 00 00"],
    "010D": ["STOPPED", "7E8 03 41 0D 2A"],
    "0105": ["BUFFER FULL", "BUFFER FULL"],
    "010C": ["NO DATA"],
    "010B": ["CAN ERROR"],
    "0104": ["7E8 03 7F 01 31"],
    "010F": ["7E8 03 7F 01 78\r7E8 03 41 0F 50"],
    "0111": ["LV RESET"],
    "0106": ["\x07~noise" * 10_000],
}


class ScriptedDongle:
    def __init__(self) -> None:
        self.received: list[str] = []
        self.connections = 0
        self.script = {k: list(v) for k, v in SCRIPT.items()}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while line := await reader.readuntil(b"\r"):
                command = line.decode().strip()
                self.received.append(command)
                if command == "ATZ":
                    answer = "\r\rELM327 v1.5"
                elif command in ("ATI", "ATDPN"):
                    answer = {"ATI": "ELM327 v1.5", "ATDPN": "A6"}[command]
                elif command in ("ATH1", "ATAT1"):
                    answer = "?"  # a clone lacking them
                elif command.startswith("AT"):
                    answer = "OK"
                else:
                    queue = self.script.get(command, [])
                    answer = queue.pop(0) if queue else "NO DATA"
                writer.write(f"{command}\r{answer}\r\r>".encode())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def dongle() -> AsyncIterator[tuple[ScriptedDongle, str]]:
    scripted = ScriptedDongle()
    server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield scripted, f"127.0.0.1:{port}"
    finally:
        server.close()


async def test_error_words(dongle: tuple[ScriptedDongle, str]) -> None:
    scripted, target = dongle
    options = ElmOptions(request_timeout_s=2, initial_backoff_s=0.01)
    async with Elm327Client(target, options=options) as client:
        assert client.missing_commands == {"ATH1", "ATAT1"}
        assert await client.supported_pids() == {0x00, 0x04, 0x05, 0x0C, 0x0D}
        assert client.protocol == "A6"
        assert (await client.read_pid(0x0D)).value == 42  # after one STOPPED
        assert scripted.received.count("010D") == 2
        with pytest.raises(ObdResponseError, match="BUFFER FULL"):
            await client.read_pid(0x05)
        with pytest.raises(ObdTimeoutError, match="NO DATA"):
            await client.read_pid(0x0C)
        with pytest.raises(ObdTimeoutError, match="BUS ERROR"):
            await client.read_pid(0x0B)
        with pytest.raises(ObdNotSupportedError):
            await client.read_pid(0x04)
        assert (await client.read_pid(0x0F)).value == 40  # 0x78 pending, then the answer
        with pytest.raises(ObdResponseError, match="no usable answer"):
            await client.read_pid(0x06)  # 70 kB of noise
        assert client.running
        with pytest.raises(ObdTransportError, match="restarted"):
            await client.read_pid(0x11)
        assert not client.running
        await asyncio.sleep(0.05)
        with pytest.raises(ObdTimeoutError):
            await client.read_pid(0x0C)  # reconnects and sets up again, then NO DATA
        assert scripted.connections == 2 and client.connects == 2
        assert scripted.received.count("ATZ") == 2
