"""HomeCA and CarIdentity: files, permissions, extensions, signing, renewal, revocation."""

from __future__ import annotations

import ipaddress
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bridge.errors import CertificateError
from bridge.pki import CarIdentity, HomeCA, vehicle_id_from_certificate


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def ca(tmp_path: Path) -> HomeCA:
    return HomeCA.create(tmp_path / "certs")


def _csr_for(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str = "whatever") -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def test_ca_files_and_private_key_permissions(ca: HomeCA) -> None:
    d = ca.directory
    for name in ("ca.crt", "ca.key", "server.crt", "server.key", "crl.pem", "issued.json"):
        assert (d / name).is_file(), name
    assert _mode(d / "ca.key") == 0o600
    assert _mode(d / "server.key") == 0o600
    assert _mode(d) == 0o700
    # no temporary files left behind by the atomic writes
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_ca_certificate_extensions(ca: HomeCA) -> None:
    cert = ca.ca_certificate
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.key_encipherment
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    cert.verify_directly_issued_by(cert)  # self-signed, signature valid
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


def test_hub_id_is_stable_and_create_refuses_to_overwrite(ca: HomeCA) -> None:
    again = HomeCA.load(ca.directory)
    assert again.hub_id == ca.hub_id and len(ca.hub_id) == 16
    assert HomeCA.load_or_create(ca.directory).hub_id == ca.hub_id
    with pytest.raises(CertificateError):
        HomeCA.create(ca.directory)


def test_load_missing_ca_fails(tmp_path: Path) -> None:
    with pytest.raises(CertificateError):
        HomeCA.load(tmp_path / "nothing")


def test_load_rejects_mismatched_key(tmp_path: Path) -> None:
    a = HomeCA.create(tmp_path / "a")
    b = HomeCA.create(tmp_path / "b")
    (a.directory / "ca.key").write_bytes((b.directory / "ca.key").read_bytes())
    with pytest.raises(CertificateError, match="does not match"):
        HomeCA.load(a.directory)


def test_server_certificate_sans(ca: HomeCA) -> None:
    ca.issue_server_certificate(
        hostnames=["hub.example.lan", "localhost"], ips=["192.0.2.10", "127.0.0.1", "::1"]
    )
    cert = ca.server_certificate()
    assert cert is not None
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["hub.example.lan", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.10"),
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca.ca_certificate)
    assert _mode(ca.server_key_path) == 0o600


@pytest.mark.parametrize(("hostnames", "ips"), [([], []), (["bad host"], []), ([], ["999.1.1.1"])])
def test_server_certificate_rejects_bad_names(
    ca: HomeCA, hostnames: list[str], ips: list[str]
) -> None:
    with pytest.raises(CertificateError):
        ca.issue_server_certificate(hostnames=hostnames, ips=ips)


def test_car_identity_key_is_0600_and_csr_signs(tmp_path: Path, ca: HomeCA) -> None:
    identity = CarIdentity.create(tmp_path / "home")
    assert _mode(identity.key_path) == 0o600
    with pytest.raises(CertificateError):
        CarIdentity.create(tmp_path / "home")  # never replace a key silently
    cert_pem = ca.sign_car_csr(identity.csr_pem("car-1"), vehicle_id="car-1")
    identity.store_certificate(cert_pem, ca.ca_cert_pem)
    loaded = CarIdentity.load(tmp_path / "home")
    assert loaded.vehicle_id == "car-1"
    assert loaded.certificate_expiry() == ca.certificate_expiry("car-1")


def test_sign_sets_subject_from_ca_not_csr(ca: HomeCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = ca.sign_car_csr(_csr_for(key, cn="someone-else"), vehicle_id="car-7")
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "car-7"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca.ca_certificate)
    assert vehicle_id_from_certificate(cert.public_bytes(serialization.Encoding.DER)) == "car-7"
    issued = ca.issued_certificates()
    assert [(r.vehicle_id, r.serial) for r in issued] == [("car-7", cert.serial_number)]
    doc = json.loads(ca.issued_path.read_bytes())
    assert doc["certificates"][0]["serial"] == format(cert.serial_number, "x")


def test_sign_rejects_bad_csrs(ca: HomeCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    good = _csr_for(key)
    with pytest.raises(CertificateError):
        ca.sign_car_csr(b"not a csr", vehicle_id="car-1")
    with pytest.raises(CertificateError, match="vehicle id"):
        ca.sign_car_csr(good, vehicle_id="../etc")
    with pytest.raises(CertificateError, match="P-256"):
        ca.sign_car_csr(_csr_for(ec.generate_private_key(ec.SECP384R1())), vehicle_id="car-1")
    with pytest.raises(CertificateError, match="P-256"):
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca.sign_car_csr(_csr_for(rsa_key), vehicle_id="car-1")
    # Tamper with the signature: the CSR no longer proves possession of the key.
    der = bytearray(x509.load_pem_x509_csr(good).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CertificateError, match="signature"):
        ca.sign_car_csr(tampered, vehicle_id="car-1")
    assert ca.issued_certificates() == []


def test_renewal_keeps_old_certificate_until_revoked(ca: HomeCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    first = x509.load_pem_x509_certificate(ca.sign_car_csr(_csr_for(key), vehicle_id="car-1"))
    second = x509.load_pem_x509_certificate(
        ca.sign_car_csr(_csr_for(key), vehicle_id="car-1", days=400)
    )
    assert first.serial_number != second.serial_number
    assert ca.certificate_expiry("car-1") == second.not_valid_after_utc
    assert ca.certificate_expiry("other") is None
    assert not ca.is_revoked(first.serial_number)
    ca.revoke(format(first.serial_number, "x"))  # one certificate by serial
    assert ca.is_revoked(first.serial_number) and not ca.is_revoked(second.serial_number)
    ca.revoke("car-1")  # every certificate of the vehicle
    assert ca.is_revoked(second.serial_number)
    assert ca.certificate_expiry("car-1") is None
    crl = ca.load_crl()
    assert {r.serial_number for r in crl} == {first.serial_number, second.serial_number}
    ca.revoke("car-1")  # idempotent


def test_revoke_unknown_raises(ca: HomeCA) -> None:
    with pytest.raises(CertificateError):
        ca.revoke("no-such-car")
    with pytest.raises(CertificateError):
        ca.revoke("0xdeadbeef")


def test_store_certificate_rejects_foreign_material(tmp_path: Path, ca: HomeCA) -> None:
    other_ca = HomeCA.create(tmp_path / "other")
    identity = CarIdentity.create(tmp_path / "home")
    # signed by another CA than the one offered
    foreign = other_ca.sign_car_csr(identity.csr_pem("car-1"), vehicle_id="car-1")
    with pytest.raises(CertificateError, match="not signed"):
        identity.store_certificate(foreign, ca.ca_cert_pem)
    # a certificate for somebody else's key
    stranger = ec.generate_private_key(ec.SECP256R1())
    theirs = ca.sign_car_csr(_csr_for(stranger), vehicle_id="car-1")
    with pytest.raises(CertificateError, match="key"):
        identity.store_certificate(theirs, ca.ca_cert_pem)
    # a server certificate is not a client certificate
    with pytest.raises(CertificateError):
        identity.store_certificate(ca.server_cert_path.read_bytes(), ca.ca_cert_pem)
    assert identity.certificate() is None
    # once stored, a renewal cannot switch to another home's CA
    identity.store_certificate(
        ca.sign_car_csr(identity.csr_pem("car-1"), vehicle_id="car-1"), ca.ca_cert_pem
    )
    with pytest.raises(CertificateError, match="different home CA"):
        identity.store_certificate(foreign, other_ca.ca_cert_pem)


def test_vehicle_id_from_certificate_rejects_garbage() -> None:
    with pytest.raises(CertificateError):
        vehicle_id_from_certificate(b"\x30\x03garbage")


def test_client_context_requires_certificate(tmp_path: Path) -> None:
    identity = CarIdentity.create(tmp_path / "home")
    with pytest.raises(CertificateError, match="pair first"):
        identity.client_ssl_context()
