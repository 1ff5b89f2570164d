"""The link end to end over real mTLS sockets on 127.0.0.1: hello, delivery, acks, TTL, RTT."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest

from bridge.client import CarLink
from bridge.pki import HomeCA
from bridge.protocol import MessageType
from bridge.server import HubServer
from tests.bridge.link_testing import CarInbox, RecordingHandler, make_car, start_hub, wait_for


def _event(i: int) -> dict[str, object]:
    return {"kind": "alert", "ts": time.time(), "data": {"i": i}}


async def test_car_to_hub_in_order_and_acked(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    car = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl)
    try:
        await car.start()
        assert await car.wait_connected(10)
        assert hub.connected("car-1")
        # The vehicle id comes from the certificate; the hello carries the vehicle info.
        peer, hello = handler.connects[0]
        assert peer.vehicle_id == "car-1"
        assert hello.body["vehicle"]["vin"] == "WVWZZZ1JZXW000001"
        seqs = [await car.send(MessageType.EVENT, _event(i)) for i in range(200)]
        assert seqs == list(range(1, 201))
        await handler.wait_until(lambda: len(handler.of("car-1")) == 200)
        got = [e.body["data"]["i"] for e in handler.of("car-1")]
        assert got == list(range(200))
        # Cumulative acks trim the car's outbox completely.
        await wait_for(lambda: car.outbox.acked_seq == 200)
        stats = await car.outbox.stats()
        assert stats.count == 0
        await wait_for(lambda: hub.round_trip_ms("car-1") is not None)
        rtt = hub.round_trip_ms("car-1")
        assert rtt is not None and 0 <= rtt < 5000
    finally:
        await car.stop()
        await hub.stop()


async def test_snapshot_after_each_connect(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    calls = 0

    def snapshot() -> dict[str, object]:
        nonlocal calls
        calls += 1
        return {"Vehicle.Speed": {"value": calls, "ts": time.time()}}

    car = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl, snapshot=snapshot)
    try:
        await car.start()
        await handler.wait_until(lambda: len(handler.of("car-1", "snapshot")) == 1)
        await hub.disconnect("car-1", "test: reconnect please")
        await handler.wait_until(lambda: len(handler.of("car-1", "snapshot")) == 2)
        values = [e.body["signals"]["Vehicle.Speed"]["value"] for e in handler.of("car-1")]
        assert values == [1, 2]
    finally:
        await car.stop()
        await hub.stop()


async def test_hub_to_car_durable_and_ttl(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    inbox = CarInbox()
    # Queued while the car is offline: delivered after it connects.
    await hub.send(
        "car-1",
        MessageType.NOTIFY,
        {"message": "hello car", "priority": "normal", "expires_at": time.time() + 60},
    )
    await hub.send(
        "car-1",
        MessageType.COMMAND,
        {"command": "clear_dtcs", "args": {}, "expires_at": time.time() - 1},
    )
    await hub.send(
        "car-1",
        MessageType.NOTIFY,
        {"message": "second", "priority": "high", "expires_at": time.time() + 60},
    )
    car = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl, inbox=inbox)
    try:
        await car.start()
        await wait_for(lambda: len(inbox.messages) == 2)
        assert [e.body["message"] for e in inbox.messages] == ["hello car", "second"]
        assert [e.seq for e in inbox.messages] == [1, 3]  # the expired command was dropped
        # Live delivery while connected; the car's ledger acks trim the hub's outbox.
        await hub.send(
            "car-1",
            MessageType.VOCABULARY,
            {"language": "en", "entities": ["kitchen light"], "areas": ["kitchen"]},
        )
        await wait_for(lambda: len(inbox.messages) == 3)
        outbox = await hub._outbox("car-1")
        await wait_for(lambda: outbox.acked_seq == 4)
    finally:
        await car.stop()
        await hub.stop()


async def test_second_connection_of_same_car_replaces_first(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    url = f"wss://127.0.0.1:{hub.port}"
    first = make_car(tmp_path / "a", url, car_ssl, backoff_min_s=5.0, backoff_max_s=5.0)
    second = make_car(tmp_path / "b", url, car_ssl)
    try:
        await first.start()
        assert await first.wait_connected(10)
        await second.start()
        assert await second.wait_connected(10)
        await wait_for(lambda: not first.connected)
        assert first.last_close_reason is not None
        assert "replaced" in first.last_close_reason
        assert hub.connected("car-1")
        await second.send(MessageType.EVENT, _event(1))
        await handler.wait_until(lambda: len(handler.of("car-1")) == 1)
    finally:
        await first.stop()
        await second.stop()
        await hub.stop()


async def test_reconnect_resends_unacked_without_duplicates(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    """Messages queued offline are delivered once the hub is up; a restart loses nothing."""
    handler = RecordingHandler()
    car = make_car(tmp_path / "car", "wss://127.0.0.1:1", car_ssl)
    await car.start()
    try:
        for i in range(50):
            await car.send(MessageType.EVENT, _event(i))
        assert not car.connected
        hub = await start_hub(home_ca, tmp_path / "hub", handler)
        car2: CarLink | None = None
        try:
            await car.stop()
            car2 = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl)
            await car2.start()
            await handler.wait_until(lambda: len(handler.of("car-1")) == 50)
            assert [e.seq for e in handler.of("car-1")] == list(range(1, 51))
        finally:
            if car2 is not None:
                await car2.stop()
            await hub.stop()
    finally:
        await car.stop()


async def test_two_cars_are_independent(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext, car2_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    url = f"wss://127.0.0.1:{hub.port}"
    a = make_car(tmp_path / "a", url, car_ssl, "car-1")
    b = make_car(tmp_path / "b", url, car2_ssl, "car-2")
    try:
        await asyncio.gather(a.start(), b.start())
        for i in range(20):
            await a.send(MessageType.EVENT, _event(i))
            await b.send(MessageType.EVENT, _event(100 + i))
        await handler.wait_until(
            lambda: len(handler.of("car-1")) == 20 and len(handler.of("car-2")) == 20
        )
        # Each car has its own sequence numbers.
        assert [e.seq for e in handler.of("car-1")] == list(range(1, 21))
        assert [e.seq for e in handler.of("car-2")] == list(range(1, 21))
    finally:
        await a.stop()
        await b.stop()
        await hub.stop()


async def test_failed_start_cleans_up(tmp_path: Path, home_ca: HomeCA) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    clash = HubServer(
        ca=home_ca, state_dir=tmp_path / "hub2", handler=handler, host="127.0.0.1", port=hub.port
    )
    try:
        with pytest.raises(OSError):
            await clash.start()
        # Everything it opened is closed again; stopping twice is harmless.
        assert clash._ledger is None and clash._runner is None
        await clash.stop()
    finally:
        await hub.stop()
