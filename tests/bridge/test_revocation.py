"""Revocation takes effect on live links: the link is closed and the next handshake fails.

Real mTLS on 127.0.0.1. "Refused at the handshake" is checked at the TLS level:
a refused client never gets to read an HTTP response.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bridge.pki import HomeCA
from bridge.protocol import MessageType
from bridge.renewal import RevocationEvent
from tests.bridge.link_testing import (
    RecordingHandler,
    make_car,
    pair_car,
    start_hub,
    tls_accepted,
    wait_for,
)


def _event() -> dict[str, object]:
    return {"kind": "alert", "ts": time.time(), "data": {}}


async def test_hub_revoke_closes_the_live_link_and_refuses_the_next_handshake(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    bad_ctx = pair_car(home_ca, tmp_path / "id-bad", "car-stolen")
    good_ctx = pair_car(home_ca, tmp_path / "id-good", "car-good")
    handler = RecordingHandler()
    events: list[RevocationEvent] = []
    hub = await start_hub(home_ca, tmp_path / "hub", handler, on_revocation=events.append)
    url = f"wss://127.0.0.1:{hub.port}"
    bad = make_car(tmp_path / "bad", url, bad_ctx, "car-stolen")
    good = make_car(tmp_path / "good", url, good_ctx, "car-good")
    try:
        await bad.start()
        await good.start()
        assert await bad.wait_connected(10) and await good.wait_connected(10)
        assert await tls_accepted(hub.port, bad_ctx)  # control
        result = await hub.revoke("car-stolen")
        # The live link was closed by the hub with a reason...
        assert not hub.connected("car-stolen")
        await wait_for(lambda: "certificate revoked" in (bad.last_close_reason or ""))
        serials = {r.serial for r in home_ca.issued_certificates() if r.vehicle_id == "car-stolen"}
        assert result == events
        assert [(e.vehicle_id, set(e.serials), e.disconnected) for e in events] == [
            ("car-stolen", serials, True)
        ]
        # ...and the running TLS context refuses it now (CRL reloaded), not only HTTP.
        assert not await tls_accepted(hub.port, bad_ctx)
        n = len(handler.connects)
        await bad.send(MessageType.EVENT, _event())
        await wait_for(lambda: "cannot connect" in (bad.last_close_reason or ""), 10)
        assert len(handler.connects) == n
        # The other car is untouched.
        assert good.connected and hub.connected("car-good")
        await good.send(MessageType.EVENT, _event())
        await handler.wait_until(lambda: len(handler.of("car-good", "event")) == 1)
        assert await tls_accepted(hub.port, good_ctx)
    finally:
        await bad.stop()
        await good.stop()
        await hub.stop()


async def test_revocation_by_another_process_is_picked_up_from_crl_pem(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    ctx = pair_car(home_ca, tmp_path / "id", "car-watched")
    handler = RecordingHandler()
    events: list[RevocationEvent] = []
    hub = await start_hub(
        home_ca, tmp_path / "hub", handler, on_revocation=events.append, crl_watch_s=0.1
    )
    car = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", ctx, "car-watched")
    try:
        await car.start()
        assert await car.wait_connected(10)
        # What `carhub-bridge revoke` does: its own HomeCA object on the same directory.
        other = await asyncio.to_thread(HomeCA.load, home_ca.directory)
        await asyncio.to_thread(other.revoke, "car-watched")
        await wait_for(lambda: not hub.connected("car-watched"), 10)
        await wait_for(lambda: "certificate revoked" in (car.last_close_reason or ""))
        assert [(e.vehicle_id, e.disconnected) for e in events] == [("car-watched", True)]
        assert not await tls_accepted(hub.port, ctx)
    finally:
        await car.stop()
        await hub.stop()


async def test_refresh_without_changes_reports_nothing(tmp_path: Path, home_ca: HomeCA) -> None:
    ctx = pair_car(home_ca, tmp_path / "id", "car-stays")
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    car = make_car(tmp_path / "car", f"wss://127.0.0.1:{hub.port}", ctx, "car-stays")
    try:
        await car.start()
        assert await car.wait_connected(10)
        assert await hub.refresh_revocations() == []
        assert car.connected and car.connects == 1
    finally:
        await car.stop()
        await hub.stop()
