"""Test helper: a tester client and a simulated ECU on a private python-can virtual bus."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import can

from vehicle_agent.obd.client import ObdClient
from vehicle_agent.obd.simulator import SimulatedEcu


@dataclass
class Link:
    client: ObdClient
    ecu: SimulatedEcu
    ecu_bus: can.BusABC
    """The ECU's bus: tests send raw junk frames on it."""
    tester_bus: can.BusABC


@contextlib.asynccontextmanager
async def obd_link(
    *, timeout_s: float = 0.3, functional: bool = True, **ecu_kwargs: Any
) -> AsyncIterator[Link]:
    """Yield a started client talking to a started simulated ECU; tear everything down."""
    channel = f"obd-test-{uuid.uuid4().hex}"
    tester_bus = can.Bus(interface="virtual", channel=channel)
    ecu_bus = can.Bus(interface="virtual", channel=channel)
    ecu = SimulatedEcu(ecu_bus, **ecu_kwargs)
    client = ObdClient(tester_bus, timeout_s=timeout_s, functional=functional)
    try:
        ecu.start()
        await client.start()
        yield Link(client, ecu, ecu_bus, tester_bus)
    finally:
        await client.close()
        ecu.stop()
        tester_bus.shutdown()
        ecu_bus.shutdown()


async def wait_until(cond: Callable[[], bool], within: float = 5.0, what: str = "") -> None:
    """Wait (bounded) until ``cond()`` holds; fail the test otherwise."""
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)
