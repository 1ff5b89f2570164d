"""The home CA's record of issued certificates grows past the old 64 KiB cap and stays usable.

Real CA, real certificates, real mutual TLS on 127.0.0.1. Keys are EC P-256
(generated in well under a millisecond), and one key can sign several CSRs:
the CA only uses the CSR's public key, so a renewal with the same key is as
good a record as one with a fresh key.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

import bridge.pki
from bridge.errors import CertificateError
from bridge.issued import PRUNE_AFTER_EXPIRY, IssuedCertificate, IssuedStore
from bridge.pki import CarIdentity, HomeCA
from bridge.protocol import MessageType
from tests.bridge.link_testing import (
    RecordingHandler,
    make_car,
    start_hub,
    tls_accepted,
)
from tests.bridge.pki_testing import csr_for_new_key, issue_many, tls_handshake

OLD_CAP = 64 * 1024


def _paired(ca: HomeCA, directory: Path, vehicle_id: str, *, days: int = 365) -> CarIdentity:
    identity = CarIdentity.create(directory)
    cert = ca.sign_car_csr(identity.csr_pem(vehicle_id), vehicle_id=vehicle_id, days=days)
    identity.store_certificate(cert, ca.ca_cert_pem)
    return identity


def _event() -> dict[str, object]:
    return {"kind": "alert", "ts": 1.0, "data": {}}


async def test_a_thousand_certificates_then_connect_revoke_and_restart(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca = HomeCA.create(ca_dir)
    # The stolen car's first certificate, superseded by a renewal issued after
    # a thousand others: revoking the car must refuse both.
    stolen_old = _paired(ca, tmp_path / "stolen-old", "car-stolen")
    issue_many(ca, 1000, per_vehicle=4)
    stolen = _paired(ca, tmp_path / "stolen", "car-stolen")
    keeper = _paired(ca, tmp_path / "keeper", "car-keeper")
    assert len(ca.issued_certificates()) == 1003
    assert ca.issued_path.stat().st_size > 3 * OLD_CAP

    hub = await start_hub(ca, tmp_path / "hub", RecordingHandler())
    try:
        for identity in (stolen_old, stolen, keeper):
            assert await tls_accepted(hub.port, identity.client_ssl_context())
        events = await hub.revoke("car-stolen")
        assert [(e.vehicle_id, len(e.serials)) for e in events] == [("car-stolen", 2)]
        assert not await tls_accepted(hub.port, stolen.client_ssl_context())
        assert not await tls_accepted(hub.port, stolen_old.client_ssl_context())
        assert await tls_accepted(hub.port, keeper.client_ssl_context())
    finally:
        await hub.stop()

    # Restart: a new CA object and a new hub read everything back from disk.
    reloaded = HomeCA.load(ca_dir)
    handler = RecordingHandler()
    hub = await start_hub(reloaded, tmp_path / "hub", handler)
    url = f"wss://127.0.0.1:{hub.port}"
    car = make_car(tmp_path / "keeper-link", url, keeper.client_ssl_context(), "car-keeper")
    try:
        assert not await tls_accepted(hub.port, stolen.client_ssl_context())
        assert not await tls_accepted(hub.port, stolen_old.client_ssl_context())
        await car.start()
        assert await car.wait_connected(10)
        await car.send(MessageType.EVENT, _event())
        await handler.wait_until(lambda: len(handler.of("car-keeper", "event")) == 1)
        serials = {r.serial for r in reloaded.issued_certificates() if r.vehicle_id == "car-stolen"}
        assert len(serials) == 2 and all(reloaded.is_revoked(s) for s in serials)
        assert {r.serial_number for r in reloaded.load_crl()} == serials
    finally:
        await car.stop()
        await hub.stop()


def test_a_record_past_the_old_cap_is_read_by_a_fresh_ca(tmp_path: Path) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    issue_many(ca, 240, per_vehicle=2)  # 240 records: the old cap broke at 212
    victim = _paired(ca, tmp_path / "victim", "car-victim")
    ca.revoke("car-victim")
    fresh = HomeCA.load(tmp_path / "ca")
    serial = victim.certificate()
    assert serial is not None
    assert fresh.is_revoked(serial.serial_number)
    assert len(fresh.issued_certificates()) == 241
    result = tls_handshake(fresh.server_ssl_context(), victim.client_ssl_context())
    assert "revoked" in str(result.server_error)


def test_handshake_check_uses_the_cached_record_until_the_file_changes(tmp_path: Path) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    car = _paired(ca, tmp_path / "car", "car-1")
    cert = car.certificate()
    assert cert is not None
    store = IssuedStore(ca.issued_path)
    first = store.snapshot()
    assert store.snapshot() is first  # unchanged file: no re-read
    # Another process (here another CA object) revokes: the change is seen.
    HomeCA.load(tmp_path / "ca").revoke("car-1")
    assert not first.is_revoked(cert.serial_number)
    assert store.snapshot().is_revoked(cert.serial_number)
    assert ca.is_revoked(cert.serial_number)


def test_a_corrupt_or_oversized_record_fails_closed(tmp_path: Path) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    car = _paired(ca, tmp_path / "car", "car-1")
    cert = car.certificate()
    assert cert is not None
    assert not ca.is_revoked(cert.serial_number)  # cached now
    ca.issued_path.write_text('{"version": 1, "certificates": [{"serial": "zz"}]}')
    with pytest.raises(CertificateError, match="corrupt"):
        ca.is_revoked(cert.serial_number)
    store = IssuedStore(ca.issued_path, max_bytes=1024)
    ca.issued_path.write_bytes(b" " * 2048)
    with pytest.raises(CertificateError, match="past the 1024"):
        store.snapshot()


def test_an_old_pretty_printed_record_still_loads(tmp_path: Path) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    car = _paired(ca, tmp_path / "car", "car-1")
    rows = [r.to_json() for r in ca.issued_certificates()]
    old = {"version": 1, "crl_number": 1, "certificates": rows}
    ca.issued_path.write_text(json.dumps(old, indent=2) + "\n")
    cert = car.certificate()
    assert cert is not None
    fresh = HomeCA.load(tmp_path / "ca")
    assert [r.serial for r in fresh.issued_certificates()] == [cert.serial_number]
    fresh.revoke("car-1")
    assert fresh.is_revoked(cert.serial_number)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    before = ca.issued_path.stat().st_ino
    _paired(ca, tmp_path / "car", "car-1")
    assert ca.issued_path.stat().st_ino != before  # replaced by a rename, not edited in place
    assert sorted(p.name for p in (tmp_path / "ca").iterdir() if p.name.endswith(".tmp")) == []


def test_pruning_drops_expired_records_but_keeps_revoked_ones_until_they_expire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    short = _paired(ca, tmp_path / "short", "car-short", days=1)
    short_revoked = _paired(ca, tmp_path / "short-rev", "car-short-rev", days=1)
    long_revoked = _paired(ca, tmp_path / "long-rev", "car-long-rev", days=400)
    long = _paired(ca, tmp_path / "long", "car-long", days=400)
    ca.revoke("car-short-rev")
    ca.revoke("car-long-rev")
    serial = {
        name: cert.serial_number
        for name, identity in {
            "short": short,
            "short_rev": short_revoked,
            "long_rev": long_revoked,
            "long": long,
        }.items()
        if (cert := identity.certificate()) is not None
    }
    real_now = bridge.pki._now

    def later(days: float) -> None:
        at = real_now() + dt.timedelta(days=days)
        monkeypatch.setattr(bridge.pki, "_now", lambda: at)

    # Expired, but not for long enough: kept (a hub clock may have been set back).
    later(1 + PRUNE_AFTER_EXPIRY.days - 1)
    assert ca.prune() == 0
    # Past the grace: the two short certificates go, revoked or not, from the CRL too.
    later(1 + PRUNE_AFTER_EXPIRY.days + 1)
    assert ca.prune() == 2
    on_record = {r.serial for r in ca.issued_certificates()}
    assert on_record == {serial["long_rev"], serial["long"]}
    assert {r.serial_number for r in ca.load_crl()} == {serial["long_rev"]}
    assert ca.is_revoked(serial["long_rev"]) and not ca.is_revoked(serial["short_rev"])
    # Signing prunes as well, and never drops the revoked certificate before it expires.
    ca.sign_car_csr(csr_for_new_key(), vehicle_id="car-new")
    assert ca.is_revoked(serial["long_rev"])

    # Back to the real clock: the revoked certificate is still refused at the handshake.
    monkeypatch.setattr(bridge.pki, "_now", real_now)
    server = HomeCA.load(tmp_path / "ca").server_ssl_context()
    assert "revoked" in str(tls_handshake(server, long_revoked.client_ssl_context()).server_error)
    assert tls_handshake(server, long.client_ssl_context()).ok


def _record(serial: int) -> IssuedCertificate:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return IssuedCertificate(
        serial=serial,
        vehicle_id=f"car-{serial}",
        not_before=now,
        not_after=now + dt.timedelta(days=365),
        sha256="ab" * 32,
    )


def test_the_store_warns_before_its_limit_and_refuses_only_new_certificates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = IssuedStore(
        tmp_path / "issued.json", max_bytes=8192, issue_limit_bytes=4096, warn_bytes=2048
    )
    records = [_record(n) for n in range(1, 9)]  # ~230 bytes each
    with caplog.at_level(logging.WARNING, logger="bridge.issued"):
        store.write(records, crl_number=1, issuing=True)
    assert not caplog.records
    records += [_record(n) for n in range(9, 13)]
    with caplog.at_level(logging.WARNING, logger="bridge.issued"):
        store.write(records, crl_number=1, issuing=True)
    assert any("issuing stops at 4096" in r.getMessage() for r in caplog.records)
    grown = records + [_record(n) for n in range(13, 30)]
    with pytest.raises(CertificateError, match="past its limit of 4096"):
        store.write(grown, crl_number=1, issuing=True)
    assert len(store.snapshot().records) == 12  # the refused write changed nothing
    # A revocation past the issuing limit is still written: refusing a car never fails.
    revoked = [replace(r, revoked_at=r.not_before) for r in grown]
    store.write(revoked, crl_number=2)
    assert store.snapshot().is_revoked(29)
