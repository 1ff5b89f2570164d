"""Child processes for crash tests (run as ``python -m tests.bridge.procs MODE ...``).

- ``append DB N``: append N events to an outbox, printing each seq once it is
  durable (the parent kills the process with SIGKILL part-way).
- ``car HOME_DIR URL TOTAL``: a car using CarLink that sends events numbered
  from where its outbox left off up to TOTAL, printing ``sent <seq>`` after
  each durable append; its identity (key, certificate, CA) is in HOME_DIR.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from bridge.client import CarLink
from bridge.outbox import OutboxStore
from bridge.pki import CarIdentity
from bridge.protocol import Envelope, MessageType


def append(db: Path, n: int) -> int:
    store = OutboxStore(db)
    store.open()
    for i in range(n):
        seq = store.append("event", {"kind": "alert", "ts": time.time(), "data": {"i": i}})
        print(seq, flush=True)
    store.close()
    return 0


async def car(home_dir: Path, url: str, total: int) -> int:
    async def on_message(env: Envelope) -> None:
        return None

    link = CarLink(
        home_dir=home_dir,
        hello_body={"agent_version": "test", "vehicle": {"vehicle_id": "car-1"}},
        on_message=on_message,
        snapshot=dict,
        url=url,
        ssl_context=CarIdentity.load(home_dir).client_ssl_context(),
        backoff_min_s=0.02,
        backoff_max_s=0.2,
        heartbeat_s=1.0,
        dead_after_s=5.0,
    )
    await link.start()
    # Events are the only messages (empty snapshot), so seq == event number.
    start = link.outbox.last_seq
    print(f"start {start}", flush=True)
    for i in range(start + 1, total + 1):
        body = {"kind": "alert", "ts": time.time(), "data": {"i": i}}
        seq = await link.send(MessageType.EVENT, body)
        assert seq == i, (seq, i)
        print(f"sent {seq}", flush=True)
        if i % 50 == 0:
            await asyncio.sleep(0.005)  # let the link drain while we produce
    for _ in range(600):  # at most 30 s for the last acks
        if link.outbox.acked_seq >= total:
            break
        await asyncio.sleep(0.05)
    print(f"acked {link.outbox.acked_seq}", flush=True)
    await link.stop()
    return 0


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "append":
        return append(Path(argv[1]), int(argv[2]))
    if mode == "car":
        return asyncio.run(car(Path(argv[1]), argv[2], int(argv[3])))
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
