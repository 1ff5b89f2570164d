"""The byte link to an ELM327: a serial port (USB, Bluetooth rfcomm) or TCP (Wi-Fi).

Both are asyncio transports feeding one :class:`ElmWire` protocol, which keeps
what arrived in a buffer and hands it out up to the ``>`` prompt the ELM327
prints when it is ready for the next command. Serial ports use
pyserial-asyncio-fast (pyserial under asyncio, without a thread per port); TCP
uses asyncio's own connections.

A target is a device path (anything with a ``/``: ``/dev/ttyUSB0``,
``/dev/rfcomm0``, ``/dev/serial/by-id/...``) or ``HOST:PORT`` (``[::1]:35000``
for IPv6); Wi-Fi dongles listen on 192.168.0.10:35000 as shipped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from vehicle_agent.obd.errors import ObdResponseError, ObdTransportError

MAX_BUFFER = 64 * 1024
"""Bytes without a prompt after which the line is declared garbage and dropped."""
DEFAULT_BAUDRATE = 38400
"""What most ELM327 dongles and clones ship with (some USB ones use 115200)."""


@dataclass(frozen=True, slots=True)
class ElmTarget:
    """Where the dongle is: ``serial`` device path, or ``host`` and ``port``."""

    serial: str | None = None
    host: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        return self.serial if self.serial is not None else f"{self.host}:{self.port}"


def parse_target(text: str) -> ElmTarget:
    """Parse ``/dev/ttyUSB0``, ``host:35000`` or ``[::1]:35000``; ValueError otherwise."""
    text = text.strip()
    if "/" in text:
        return ElmTarget(serial=text)
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a serial device path or HOST:PORT: {text!r}")
    return ElmTarget(host=host, port=int(port))


class ElmWire(asyncio.Protocol):
    """Buffers what the dongle sends; see the module docs."""

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self._buffer = bytearray()
        self._arrived = asyncio.Event()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport."""
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Keep the bytes until a prompt is asked for."""
        self._buffer += data
        self._arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        """The dongle went away (unplugged, out of range, closed by us)."""
        self.lost = True
        self._arrived.set()

    def write(self, data: bytes) -> None:
        """Send bytes; raises :class:`ObdTransportError` when the link is gone."""
        transport = self.transport
        if self.lost or not isinstance(transport, asyncio.WriteTransport):
            raise ObdTransportError("the dongle's link is closed")
        if transport.is_closing():
            raise ObdTransportError("the dongle's link is closing")
        transport.write(data)

    def discard_input(self) -> bytes:
        """Drop (and return) whatever arrived unasked: late answers, line noise."""
        stale = bytes(self._buffer)
        self._buffer.clear()
        return stale

    async def read_until_prompt(self, timeout_s: float, *, searching_s: float = 0.0) -> str:
        """Everything before the next ``>``, as text; the prompt is consumed.

        Once the dongle printed ``SEARCHING...`` (it is trying protocols, which
        takes seconds) the wait is ``searching_s`` when that is longer.

        Raises :class:`ObdTransportError` when the link closes or no prompt
        comes within ``timeout_s`` (the dongle froze or vanished) and
        :class:`ObdResponseError` when more than :data:`MAX_BUFFER` bytes come
        without one (garbage on the line).
        """
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            end = self._buffer.find(b">")
            if end >= 0:
                raw = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return raw.decode("ascii", errors="replace")
            if self.lost:
                raise ObdTransportError("the dongle closed the link")
            if len(self._buffer) > MAX_BUFFER:
                self._buffer.clear()
                raise ObdResponseError(f"over {MAX_BUFFER} bytes without a prompt: garbage")
            if searching_s > timeout_s and b"SEARCHING" in self._buffer:
                deadline = max(deadline, started + searching_s)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ObdTransportError(f"the dongle sent no prompt within {timeout_s:g} s")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue

    def close(self) -> None:
        """Close the link (idempotent)."""
        if self.transport is not None:
            self.transport.close()


async def open_wire(target: ElmTarget, *, baudrate: int, timeout_s: float) -> ElmWire:
    """Connect to the dongle; raises :class:`ObdTransportError` when it is not there."""
    loop = asyncio.get_running_loop()
    transport: asyncio.BaseTransport
    wire: asyncio.BaseProtocol
    try:
        if target.serial is not None:
            # Imported here: TCP-only installs and the CAN path never need pyserial.
            import serial_asyncio_fast

            transport, wire = await asyncio.wait_for(
                serial_asyncio_fast.create_serial_connection(
                    loop, ElmWire, target.serial, baudrate=baudrate
                ),
                timeout_s,
            )
        elif target.host is not None and target.port is not None:
            transport, wire = await asyncio.wait_for(
                loop.create_connection(ElmWire, target.host, target.port), timeout_s
            )
        else:
            raise ValueError("a target is a device path or HOST:PORT")
    except Exception as err:  # OSError, TimeoutError, serial.SerialException (not an OSError)
        raise ObdTransportError(f"cannot open the dongle at {target}: {err}") from err
    assert isinstance(wire, ElmWire)
    # pyserial-asyncio calls connection_made on the next loop turn: do not wait for it.
    wire.transport = wire.transport or transport
    return wire
