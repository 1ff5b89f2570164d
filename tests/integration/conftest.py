"""Fixtures of the integration suite: a real home CA, a real listener on 127.0.0.1."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any
from unittest.mock import PropertyMock, patch

import pytest
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.location import PyTestLocation

from bridge.pki import CarIdentity, HomeCA
from bridge.protocol import PROTOCOL_VERSION, Envelope, MessageType
from bridge.server import PeerInfo
from custom_components.carhub.const import (
    CONF_AGENT_VERSION,
    CONF_EXTERNAL_URL,
    CONF_LISTEN_PORT,
    CONF_MAKE,
    CONF_MODEL,
    CONF_SIGNALS,
    CONF_VIN,
    DOMAIN,
)
from custom_components.carhub.hub import DATA_CA, DATA_HUB, CarHub, storage_dir

VEHICLE_ID = "golf-1"
VIN = "WVWZZZ1KZAW000001"

# What a petrol car's profile declares in its hello.
SIGNALS: dict[str, dict[str, Any]] = {
    "Vehicle.Speed": {"unit": "km/h", "datatype": "float"},
    "Vehicle.TraveledDistance": {"unit": "km", "datatype": "float"},
    "Vehicle.Powertrain.CombustionEngine.Speed": {"unit": "rpm", "datatype": "float"},
    "Vehicle.Powertrain.CombustionEngine.ECT": {"unit": "celsius", "datatype": "float"},
    "Vehicle.Powertrain.CombustionEngine.IsRunning": {"unit": None, "datatype": "bool"},
    "Vehicle.Powertrain.FuelSystem.RelativeLevel": {"unit": "percent", "datatype": "float"},
    "Vehicle.Powertrain.FuelSystem.Range": {"unit": "km", "datatype": "float"},
    "Vehicle.Powertrain.Transmission.SelectedGear": {"unit": None, "datatype": "string"},
    "Vehicle.LowVoltageBattery.CurrentVoltage": {"unit": "V", "datatype": "float"},
    "Vehicle.Exterior.AirTemperature": {"unit": "celsius", "datatype": "float"},
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": {"unit": "kPa", "datatype": "float"},
    "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure": {"unit": "kPa", "datatype": "float"},
    "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure": {"unit": "kPa", "datatype": "float"},
    "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure": {"unit": "kPa", "datatype": "float"},
    "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen": {"unit": None, "datatype": "bool"},
    "Vehicle.Cabin.Door.Row1.PassengerSide.IsOpen": {"unit": None, "datatype": "bool"},
    "Vehicle.Body.Trunk.Rear.IsOpen": {"unit": None, "datatype": "bool"},
    "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked": {"unit": None, "datatype": "bool"},
    "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted": {"unit": None, "datatype": "bool"},
    "Vehicle.OBD.Status.IsMILOn": {"unit": None, "datatype": "bool"},
    "Vehicle.CurrentLocation.Latitude": {"unit": "degrees", "datatype": "float"},
    "Vehicle.CurrentLocation.Longitude": {"unit": "degrees", "datatype": "float"},
    "Vehicle.CurrentLocation.HorizontalAccuracy": {"unit": "m", "datatype": "float"},
    "Vehicle.Diagnostics.DTCs": {"unit": None, "datatype": "list"},
}

SNAPSHOT_VALUES: dict[str, Any] = {
    "Vehicle.Speed": 42.5,
    "Vehicle.TraveledDistance": 123456.7,
    "Vehicle.Powertrain.CombustionEngine.Speed": 2100,
    "Vehicle.Powertrain.CombustionEngine.ECT": 88,
    "Vehicle.Powertrain.CombustionEngine.IsRunning": True,
    "Vehicle.Powertrain.FuelSystem.RelativeLevel": 61,
    "Vehicle.Powertrain.FuelSystem.Range": 540,
    "Vehicle.Powertrain.Transmission.SelectedGear": "D",
    "Vehicle.LowVoltageBattery.CurrentVoltage": 14.1,
    "Vehicle.Exterior.AirTemperature": 17.5,
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure": 230,
    "Vehicle.Chassis.Axle.Row1.Wheel.Right.Tire.Pressure": 231,
    "Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure": 220,
    "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure": 219,
    "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen": False,
    "Vehicle.Cabin.Door.Row1.PassengerSide.IsOpen": True,
    "Vehicle.Body.Trunk.Rear.IsOpen": False,
    "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked": True,
    "Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted": True,
    "Vehicle.OBD.Status.IsMILOn": True,
    "Vehicle.CurrentLocation.Latitude": 52.52,
    "Vehicle.CurrentLocation.Longitude": 13.405,
    "Vehicle.CurrentLocation.HorizontalAccuracy": 5,
    "Vehicle.Diagnostics.DTCs": [
        {"code": "P0301", "description": "Cylinder 1 misfire detected", "kind": "stored"}
    ],
}


#: What Home Assistant logs when an integration uses an API it deprecated:
#: frame.report_usage ("Detected that custom integration 'carhub' ...") and
#: helpers.deprecation ("The deprecated alias X was used from carhub ...").
DEPRECATION_LOG = re.compile(
    r"(custom integration '?carhub'?.*(deprecat|will stop working|breaks in))"
    r"|(deprecated .* (was )?used from carhub)"
    r"|(carhub.*deprecated)",
    re.IGNORECASE | re.DOTALL,
)


class _DeprecationCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if DEPRECATION_LOG.search(message):
            self.found.append(f"{record.name}: {message}")


@pytest.fixture(autouse=True)
def fail_on_deprecated_api() -> Generator[None]:
    """Fail a test in which the integration used an API Home Assistant deprecated."""
    collector = _DeprecationCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        yield
    finally:
        root.removeHandler(collector)
    assert not collector.found, "deprecated Home Assistant API used:\n" + "\n".join(collector.found)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load custom_components/ in every test."""


#: Registry snapshots differ between Home Assistant releases (new fields,
#: aliases as lists with a computed-name marker since 2026.x), so each
#: release series the suite runs on keeps its own: snapshots/2025.4/, ...
SNAPSHOT_SERIES = ".".join(HA_VERSION.split(".")[:2])


class ReleaseSnapshotExtension(HomeAssistantSnapshotExtension):
    """Home Assistant's serializer, with one snapshot folder per release series."""

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        """tests/integration/snapshots/<YEAR.MONTH of the running Home Assistant>."""
        return str(Path(test_location.filepath).parent / "snapshots" / SNAPSHOT_SERIES)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots with Home Assistant's serializer (ids and timestamps normalised)."""
    return snapshot.use_extension(ReleaseSnapshotExtension)


@pytest.fixture
def entity_registry_enabled_by_default() -> Generator[None]:
    """Create entities that are disabled by default as enabled (not in this HA version)."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        yield


@pytest.fixture(autouse=True)
async def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Give every test its own config dir (the CA and outboxes live under it).

    Also sets up the ``homeassistant`` integration, which a real instance
    always has and Assist exposure needs.
    """
    hass.config.config_dir = str(tmp_path)
    assert await async_setup_component(hass, "homeassistant", {})
    return tmp_path


@pytest.fixture(autouse=True)
def loopback_listener() -> Generator[None]:
    """The listener binds loopback only in tests (127.0.0.1, and ::1 where IPv6 works)."""
    with (
        patch("custom_components.carhub.hub.DEFAULT_LISTEN_HOST", "127.0.0.1"),
        patch("custom_components.carhub.hub.DEFAULT_LISTEN_HOST_V6", "::1"),
    ):
        yield


@pytest.fixture(autouse=True)
def no_ipv6_probe() -> Generator[None]:
    """Pairing without a running listener does not probe IPv6 (sockets are blocked)."""
    with patch("custom_components.carhub.hub.ipv6_listen_works", return_value=False):
        yield


def issue_car_certificate(ca_dir: Path, car_dir: Path, vehicle_id: str) -> CarIdentity:
    """What pairing does, without the network: the car's CSR signed by the home CA."""
    ca = HomeCA.load_or_create(ca_dir)
    identity = CarIdentity.create(car_dir)
    cert = ca.sign_car_csr(identity.csr_pem(vehicle_id), vehicle_id=vehicle_id)
    identity.store_certificate(cert, ca.ca_cert_pem)
    return identity


def entry_data(**overrides: Any) -> dict[str, Any]:
    """Config entry data as the config flow writes it (listener on a free port)."""
    data = {
        CONF_HOST: "127.0.0.1",
        CONF_PORT: 8767,
        CONF_VIN: VIN,
        CONF_MAKE: "Volkswagen",
        CONF_MODEL: "Golf",
        CONF_AGENT_VERSION: "0.1.0",
        CONF_LISTEN_PORT: 0,
        CONF_EXTERNAL_URL: None,
        CONF_SIGNALS: SIGNALS,
    }
    data.update(overrides)
    return data


@pytest.fixture
def mock_config_entry() -> MockConfigEntry:
    """A paired car."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Volkswagen Golf",
        unique_id=VEHICLE_ID,
        data=entry_data(),
    )


@pytest.fixture
async def car_identity(hass: HomeAssistant, config_dir: Path) -> CarIdentity:
    """The car's certificate, signed by the CA in the integration's storage."""
    return await hass.async_add_executor_job(
        issue_car_certificate, storage_dir(hass), config_dir / "car", VEHICLE_ID
    )


@pytest.fixture
async def init_integration(
    hass: HomeAssistant,
    socket_enabled: None,
    mock_config_entry: MockConfigEntry,
    car_identity: CarIdentity,
) -> AsyncGenerator[MockConfigEntry]:
    """The integration set up with one car (not connected yet); unloaded afterwards."""
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    yield mock_config_entry
    await unload_all(hass)


async def unload_all(hass: HomeAssistant) -> None:
    """Unload every CarHub entry, so the listener and its storage close."""
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state.recoverable:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert DATA_HUB not in hass.data
    hass.data.pop(DATA_CA, None)


def car_device_entry(hass: HomeAssistant, vehicle_id: str = VEHICLE_ID) -> dr.DeviceEntry:
    """The car's device, found through its config entry.

    Works on every supported release: ``async_get_device`` is deprecated
    since 2026.x and ``async_get_device_by_identifier`` is not in 2025.4.
    """
    dev_reg = dr.async_get(hass)
    for entry in hass.config_entries.async_entries(DOMAIN):
        for device in dr.async_entries_for_config_entry(dev_reg, entry.entry_id):
            if (DOMAIN, vehicle_id) in device.identifiers:
                return device
    raise AssertionError(f"no device for car {vehicle_id}")


def hub(hass: HomeAssistant) -> CarHub:
    """The running shared hub."""
    return hass.data[DATA_HUB]


PEER = PeerInfo(vehicle_id=VEHICLE_ID, remote="127.0.0.1")


def hello(signals: dict[str, Any] | None = None, **vehicle: Any) -> Envelope:
    """The hello a car sends."""
    return Envelope(
        v=PROTOCOL_VERSION,
        type=MessageType.HELLO,
        seq=0,
        ts=time.time(),
        body={
            "protocols": [1],
            "agent_version": "0.2.0",
            "vehicle": {
                "vehicle_id": VEHICLE_ID,
                "vin": VIN,
                "make": "Volkswagen",
                "model": "Golf",
                "profile": "vw_golf_mk7",
                **vehicle,
            },
            "capabilities": ["voice"],
            "signals": SIGNALS if signals is None else signals,
        },
    )


_seq = iter(range(1, 1_000_000))


def message(type_: MessageType, body: dict[str, Any], *, ts: float | None = None) -> Envelope:
    """A durable message from the car."""
    return Envelope(
        v=PROTOCOL_VERSION,
        type=type_,
        seq=next(_seq),
        ts=time.time() if ts is None else ts,
        body=body,
    )


def signals_body(values: dict[str, Any], ts: float | None = None) -> dict[str, Any]:
    """A state/snapshot body with one timestamp for every value."""
    stamp = time.time() if ts is None else ts
    return {"signals": {path: {"value": v, "ts": stamp} for path, v in values.items()}}


async def connect_car(
    hass: HomeAssistant, values: dict[str, Any] | None = None, ts: float | None = None
) -> None:
    """Drive the hub's handler as the bridge does when the car connects and sends a snapshot."""
    carhub = hub(hass)
    await carhub.on_connect(PEER, hello())
    body = signals_body(SNAPSHOT_VALUES if values is None else values, ts)
    await carhub.on_message(PEER, message(MessageType.SNAPSHOT, body, ts=ts))
    await hass.async_block_till_done()
