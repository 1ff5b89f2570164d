"""HomeRegistry: the car's paired homes on disk."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bridge.errors import BridgeError
from bridge.homes import HomeRegistry
from bridge.pairing import HubInfo
from bridge.pki import CarIdentity, HomeCA


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pair(registry: HomeRegistry, ca: HomeCA, urls: list[str] | None = None) -> HubInfo:
    """Do what a successful pairing does to the registry, without the network."""
    hub = HubInfo(hub_id=ca.hub_id, lan_urls=urls or ["wss://192.0.2.1:8766/"], external_url=None)
    identity = registry.identity_factory(hub)
    identity.store_certificate(
        ca.sign_car_csr(identity.csr_pem("car-1"), vehicle_id="car-1"), ca.ca_cert_pem
    )
    registry.commit(hub)
    return hub


@pytest.fixture
def registry(tmp_path: Path) -> HomeRegistry:
    return HomeRegistry(tmp_path / "agent")


def test_commit_lists_home_with_private_key(tmp_path: Path, registry: HomeRegistry) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    assert registry.list() == []
    hub = _pair(registry, ca)
    [record] = registry.list()
    assert record.hub_id == hub.hub_id
    assert record.lan_urls == hub.lan_urls and record.external_url is None
    assert record.directory == registry.directory(hub.hub_id)
    assert _mode(record.directory / "car.key") == 0o600
    assert _mode(record.directory) == 0o700
    doc = json.loads((record.directory / "home.json").read_text())
    assert doc["hub_id"] == hub.hub_id and doc["version"] == 1
    assert registry.get(hub.hub_id) == record
    assert registry.load_identity(hub.hub_id).vehicle_id == "car-1"
    # the pending directory is gone
    assert [p.name for p in registry.homes_dir.iterdir()] == [hub.hub_id]


def test_two_homes_have_separate_identities(tmp_path: Path, registry: HomeRegistry) -> None:
    family = HomeCA.create(tmp_path / "family")
    holiday = HomeCA.create(tmp_path / "holiday")
    _pair(registry, family)
    _pair(registry, holiday)
    ids = {r.hub_id for r in registry.list()}
    assert ids == {family.hub_id, holiday.hub_id}
    keys = {(r.directory / "car.key").read_bytes() for r in registry.list()}
    assert len(keys) == 2


def test_remove_deletes_key_material(tmp_path: Path, registry: HomeRegistry) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    hub = _pair(registry, ca)
    directory = registry.directory(hub.hub_id)
    (directory / "outbox.db").write_bytes(b"x")
    registry.remove(hub.hub_id)
    assert not directory.exists()
    assert registry.list() == []
    with pytest.raises(BridgeError):
        registry.remove(hub.hub_id)


def test_repairing_keeps_link_state_unless_ca_changed(
    tmp_path: Path, registry: HomeRegistry
) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    hub = _pair(registry, ca)
    directory = registry.directory(hub.hub_id)
    (directory / "outbox.db").write_bytes(b"keep me")
    old_key = (directory / "car.key").read_bytes()
    _pair(registry, ca, urls=["wss://192.0.2.99:8766/"])
    assert (directory / "outbox.db").read_bytes() == b"keep me"
    assert (directory / "car.key").read_bytes() != old_key
    assert registry.list()[0].lan_urls == ["wss://192.0.2.99:8766/"]
    # Same hub id, different CA: a new home; its old sequence state must go.
    other = HomeCA.create(tmp_path / "other")
    fake = HubInfo(hub_id=hub.hub_id, lan_urls=["wss://192.0.2.1:8766/"], external_url=None)
    identity = registry.identity_factory(fake)
    identity.store_certificate(
        other.sign_car_csr(identity.csr_pem("car-1"), vehicle_id="car-1"), other.ca_cert_pem
    )
    registry.commit(fake)
    assert not (directory / "outbox.db").exists()


def test_failed_pairing_leaves_working_home_alone(tmp_path: Path, registry: HomeRegistry) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    hub = _pair(registry, ca)
    key = (registry.directory(hub.hub_id) / "car.key").read_bytes()
    registry.identity_factory(hub)  # a new attempt that never completes
    with pytest.raises(BridgeError, match="no completed pairing"):
        registry.commit(hub)
    registry.discard_pending()
    assert (registry.directory(hub.hub_id) / "car.key").read_bytes() == key
    assert [p.name for p in registry.homes_dir.iterdir()] == [hub.hub_id]
    assert isinstance(registry.load_identity(hub.hub_id), CarIdentity)


@pytest.mark.parametrize("bad", ["../escape", "", ".hidden", "a/b", "x" * 65])
def test_bad_hub_ids_are_refused(registry: HomeRegistry, bad: str) -> None:
    with pytest.raises(BridgeError):
        registry.directory(bad)
    with pytest.raises(BridgeError):
        registry.identity_factory(HubInfo(hub_id=bad, lan_urls=[], external_url=None))


def test_corrupt_home_json_is_skipped(tmp_path: Path, registry: HomeRegistry) -> None:
    ca = HomeCA.create(tmp_path / "ca")
    hub = _pair(registry, ca)
    broken = registry.homes_dir / "broken"
    broken.mkdir()
    (broken / "home.json").write_text("{not json")
    mismatched = registry.homes_dir / "elsewhere"
    mismatched.mkdir()
    original = registry.directory(hub.hub_id) / "home.json"
    (mismatched / "home.json").write_text(original.read_text())
    assert [r.hub_id for r in registry.list()] == [hub.hub_id]


def test_vehicle_id_is_made_once(tmp_path: Path, registry: HomeRegistry) -> None:
    first = registry.vehicle_id()
    assert first.startswith("car-")
    assert HomeRegistry(registry.root).vehicle_id() == first
    (registry.root / "vehicle_id").write_text("../../bad\n")
    with pytest.raises(BridgeError):
        registry.vehicle_id()
