"""Certificate renewal over the live mTLS link (real sockets on 127.0.0.1).

Short-lived certificates (1 day) with a renewal window of 2 days make a car
"near expiry" without faking any clock the TLS stack uses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.client import CarLink
from bridge.errors import CertificateError
from bridge.pki import NEXT_CAR_CERT_FILE, CarIdentity, HomeCA
from bridge.protocol import Envelope, MessageType
from bridge.renewal import (
    RENEWAL_STATE_FILE,
    CarRenewal,
    HubRenewals,
    RenewalEvent,
    RenewalPolicy,
)
from tests.bridge.link_testing import CarInbox, RecordingHandler, car_hello, start_hub, wait_for

# A 1-day certificate is inside this window (the whole lifetime, at most 2 days).
NEAR = RenewalPolicy(before=dt.timedelta(days=2), fraction=1.0)


def _identity(ca: HomeCA, home: Path, vehicle_id: str, days: int = 1) -> CarIdentity:
    identity = CarIdentity.create(home)
    cert = ca.sign_car_csr(identity.csr_pem(vehicle_id), vehicle_id=vehicle_id, days=days)
    identity.store_certificate(cert, ca.ca_cert_pem)
    return identity


def _car(
    home: Path,
    port: int,
    vehicle_id: str,
    *,
    renewal: RenewalPolicy | None = NEAR,
    inbox: CarInbox | None = None,
) -> CarLink:
    """A car whose TLS identity is the one stored in ``home`` (so renewal can replace it)."""
    return CarLink(
        home_dir=home,
        hello_body=car_hello(vehicle_id),
        on_message=inbox if inbox is not None else CarInbox(),
        snapshot=dict,
        url=f"wss://127.0.0.1:{port}",
        backoff_min_s=0.02,
        backoff_max_s=0.2,
        heartbeat_s=1.0,
        dead_after_s=5.0,
        renewal=renewal,
    )


def _event() -> dict[str, Any]:
    return {"kind": "alert", "ts": time.time(), "data": {}}


def _csr(key: ec.EllipticCurvePrivateKey, cn: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _cn(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode())
    value = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(value, str)
    return value


# --- policy --------------------------------------------------------------------------


def test_window_is_the_shorter_of_days_and_lifetime_fraction(
    home_ca: HomeCA, tmp_path: Path
) -> None:
    year = _identity(home_ca, tmp_path / "a", "car-w1", days=365).certificate()
    short = _identity(home_ca, tmp_path / "b", "car-w2", days=3).certificate()
    assert year is not None and short is not None
    policy = RenewalPolicy()
    assert year.not_valid_after_utc - policy.renew_at(year) == dt.timedelta(days=30)
    lifetime = short.not_valid_after_utc - short.not_valid_before_utc
    assert short.not_valid_after_utc - policy.renew_at(short) == lifetime / 3
    assert not policy.due(year)
    later = RenewalPolicy(clock=lambda: year.not_valid_after_utc - dt.timedelta(days=29))
    assert later.due(year)


# --- end to end ------------------------------------------------------------------------


async def test_car_near_expiry_renews_and_reconnects_with_new_certificate(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    home = tmp_path / "car"
    identity = _identity(home_ca, home, "car-renew")
    old_key = identity.key_path.read_bytes()
    old_expiry = identity.certificate_expiry()
    assert old_expiry is not None
    handler = RecordingHandler()
    renewed: list[RenewalEvent] = []
    hub = await start_hub(
        home_ca, tmp_path / "hub", handler, renewal_days=30, on_renewal=renewed.append
    )
    inbox = CarInbox()
    car = _car(home, hub.port, "car-renew", inbox=inbox)
    try:
        await car.start()
        # First link with the old certificate; the car asks, the hub signs, the car
        # switches and reconnects with the new one.
        await handler.wait_until(lambda: len(handler.connects) >= 2)
        first, second = handler.connects[0][0], handler.connects[1][0]
        assert first.certificate_expiry == old_expiry
        assert second.certificate_expiry is not None
        assert second.certificate_expiry - old_expiry > dt.timedelta(days=25)
        assert second.serial != first.serial
        assert car.renewals == 1
        # The hub reports it; the CA's view of the car's expiry moved (repair issue source).
        assert len(renewed) == 1 and renewed[0].ok and renewed[0].vehicle_id == "car-renew"
        assert renewed[0].serial == second.serial
        assert renewed[0].previous_not_after == old_expiry
        assert home_ca.certificate_expiry("car-renew") == second.certificate_expiry
        # A new key, kept on the car; nothing of the renewal left behind.
        stored = CarIdentity.load(home)
        assert stored.key_path.read_bytes() != old_key
        assert stored.certificate_expiry() == second.certificate_expiry
        assert not stored.renewal_pending
        assert not (home / NEXT_CAR_CERT_FILE).exists()
        assert not (home / RENEWAL_STATE_FILE).exists()
        # Renewal traffic is the bridge's own: never handed to either application.
        assert handler.of("car-renew", MessageType.RENEW_REQUEST) == []
        assert [e for e in inbox.messages if e.type == MessageType.RENEW_RESPONSE] == []
        # The new link carries data; no second renewal (30 days is outside a 2-day window).
        await car.send(MessageType.EVENT, _event())
        await handler.wait_until(lambda: len(handler.of("car-renew", "event")) == 1)
        assert await car.request_renewal() == (False, "not due")
        assert len(renewed) == 1 and len(handler.connects) == 2
    finally:
        await car.stop()
        await hub.stop()


async def test_renewal_is_for_the_certificate_vehicle_id_only(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    home = tmp_path / "car"
    _identity(home_ca, home, "car-honest", days=365)
    _identity(home_ca, tmp_path / "victim", "car-victim", days=365)
    victim_serials = {
        r.serial for r in home_ca.issued_certificates() if r.vehicle_id == "car-victim"
    }
    handler = RecordingHandler()
    renewed: list[RenewalEvent] = []
    hub = await start_hub(home_ca, tmp_path / "hub", handler, on_renewal=renewed.append)
    inbox = CarInbox()
    car = _car(home, hub.port, "car-honest", renewal=None, inbox=inbox)
    try:
        await car.start()
        assert await car.wait_connected(10)
        # Everything in the request names the other car: CSR subject and extra fields.
        key = ec.generate_private_key(ec.SECP256R1())
        await car.send(
            MessageType.RENEW_REQUEST,
            {"request_id": "r1", "csr": _csr(key, "car-victim"), "vehicle_id": "car-victim"},
        )
        await wait_for(lambda: any(e.type == MessageType.RENEW_RESPONSE for e in inbox.messages))
        (reply,) = [e for e in inbox.messages if e.type == MessageType.RENEW_RESPONSE]
        assert reply.body["ok"] is True and reply.body["request_id"] == "r1"
        assert _cn(reply.body["certificate"]) == "car-honest"
        assert renewed[0].vehicle_id == "car-honest"
        after = {r.serial for r in home_ca.issued_certificates() if r.vehicle_id == "car-victim"}
        assert after == victim_serials  # nothing was issued for the other car
    finally:
        await car.stop()
        await hub.stop()


async def test_bad_csr_is_refused_and_the_link_keeps_working(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    home = tmp_path / "car"
    _identity(home_ca, home, "car-bad-csr", days=365)
    issued_before = len(home_ca.issued_certificates())
    handler = RecordingHandler()
    renewed: list[RenewalEvent] = []
    hub = await start_hub(home_ca, tmp_path / "hub", handler, on_renewal=renewed.append)
    inbox = CarInbox()
    car = _car(home, hub.port, "car-bad-csr", renewal=None, inbox=inbox)
    p384 = ec.generate_private_key(ec.SECP384R1())
    try:
        await car.start()
        assert await car.wait_connected(10)
        await car.send(MessageType.RENEW_REQUEST, {"request_id": "junk", "csr": "not a CSR"})
        await car.send(MessageType.RENEW_REQUEST, {"request_id": "p384", "csr": _csr(p384, "x")})
        await car.send(MessageType.EVENT, _event())

        def replies() -> list[Envelope]:
            return [e for e in inbox.messages if e.type == MessageType.RENEW_RESPONSE]

        await wait_for(lambda: len(replies()) == 2)
        junk, p384_reply = replies()
        assert junk.body["ok"] is False and "not a PEM certificate request" in junk.body["detail"]
        assert p384_reply.body["ok"] is False and "P-256" in p384_reply.body["detail"]
        assert [e.ok for e in renewed] == [False, False]
        await handler.wait_until(lambda: len(handler.of("car-bad-csr", "event")) == 1)
        assert car.connects == 1 and car.connected  # same link throughout
        assert len(home_ca.issued_certificates()) == issued_before
    finally:
        await car.stop()
        await hub.stop()


async def test_renew_certificate_command_forces_a_renewal(tmp_path: Path, home_ca: HomeCA) -> None:
    home = tmp_path / "car"
    _identity(home_ca, home, "car-cmd", days=365)
    old_serial = CarIdentity.load(home).certificate().serial_number  # type: ignore[union-attr]
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)
    car = _car(home, hub.port, "car-cmd", renewal=RenewalPolicy())  # a year left: not due
    try:
        await car.start()
        assert await car.wait_connected(10)
        seq = await hub.send(
            "car-cmd",
            MessageType.COMMAND,
            {"command": "renew_certificate", "args": {}, "expires_at": time.time() + 60},
        )
        await handler.wait_until(lambda: len(handler.of("car-cmd", "command_result")) == 1)
        (result,) = handler.of("car-cmd", "command_result")
        assert result.body["command_seq"] == seq and result.body["ok"] is True
        await handler.wait_until(lambda: len(handler.connects) >= 2)
        assert handler.connects[1][0].serial != old_serial
        assert car.renewals == 1
    finally:
        await car.stop()
        await hub.stop()


# --- car side: checks and crash safety ----------------------------------------------------


def test_car_rejects_a_certificate_for_another_key_and_keeps_its_own(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    identity = _identity(home_ca, tmp_path / "car", "car-check", days=365)
    before = identity.cert_path.read_bytes(), identity.key_path.read_bytes()
    renewal = CarRenewal(tmp_path / "car", RenewalPolicy())
    body = renewal.prepare(force=True)
    assert body is not None and identity.renewal_pending
    stranger = ec.generate_private_key(ec.SECP256R1())
    foreign = home_ca.sign_car_csr(_csr(stranger, "x").encode(), vehicle_id="car-check")
    outcome = renewal.apply_response(
        {"request_id": body["request_id"], "ok": True, "certificate": foreign.decode()}
    )
    assert not outcome.ok and "not for this car's key" in outcome.detail
    other_id = home_ca.sign_car_csr(
        identity.renewal_csr_pem(), vehicle_id="car-someone-else"
    ).decode()
    outcome = renewal.apply_response({"request_id": "x", "ok": True, "certificate": other_id})
    assert not outcome.ok and "car-someone-else" in outcome.detail
    assert (identity.cert_path.read_bytes(), identity.key_path.read_bytes()) == before
    # The pending key survives refusals: the next attempt reuses it.
    assert identity.renewal_pending
    good = home_ca.sign_car_csr(identity.renewal_csr_pem(), vehicle_id="car-check")
    assert renewal.apply_response(
        {"request_id": "y", "ok": True, "certificate": good.decode()}
    ).installed
    loaded = CarIdentity.load(tmp_path / "car")
    assert loaded.cert_path.read_bytes() == good
    loaded.client_ssl_context()  # key and certificate match


def test_an_interrupted_switch_is_finished_at_load(tmp_path: Path, home_ca: HomeCA) -> None:
    home = tmp_path / "car"
    identity = _identity(home_ca, home, "car-crash", days=365)
    new_cert = home_ca.sign_car_csr(identity.renewal_csr_pem(), vehicle_id="car-crash")
    # Crash after the new certificate was written, before anything was renamed.
    (home / NEXT_CAR_CERT_FILE).write_bytes(new_cert)
    loaded = CarIdentity.load(home)
    assert loaded.cert_path.read_bytes() == new_cert and not loaded.renewal_pending
    loaded.client_ssl_context()
    # Crash after the new key was renamed into place, before the certificate.
    newer = home_ca.sign_car_csr(loaded.renewal_csr_pem(), vehicle_id="car-crash")
    (home / NEXT_CAR_CERT_FILE).write_bytes(newer)
    loaded.next_key_path.replace(loaded.key_path)
    again = CarIdentity.load(home)
    assert again.cert_path.read_bytes() == newer
    again.client_ssl_context()
    # A leftover certificate that matches no key is dropped, the pair stays usable.
    stray = home_ca.sign_car_csr(
        _csr(ec.generate_private_key(ec.SECP256R1()), "x").encode(), vehicle_id="car-crash"
    )
    (home / NEXT_CAR_CERT_FILE).write_bytes(stray)
    last = CarIdentity.load(home)
    assert last.cert_path.read_bytes() == newer and not (home / NEXT_CAR_CERT_FILE).exists()


def test_car_does_not_repeat_an_unanswered_request_too_soon(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    _identity(home_ca, tmp_path / "car", "car-wait")
    renewal = CarRenewal(tmp_path / "car", NEAR)
    first = renewal.prepare()
    assert first is not None
    renewal.mark_sent(first["request_id"])
    assert renewal.prepare() is None  # waiting for the answer
    again = CarRenewal(tmp_path / "car", dataclasses.replace(NEAR, retry_after_s=0))
    second = again.prepare()
    assert second is not None and second["request_id"] != first["request_id"]
    key_a = x509.load_pem_x509_csr(first["csr"].encode()).public_key()
    key_b = x509.load_pem_x509_csr(second["csr"].encode()).public_key()
    assert key_a == key_b  # the same pending key is asked for again


# --- hub side -----------------------------------------------------------------------------


def test_hub_sends_the_same_certificate_again_and_limits_new_keys(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    hub = HubRenewals(home_ca, days=10, min_interval_s=3600)
    key = ec.generate_private_key(ec.SECP256R1())
    body = {"request_id": "a", "csr": _csr(key, "car-h")}
    first, event = hub.handle("car-h", body)
    assert first["ok"] and event.ok and not event.reissued
    again, event2 = hub.handle("car-h", {**body, "request_id": "b"})
    assert again["certificate"] == first["certificate"] and event2.reissued
    other = {"request_id": "c", "csr": _csr(ec.generate_private_key(ec.SECP256R1()), "car-h")}
    refused, event3 = hub.handle("car-h", other)
    assert refused["ok"] is False and "try again" in refused["detail"] and not event3.ok
    issued = [r for r in home_ca.issued_certificates() if r.vehicle_id == "car-h"]
    assert len(issued) == 1
    expiry = issued[0].not_after - issued[0].not_before
    assert dt.timedelta(days=10) <= expiry <= dt.timedelta(days=10, minutes=6)


def test_hub_refuses_requests_without_a_csr(home_ca: HomeCA) -> None:
    hub = HubRenewals(home_ca)
    reply, event = hub.handle("car-n", {"request_id": "z"})
    assert reply == {"request_id": "z", "ok": False, "detail": "the request carries no CSR"}
    assert not event.ok


def test_install_refuses_another_home_ca(tmp_path: Path, home_ca: HomeCA) -> None:
    identity = _identity(home_ca, tmp_path / "car", "car-ca", days=365)
    other = HomeCA.create(tmp_path / "other")
    cert = other.sign_car_csr(identity.renewal_csr_pem(), vehicle_id="car-ca")
    with pytest.raises(CertificateError, match="different home CA"):
        identity.install_renewed_certificate(cert, other.ca_cert_pem)
    with pytest.raises(CertificateError, match="not signed by the home CA"):
        identity.install_renewed_certificate(cert)


def test_no_certificate_for_a_revoked_connection(tmp_path: Path) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    identity = _identity(ca, tmp_path / "car", "car-rev", days=365)
    cert = identity.certificate()
    assert cert is not None
    hub = HubRenewals(ca)
    csr = identity.renewal_csr_pem().decode()
    ca.revoke("car-rev")
    reply, event = hub.handle("car-rev", {"request_id": "a", "csr": csr}, None, cert.serial_number)
    assert reply["ok"] is False and "revoked" in reply["detail"] and not event.ok
    assert len(ca.issued_certificates()) == 1


def test_revoked_while_signing_the_new_certificate_is_revoked_too(tmp_path: Path) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    identity = _identity(ca, tmp_path / "car", "car-race", days=365)
    cert = identity.certificate()
    assert cert is not None
    sign = ca.sign_car_csr

    def sign_then_owner_revokes(csr_pem: bytes, *, vehicle_id: str, days: int = 365) -> bytes:
        pem = sign(csr_pem, vehicle_id=vehicle_id, days=days)
        ca.revoke(format(cert.serial_number, "x"))  # the owner removes the car meanwhile
        return pem

    ca.sign_car_csr = sign_then_owner_revokes  # type: ignore[method-assign]
    hub = HubRenewals(ca)
    body = {"request_id": "a", "csr": identity.renewal_csr_pem().decode()}
    reply, _ = hub.handle("car-race", body, None, cert.serial_number)
    assert reply["ok"] is False and "certificate" not in reply
    records = ca.issued_certificates()
    assert len(records) == 2 and all(r.revoked_at is not None for r in records)


def test_ca_updates_wait_for_another_process_holding_the_ca_lock(tmp_path: Path) -> None:
    import fcntl
    import os
    import threading

    ca = HomeCA.create(tmp_path / "ca")
    _identity(ca, tmp_path / "car", "car-lock", days=365)
    fd = os.open(ca.directory / ".ca.lock", os.O_RDWR | os.O_CREAT, 0o600)
    done = threading.Event()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a second process (carhub-bridge revoke) holds
        worker = threading.Thread(target=lambda: (ca.revoke("car-lock"), done.set()))
        worker.start()
        assert not done.wait(0.3)  # blocked behind the other holder
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert done.wait(10)
        worker.join(10)
    finally:
        os.close(fd)
    assert all(r.revoked_at for r in ca.issued_certificates())
