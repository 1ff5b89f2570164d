"""Outbox stream identity: a sender that lost its outbox is not mistaken for a resender.

Without stream ids, a car whose outbox was deleted numbers from 1 again and the
hub, which remembers the old highest seq, drops the new messages as
duplicates; the same holds from the hub to the car. Real mTLS on 127.0.0.1.
"""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path

import pytest

from bridge.ledger import InboundLedger
from bridge.outbox import Outbox, OutboxStore
from bridge.pki import HomeCA
from bridge.protocol import MessageType, decode
from tests.bridge.link_testing import CarInbox, RecordingHandler, make_car, start_hub, wait_for


def _event(i: int) -> dict[str, object]:
    return {"kind": "alert", "ts": time.time(), "data": {"i": i}}


def _delete_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_stream_id_is_random_per_database_and_persistent(tmp_path: Path) -> None:
    a = OutboxStore(tmp_path / "a.db")
    a.open()
    first = a.stream_id
    a.append("event", _event(1))
    a.close()
    a.open()
    assert a.stream_id == first  # kept across restarts
    a.close()
    b = OutboxStore(tmp_path / "b.db")
    b.open()
    assert b.stream_id != first
    assert len(first) == 16 and int(first, 16) > 0
    b.close()
    _delete_db(tmp_path / "a.db")
    a.open()
    assert a.stream_id != first  # a recreated database is a new stream
    a.close()


async def test_ledger_resets_a_peer_only_when_its_stream_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = InboundLedger(tmp_path / "ledger.db")
    await ledger.open()
    ledger.advance("car-1", 7)
    await ledger.flush()
    # First stream id seen for a known peer (an upgraded sender): adopt, keep seq.
    assert await ledger.observe_stream("car-1", "aaaa") is False
    assert ledger.last("car-1") == 7
    assert await ledger.observe_stream("car-1", "aaaa") is False
    with caplog.at_level(logging.WARNING, logger="bridge.ledger"):
        assert await ledger.observe_stream("car-1", "bbbb") is True
    assert "new message stream" in caplog.text
    assert ledger.last("car-1") == 0
    ledger.advance("car-1", 2)
    await ledger.close()
    again = InboundLedger(tmp_path / "ledger.db")
    await again.open()
    assert again.stream("car-1") == "bbbb"
    assert again.last("car-1") == 2
    await again.close()


async def test_car_outbox_lost_new_messages_still_arrive(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    url = f"wss://127.0.0.1:{hub.port}"
    home = tmp_path / "car"
    car = make_car(home, url, car_ssl)
    try:
        await car.start()
        for i in range(30):
            await car.send(MessageType.EVENT, _event(i))
        await handler.wait_until(lambda: len(handler.of("car-1")) == 30)
        await wait_for(lambda: car.outbox.acked_seq == 30)
        old_stream = car.outbox.stream_id
    finally:
        await car.stop()
    # The car is reinstalled: its outbox is gone (the hub's ledger still says 30).
    _delete_db(home / "outbox.db")
    # Offline it queues MORE messages than the hub has seen, so the old renumbering
    # fallback (rebase, only when the hub is ahead) cannot help: seqs 1..40.
    offline = Outbox(home / "outbox.db")
    await offline.open()
    assert offline.stream_id != old_stream
    seqs = [await offline.append(MessageType.EVENT, _event(100 + i)) for i in range(40)]
    assert seqs == list(range(1, 41))
    await offline.close()
    car = make_car(home, url, car_ssl)
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.ledger"):
            await car.start()
            await handler.wait_until(lambda: len(handler.of("car-1")) == 70)
        got = [e.body["data"]["i"] for e in handler.of("car-1")]
        assert got == list(range(30)) + [100 + i for i in range(40)]  # all, once, in order
        assert "new message stream" in caplog.text
        await wait_for(lambda: car.outbox.acked_seq == 40)
    finally:
        await car.stop()
        await hub.stop()


async def test_hub_outbox_lost_new_messages_still_reach_the_car(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    state = tmp_path / "hub"
    hub = await start_hub(home_ca, state, handler)
    inbox = CarInbox()
    car = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl, inbox=inbox)

    def notify(text: str) -> dict[str, object]:
        return {"message": text, "priority": "normal", "expires_at": time.time() + 60}

    try:
        await car.start()
        for i in range(5):
            await hub.send("car-1", MessageType.NOTIFY, notify(f"old {i}"))
        await wait_for(lambda: len(inbox.messages) == 5)
        outbox = await hub._outbox("car-1")
        await wait_for(lambda: outbox.acked_seq == 5)
    finally:
        await car.stop()
        await hub.stop()
    # The hub is reinstalled with the same CA: its per-car outbox and ledger are gone.
    _delete_db(state / "cars" / "car-1" / "outbox.db")
    _delete_db(state / "ledger.db")
    hub = await start_hub(home_ca, state, handler)
    # More than the car has seen from the old stream (5): seqs 1..8.
    for i in range(8):
        await hub.send("car-1", MessageType.NOTIFY, notify(f"new {i}"))
    car = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl, inbox=inbox)
    try:
        await car.start()
        await wait_for(lambda: len(inbox.messages) == 13)
        texts = [e.body["message"] for e in inbox.messages]
        assert texts == [f"old {i}" for i in range(5)] + [f"new {i}" for i in range(8)]
        outbox = await hub._outbox("car-1")
        await wait_for(lambda: outbox.acked_seq == 8)
    finally:
        await car.stop()
        await hub.stop()


def test_hello_stream_fields_are_validated() -> None:
    ok = b'{"v":1,"type":"hello","seq":0,"ts":1,"body":{"protocols":[1],"stream_id":"00ff"}}'
    assert decode(ok).body["stream_id"] == "00ff"
    from bridge.errors import ProtocolError

    bad = b'{"v":1,"type":"hello","seq":0,"ts":1,"body":{"protocols":[1],"acked_stream":"a b"}}'
    with pytest.raises(ProtocolError, match="acked_stream"):
        decode(bad)
