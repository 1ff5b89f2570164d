"""Ack only after the handler returned: retries, dead letters, message ids, refusals."""

from __future__ import annotations

import ssl
from pathlib import Path

from bridge.client import CarLink
from bridge.deadletter import DeadLetter, read_dead_letters
from bridge.ledger import HANDED_BATCH, InboundLedger
from bridge.pki import HomeCA
from bridge.protocol import Envelope, MessageType
from bridge.server import PeerInfo
from tests.bridge.link_testing import RecordingHandler, make_car, start_hub, wait_for
from tests.bridge.test_bad_input import closed_with, frame, hello, raw_peer


class FlakyHandler(RecordingHandler):
    """Raises for the event numbered ``bad`` the first ``failures`` times it sees it."""

    def __init__(self, bad: int, failures: int) -> None:
        super().__init__()
        self.bad = bad
        self.failures = failures
        self.attempts: list[tuple[int, bool, str]] = []

    async def on_message(self, peer: PeerInfo, env: Envelope) -> None:
        n = env.body.get("data", {}).get("n")
        self.attempts.append((n, env.redelivered, env.message_id))
        if n == self.bad and self.failures > 0:
            self.failures -= 1
            raise RuntimeError(f"cannot take event {n}")
        await super().on_message(peer, env)


async def _send_events(car: CarLink, count: int) -> None:
    for n in range(1, count + 1):
        await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"n": n}})


async def test_handler_raising_once_gets_the_message_again_exactly_once(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = FlakyHandler(bad=2, failures=1)
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    car = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl)
    try:
        await car.start()
        await _send_events(car, 4)
        await wait_for(lambda: car.outbox.acked_seq == 4)
        assert [e.body["data"]["n"] for e in handler.of("car-1")] == [1, 2, 3, 4]
        # The failed attempt was not acked: the car resent it on a new link, flagged.
        assert car.connects >= 2
        tries_of_2 = [(r, mid) for n, r, mid in handler.attempts if n == 2]
        assert [r for r, _ in tries_of_2] == [False, True]
        assert tries_of_2[0][1] == tries_of_2[1][1] == f"{car.outbox.stream_id}:2"
        assert await hub.dead_letters() == []
    finally:
        await car.stop()
        await hub.stop()


async def test_handler_always_raising_dead_letters_the_message_and_the_link_goes_on(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    reported: list[DeadLetter] = []
    handler = FlakyHandler(bad=2, failures=10**6)
    hub = await start_hub(home_ca, tmp_path / "hub", handler, on_dead_letter=reported.append)
    car = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", car_ssl)
    try:
        await car.start()
        await _send_events(car, 4)
        await wait_for(lambda: car.outbox.acked_seq == 4)
        assert [e.body["data"]["n"] for e in handler.of("car-1")] == [1, 3, 4]
        assert [n for n, _, _ in handler.attempts].count(2) == hub.limits.max_delivery_attempts
        assert len(reported) == 1
        letter = reported[0]
        assert (letter.peer, letter.seq, letter.type, letter.attempts) == ("car-1", 2, "event", 3)
        assert "cannot take event 2" in letter.reason
        # Later messages keep flowing on the same car.
        await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"n": 5}})
        await wait_for(lambda: car.outbox.acked_seq == 5)
        assert handler.of("car-1")[-1].body["data"]["n"] == 5
    finally:
        await car.stop()
        await hub.stop()
    # The payload is on disk, readable by another process after the hub stopped.
    stored = read_dead_letters(tmp_path / "hub" / "dead-letters.db")
    assert [(d.seq, d.body) for d in stored] == [
        (2, {"kind": "alert", "ts": 1.0, "data": {"n": 2}})
    ]
    assert stored[0].message_id == letter.message_id


async def test_home_only_types_from_a_car_are_refused_and_acked(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    try:
        async with raw_peer(hub.port, car_ssl) as ws:
            await hello(ws)
            await ws.send_bytes(frame("notify", 1, {"message": "x", "expires_at": 9e9}))
            await ws.send_bytes(frame("command", 2, {"command": "snapshot", "expires_at": 9e9}))
            await ws.send_bytes(frame("voice_reply", 3, {"request_id": "r", "text": "t"}))
            await ws.send_bytes(frame("vocabulary", 4, {"language": "en"}))
            await ws.send_bytes(frame("event", 5, {"kind": "alert", "data": {}}))
            await handler.wait_until(lambda: len(handler.messages) == 1)
        assert [e.type for e in handler.of("car-1")] == ["event"]
    finally:
        await hub.stop()


async def test_a_seq_far_past_the_last_one_closes_the_link_with_a_reason(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext, car2_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    try:
        async with raw_peer(hub.port, car_ssl) as ws:
            await hello(ws)
            await ws.send_bytes(frame("event", 1, {"kind": "alert"}))
            await ws.send_bytes(frame("event", 2**63 - 1, {"kind": "alert"}))
            code, reason = await closed_with(ws)
        assert code == 1002 and "implausible seq" in reason
        # Nothing was recorded past seq 1: the car's next message is still taken.
        async with raw_peer(hub.port, car_ssl) as ws:
            reply = await hello(ws)
            assert reply.body["acked_seq"] == 1
            await ws.send_bytes(frame("event", 2, {"kind": "alert"}))
            await handler.wait_until(lambda: len(handler.messages) == 2)
        # A peer with no record may not open with an absurd seq either.
        async with raw_peer(hub.port, car2_ssl) as ws:
            await hello(ws)
            await ws.send_bytes(frame("event", 2**60, {"kind": "alert"}))
            code, reason = await closed_with(ws)
        assert code == 1002 and "implausible seq" in reason
    finally:
        await hub.stop()


async def test_redelivered_flag_survives_a_crash_and_not_a_clean_stop(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = InboundLedger(path)
    await ledger.open()
    assert await ledger.mark_handing("car-1", 1) is False
    assert await ledger.mark_handing("car-1", 1) is True  # same process: handed before
    ledger.advance("car-1", 1)
    await ledger.flush()
    # A "crash": a second process opens the file while the first never closed it.
    crashed = InboundLedger(path)
    await crashed.open()
    assert crashed.last("car-1") == 1
    assert await crashed.mark_handing("car-1", 2) is True  # may have been handed over
    assert await crashed.mark_handing("car-1", HANDED_BATCH + 2) is False
    await crashed.close()
    await ledger.close()
    clean = InboundLedger(path)
    await clean.open()
    assert await clean.mark_handing("car-1", HANDED_BATCH + 3) is False
    await clean.close()
