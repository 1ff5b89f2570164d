"""Handshakes the hub must refuse, checked against the real listener on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import aiohttp

from bridge.pki import HomeCA
from bridge.protocol import MessageType
from tests.bridge.link_testing import (
    RecordingHandler,
    client_context,
    home_ca_material,
    make_ca,
    make_car,
    make_client_cert,
    pair_car,
    start_hub,
    wait_for,
)


async def _attempt(port: int, ctx: ssl.SSLContext) -> BaseException | None:
    """Open the WebSocket and send one frame; None if the hub accepted, else the error."""
    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(
                f"wss://127.0.0.1:{port}/carhub",
                ssl=ctx,
                timeout=aiohttp.ClientWSTimeout(ws_close=2),
            )
        except (aiohttp.ClientError, OSError, ssl.SSLError) as err:
            return err
        await ws.close()
        return None


async def _refused(
    tmp_path: Path, ca: HomeCA, ctx: ssl.SSLContext, good: ssl.SSLContext | None = None
) -> BaseException:
    handler = RecordingHandler()
    hub = await start_hub(ca, tmp_path / "hub", handler)
    try:
        if good is not None:  # control: the same setup with a valid certificate works
            assert await _attempt(hub.port, good) is None
        err = await _attempt(hub.port, ctx)
        assert err is not None, "the hub accepted a connection it must refuse"
        assert handler.connects == []
        assert not hub.connected("car-1")
        return err
    finally:
        await hub.stop()


async def test_no_client_certificate(tmp_path: Path, home_ca: HomeCA) -> None:
    ctx = client_context(tmp_path / "c", ca_pem=home_ca.ca_cert_pem)
    await _refused(tmp_path, home_ca, ctx)


async def test_certificate_from_another_ca(tmp_path: Path, home_ca: HomeCA) -> None:
    now = dt.datetime.now(dt.UTC)
    other_key, other = make_ca("Evil CA")
    key, cert = make_client_cert(
        other_key,
        other,
        "car-1",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=1),
    )
    # The client trusts the real home CA, so only the hub can be refusing here.
    ctx = client_context(tmp_path / "c", ca_pem=home_ca.ca_cert_pem, cert=cert, key=key)
    await _refused(tmp_path, home_ca, ctx)


async def test_expired_certificate(tmp_path: Path, home_ca: HomeCA) -> None:
    ca_key, ca_cert = home_ca_material(home_ca)
    now = dt.datetime.now(dt.UTC)
    key, cert = make_client_cert(
        ca_key,
        ca_cert,
        "car-1",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    ctx = client_context(tmp_path / "c", ca_pem=home_ca.ca_cert_pem, cert=cert, key=key)
    await _refused(tmp_path, home_ca, ctx)


async def test_not_yet_valid_certificate(tmp_path: Path, home_ca: HomeCA) -> None:
    ca_key, ca_cert = home_ca_material(home_ca)
    now = dt.datetime.now(dt.UTC)
    key, cert = make_client_cert(
        ca_key,
        ca_cert,
        "car-1",
        not_before=now + dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
    )
    ctx = client_context(tmp_path / "c", ca_pem=home_ca.ca_cert_pem, cert=cert, key=key)
    # Control: the same forging path with a valid window is accepted.
    gkey, gcert = make_client_cert(
        ca_key,
        ca_cert,
        "car-1",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=1),
    )
    good = client_context(tmp_path / "g", ca_pem=home_ca.ca_cert_pem, cert=gcert, key=gkey)
    await _refused(tmp_path, home_ca, ctx, good=good)


async def test_tls12_only_client(tmp_path: Path, home_ca: HomeCA) -> None:
    ca_key, ca_cert = home_ca_material(home_ca)
    now = dt.datetime.now(dt.UTC)
    key, cert = make_client_cert(
        ca_key,
        ca_cert,
        "car-1",
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=1),
    )
    ctx = client_context(
        tmp_path / "c", ca_pem=home_ca.ca_cert_pem, cert=cert, key=key, tls12_only=True
    )
    good = client_context(tmp_path / "g", ca_pem=home_ca.ca_cert_pem, cert=cert, key=key)
    # The control with the same certificate over TLS 1.3 is accepted, so the
    # refusal is about the version (the hub resets the handshake).
    await _refused(tmp_path, home_ca, ctx, good=good)


async def test_revoked_certificate_refused_and_live_link_closed(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    ctx = pair_car(home_ca, tmp_path / "car", "car-revoked")
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    car = make_car(tmp_path / "link", f"wss://127.0.0.1:{hub.port}", ctx, "car-revoked")
    try:
        await car.start()
        assert await car.wait_connected(10)
        await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {}})
        await handler.wait_until(lambda: len(handler.of("car-revoked")) == 1)
        # What the integration does on removal: revoke, reload the CRL, cut the link.
        home_ca.revoke("car-revoked")
        await hub.reload_crl()
        await hub.disconnect("car-revoked", "certificate revoked")
        await wait_for(lambda: not hub.connected("car-revoked"))
        assert await _attempt(hub.port, ctx) is not None
        # The car keeps retrying (with backoff) but never gets in again.
        n = len(handler.connects)
        await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {}})
        await wait_for(lambda: "cannot connect" in (car.last_close_reason or ""), 10)
        assert len(handler.connects) == n
        assert len(handler.of("car-revoked")) == 1
    finally:
        await car.stop()
        await hub.stop()


async def test_revoked_certificate_refused_by_a_fresh_hub(tmp_path: Path, home_ca: HomeCA) -> None:
    ctx = pair_car(home_ca, tmp_path / "car", "car-revoked-2")
    home_ca.revoke("car-revoked-2")
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    try:
        assert await _attempt(hub.port, ctx) is not None
        assert handler.connects == []
    finally:
        await hub.stop()
