"""The durable outbox: order, cumulative ack, compaction, size bound, crash and disk-full."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from bridge.errors import OutboxFullError, OutboxStorageError, ProtocolError
from bridge.outbox import Outbox, OutboxStore
from bridge.protocol import MessageType, decode

REPO = Path(__file__).resolve().parents[2]


def _state(**signals: object) -> dict[str, object]:
    return {"signals": {k.replace("_", "."): {"value": v, "ts": 1.0} for k, v in signals.items()}}


def _event(i: int) -> dict[str, object]:
    return {"kind": "alert", "ts": 1.0, "data": {"i": i}}


def _open(path: Path, **kwargs: object) -> OutboxStore:
    store = OutboxStore(path, **kwargs)  # type: ignore[arg-type]
    store.open()
    return store


def test_order_ack_and_seq_survive_reopen(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db")
    seqs = [store.append("event", _event(i)) for i in range(10)]
    assert seqs == list(range(1, 11))
    assert [i.seq for i in store.pending()] == seqs
    store.ack(4)
    assert [i.seq for i in store.pending()] == list(range(5, 11))
    store.ack(2)  # an older ack changes nothing
    assert store.acked_seq == 4
    store.ack(10)
    assert store.pending() == []
    store.close()
    # Sequence numbers are never reused, even when everything was acked.
    store = _open(tmp_path / "o.db")
    assert store.last_seq == 10 and store.acked_seq == 10
    assert store.append("event", _event(11)) == 11
    store.close()


def test_pending_frames_decode_to_the_stored_message(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db")
    body = {"request_id": "r1", "text": "turn on the light", "language": "en"}
    store.append("voice_request", body)
    item = store.pending()[0]
    env = decode(item.frame())
    assert env.type == "voice_request" and env.seq == 1
    assert env.body["text"] == "turn on the light"
    assert item.envelope() == env
    store.close()


def test_append_validates_like_the_receiver(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db")
    with pytest.raises(ProtocolError, match="expires_at"):
        store.append("notify", {"message": "no ttl"})
    with pytest.raises(ProtocolError, match="control"):
        store.append("ack", {"seq": 1})
    with pytest.raises(ProtocolError):
        store.append("event", {"kind": "alert", "data": {"x": object()}})
    assert store.last_seq == 0
    store.close()


def test_unsent_state_coalesces_into_the_tail(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db")
    a = store.append("state", _state(Vehicle_Speed=10))
    b = store.append("state", _state(Vehicle_Speed=20, Vehicle_TraveledDistance=5))
    assert a == b == 1
    body = orjson.loads(store.pending()[0].body)
    assert body["signals"]["Vehicle.Speed"]["value"] == 20
    assert body["signals"]["Vehicle.TraveledDistance"]["value"] == 5
    # Row 1 was handed to the sender: it is never changed again.
    c = store.append("state", _state(Vehicle_Speed=30))
    assert c == 2
    # An event in between stops coalescing: order relative to events is kept.
    store.append("event", _event(1))
    d = store.append("state", _state(Vehicle_Speed=40))
    assert d == 4
    assert [i.type for i in store.pending()] == ["state", "state", "event", "state"]
    store.close()


def test_rows_from_an_earlier_process_are_never_merged_into(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db")
    store.append("state", _state(Vehicle_Speed=1))
    store.close()
    store = _open(tmp_path / "o.db")  # that row may have been sent before the restart
    assert store.append("state", _state(Vehicle_Speed=2)) == 2
    store.close()


def test_compaction_can_be_disabled(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db", compact_state=False)
    assert [store.append("state", _state(Vehicle_Speed=i)) for i in range(3)] == [1, 2, 3]
    store.close()


def test_size_bound_compacts_state_then_drops_oldest_state_keeps_events(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db", max_bytes=8_000, compact_state=False)
    # Many state rows repeating the same two signals, and events in between.
    for i in range(200):
        store.append("state", _state(Vehicle_Speed=i, Vehicle_TraveledDistance=i))
        if i % 40 == 0:
            store.append("event", _event(i))
    items = store.pending()
    events = [i for i in items if i.type == "event"]
    states = [i for i in items if i.type == "state"]
    assert len(events) == 5  # never compacted, never dropped
    # Each time the bound was hit, deep compaction removed every superseded row;
    # the newest value of each signal always survives.
    assert len(states) < 60
    latest = {}
    for item in states:
        latest.update(orjson.loads(item.body)["signals"])
    assert latest["Vehicle.Speed"]["value"] == 199
    assert latest["Vehicle.TraveledDistance"]["value"] == 199
    assert store.stats().bytes <= 8_000
    # Distinct signals cannot be compacted: the oldest state rows are dropped.
    for i in range(200):
        store.append("state", {"signals": {f"Vehicle.Custom{i}": {"value": i, "ts": 1.0}}})
    items = store.pending()
    assert len([i for i in items if i.type == "event"]) == 5
    names = [next(iter(orjson.loads(i.body)["signals"])) for i in items if i.type == "state"]
    assert "Vehicle.Custom199" in names and "Vehicle.Custom0" not in names
    assert store.stats().bytes <= 8_000
    store.close()


def test_events_alone_over_the_bound_raise_full(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db", max_bytes=4_000)
    seqs = []
    with pytest.raises(OutboxFullError, match="never dropped"):
        for i in range(1000):
            seqs.append(store.append("event", _event(i)))
    # Nothing already stored was lost, and state cannot push events out.
    assert [i.seq for i in store.pending()] == seqs
    with pytest.raises(OutboxFullError):
        store.append("state", _state(Vehicle_Speed=1))
    store.ack(seqs[-1])
    assert store.append("event", _event(0)) == seqs[-1] + 1
    store.close()


def test_message_bigger_than_the_bound_is_refused(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db", max_bytes=1_000)
    with pytest.raises(OutboxFullError, match="exceeds"):
        store.append("event", {"kind": "alert", "ts": 1.0, "data": {"blob": "x" * 2_000}})
    store.close()


def test_disk_full_is_reported_and_recovers(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db")
    store.append("event", _event(0))
    db = store._conn()
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    big = {"kind": "alert", "ts": 1.0, "data": {"blob": "x" * 100_000}}
    with pytest.raises(OutboxStorageError, match="full"):
        store.append("event", big)
    # Memory rolled back with the transaction: seq numbering is intact.
    assert store.last_seq == 1
    assert [i.seq for i in store.pending()] == [1]
    db.execute("PRAGMA max_page_count = 1073741823")
    assert store.append("event", big) == 2
    store.close()


def test_unopenable_database_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "o.db").mkdir()  # a directory where the file should be
    with pytest.raises(OutboxStorageError):
        OutboxStore(tmp_path / "o.db").open()


def test_rebase_after_the_outbox_was_lost(tmp_path: Path) -> None:
    store = _open(tmp_path / "o.db")
    store.append("event", _event(1))
    store.append("event", _event(2))
    # The peer has seen up to 500 from an earlier life of this outbox.
    assert store.rebase(500) == 500
    assert [i.seq for i in store.pending()] == [501, 502]
    assert store.append("event", _event(3)) == 503
    assert store.rebase(10) == 0  # nothing to do when the peer is behind
    store.close()


def test_crash_mid_append_loses_nothing_that_was_confirmed(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bridge.procs", "append", str(db), "100000"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    confirmed: list[int] = []
    deadline = time.monotonic() + 20
    while len(confirmed) < 300 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        confirmed.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    # Lines printed before the kill that we had not read yet are confirmed too.
    confirmed += [int(x) for x in proc.stdout.read().split()]
    assert len(confirmed) >= 300
    store = _open(db)
    seqs = [i.seq for i in store.pending(limit=1_000_000)]
    assert seqs == list(range(1, len(seqs) + 1))  # contiguous, nothing half-written
    assert set(confirmed) <= set(seqs)
    assert store.last_seq == len(seqs)
    store.close()


async def test_async_outbox_group_commit_and_ack(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    await outbox.open()
    try:
        seqs = await asyncio.gather(
            *(outbox.append(MessageType.EVENT, _event(i)) for i in range(100))
        )
        assert sorted(seqs) == list(range(1, 101))
        assert await outbox.append_many([("event", _event(i)) for i in range(5)]) == list(
            range(101, 106)
        )
        await outbox.ack(50)
        assert outbox.acked_seq == 50
        items = await outbox.pending(limit=1000)
        assert [i.seq for i in items] == list(range(51, 106))
        stats = await outbox.stats()
        assert stats.count == 55 and stats.last_seq == 105
    finally:
        await outbox.close()


async def test_async_outbox_reports_storage_errors_and_keeps_working(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    await outbox.open()
    try:
        await outbox.append(MessageType.EVENT, _event(0))
        loop = asyncio.get_running_loop()

        def limit(pages: int | None) -> None:
            db = outbox.store._conn()
            if pages is None:
                pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")

        await loop.run_in_executor(outbox._executor, limit, None)
        big = {"kind": "alert", "ts": 1.0, "data": {"blob": "y" * 100_000}}
        with pytest.raises(OutboxStorageError):
            await outbox.append(MessageType.EVENT, big)
        await loop.run_in_executor(outbox._executor, limit, 1073741823)
        assert await outbox.append(MessageType.EVENT, big) == 2
    finally:
        await outbox.close()
