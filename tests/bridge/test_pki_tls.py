"""Real TLS 1.3 handshakes on 127.0.0.1 between HomeCA and CarIdentity contexts."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from bridge.errors import CertificateError
from bridge.pki import CarIdentity, HomeCA, vehicle_id_from_certificate
from tests.bridge.pki_testing import client_context_from_files, forge_client_cert, tls_handshake


@pytest.fixture
def ca(tmp_path: Path) -> HomeCA:
    return HomeCA.create(tmp_path / "certs")


@pytest.fixture
def car(tmp_path: Path, ca: HomeCA) -> CarIdentity:
    identity = CarIdentity.create(tmp_path / "car")
    identity.store_certificate(
        ca.sign_car_csr(identity.csr_pem("car-1"), vehicle_id="car-1"), ca.ca_cert_pem
    )
    return identity


def _server_error(result: object) -> str:
    return str(getattr(result, "server_error", ""))


def test_paired_car_completes_tls13_handshake(ca: HomeCA, car: CarIdentity) -> None:
    result = tls_handshake(ca.server_ssl_context(), car.client_ssl_context())
    assert result.ok, (result.server_error, result.client_error)
    assert result.version == "TLSv1.3"
    assert result.peer_cert_der is not None
    assert vehicle_id_from_certificate(result.peer_cert_der) == "car-1"


def test_contexts_are_tls13_only(ca: HomeCA, car: CarIdentity) -> None:
    for ctx in (ca.server_ssl_context(), car.client_ssl_context()):
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3
        assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ca.server_ssl_context().verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert car.client_ssl_context().check_hostname


def test_revoked_certificate_fails_handshake(ca: HomeCA, car: CarIdentity) -> None:
    ca.revoke("car-1")
    result = tls_handshake(ca.server_ssl_context(), car.client_ssl_context())
    assert isinstance(result.server_error, ssl.SSLError)
    assert "revoked" in _server_error(result)
    assert result.client_error is not None


def test_reload_crl_applies_to_running_context(ca: HomeCA, car: CarIdentity) -> None:
    running = ca.server_ssl_context()
    assert tls_handshake(running, car.client_ssl_context()).ok
    ca.revoke("car-1")
    ca.reload_crl(running)
    result = tls_handshake(running, car.client_ssl_context())
    assert "revoked" in _server_error(result)


def test_two_revocations_in_one_second_both_reach_running_context(
    tmp_path: Path, ca: HomeCA, car: CarIdentity
) -> None:
    second = CarIdentity.create(tmp_path / "car2")
    second.store_certificate(
        ca.sign_car_csr(second.csr_pem("car-2"), vehicle_id="car-2"), ca.ca_cert_pem
    )
    running = ca.server_ssl_context()
    ca.revoke("car-1")
    ca.reload_crl(running)
    ca.revoke("car-2")  # a CRL must not share its predecessor's lastUpdate second
    ca.reload_crl(running)
    assert "revoked" in _server_error(tls_handshake(running, second.client_ssl_context()))


def test_missing_crl_fails_closed(ca: HomeCA, car: CarIdentity) -> None:
    ca.crl_path.unlink()
    with pytest.raises(CertificateError, match="CRL missing"):
        ca.server_ssl_context()


def test_crl_from_another_ca_is_refused(tmp_path: Path, ca: HomeCA) -> None:
    other = HomeCA.create(tmp_path / "other")
    ca.crl_path.write_bytes(other.crl_path.read_bytes())
    with pytest.raises(CertificateError, match="not signed by this CA"):
        ca.server_ssl_context()
    ca.crl_path.write_bytes(b"garbage")
    with pytest.raises(CertificateError):
        ca.server_ssl_context()


def test_crl_check_without_any_crl_rejects_clients(ca: HomeCA, car: CarIdentity) -> None:
    # The flag alone makes OpenSSL refuse a client whose CRL it cannot find:
    # a context that somehow lost its CRL still fails closed.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(ca.server_cert_path, ca.server_key_path)
    ctx.load_verify_locations(cafile=ca.ca_cert_path)
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    result = tls_handshake(ctx, car.client_ssl_context())
    assert "unable to get certificate CRL" in _server_error(result)


def test_lagging_crl_is_resigned_from_issued_records(ca: HomeCA, car: CarIdentity) -> None:
    # Simulate a crash between writing issued.json and the CRL during a revoke.
    old_crl = ca.crl_path.read_bytes()
    ca.revoke("car-1")
    ca.crl_path.write_bytes(old_crl)
    result = tls_handshake(ca.server_ssl_context(), car.client_ssl_context())
    assert "revoked" in _server_error(result)


def test_no_client_certificate_is_rejected(ca: HomeCA, car: CarIdentity) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=car.ca_path)
    result = tls_handshake(ca.server_ssl_context(), ctx)
    assert isinstance(result.server_error, ssl.SSLError)
    assert "certificate" in _server_error(result)


def test_certificate_from_another_ca_is_rejected(tmp_path: Path, ca: HomeCA) -> None:
    other = HomeCA.create(tmp_path / "other")
    intruder = CarIdentity.create(tmp_path / "intruder")
    intruder.store_certificate(
        other.sign_car_csr(intruder.csr_pem("car-1"), vehicle_id="car-1"), other.ca_cert_pem
    )
    # the intruder trusts our CA to get past its own check of the server
    ctx = client_context_from_files(
        tmp_path / "x",
        cert_pem=intruder.cert_path.read_bytes(),
        key=_key(intruder),
        ca_pem=ca.ca_cert_pem,
    )
    result = tls_handshake(ca.server_ssl_context(), ctx)
    assert isinstance(result.server_error, ssl.SSLError)


@pytest.mark.parametrize(
    ("start", "end"),
    [(-30, -1), (2, 30)],
    ids=["expired", "not-yet-valid"],
)
def test_out_of_validity_certificates_are_rejected(
    tmp_path: Path, ca: HomeCA, start: int, end: int
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    pem = forge_client_cert(
        ca.directory,
        key,
        vehicle_id="car-1",
        not_before=now + dt.timedelta(days=start),
        not_after=now + dt.timedelta(days=end),
    )
    ctx = client_context_from_files(tmp_path / "x", cert_pem=pem, key=key, ca_pem=ca.ca_cert_pem)
    result = tls_handshake(ca.server_ssl_context(), ctx)
    assert "certificate" in _server_error(result)
    assert ("expired" in _server_error(result)) == (end < 0)


def test_tls12_only_client_is_rejected(ca: HomeCA, car: CarIdentity) -> None:
    ctx = car.client_ssl_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    result = tls_handshake(ca.server_ssl_context(), ctx)
    assert isinstance(result.server_error, ssl.SSLError)
    assert result.client_error is not None


def test_car_pins_home_ca(tmp_path: Path, ca: HomeCA, car: CarIdentity) -> None:
    impostor = HomeCA.create(tmp_path / "impostor")
    result = tls_handshake(impostor.server_ssl_context(), car.client_ssl_context())
    assert isinstance(result.client_error, ssl.SSLCertVerificationError)


def test_car_checks_hostname_against_server_sans(ca: HomeCA, car: CarIdentity) -> None:
    ca.issue_server_certificate(hostnames=["hub.example.lan"], ips=["192.0.2.10"])
    result = tls_handshake(ca.server_ssl_context(), car.client_ssl_context())  # dials 127.0.0.1
    assert isinstance(result.client_error, ssl.SSLCertVerificationError)
    ca.issue_server_certificate(hostnames=["hub.example.lan"], ips=["127.0.0.1"])
    assert tls_handshake(ca.server_ssl_context(), car.client_ssl_context()).ok
    named = tls_handshake(
        ca.server_ssl_context(), car.client_ssl_context(), server_hostname="hub.example.lan"
    )
    assert named.ok


def _key(identity: CarIdentity) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(identity.key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def test_server_context_without_server_certificate_fails(ca: HomeCA) -> None:
    ca.server_cert_path.unlink()
    with pytest.raises(CertificateError, match="no server certificate"):
        ca.server_ssl_context()
    assert isinstance(ca.ca_certificate, x509.Certificate)
