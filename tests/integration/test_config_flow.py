"""Config flow: manual and discovered pairing, errors with retry, reauth, reconfigure, options."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Awaitable, Callable, Generator
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from homeassistant.config_entries import SOURCE_USER, SOURCE_ZEROCONF
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bridge.errors import PairingClosedError, PairingCodeError, PairingError
from bridge.pairing import PairingResult, VehicleInfo
from bridge.pki import CarIdentity, HomeCA
from custom_components.carhub.const import (
    CONF_AGENT_ID,
    CONF_ALLOWED_AREAS,
    CONF_ALLOWED_DOMAINS,
    CONF_ALLOWED_SENSITIVE,
    CONF_CODE,
    CONF_EXTERNAL_URL,
    CONF_LISTEN_PORT,
    CONF_SIGNALS,
    DOMAIN,
)
from custom_components.carhub.hub import DATA_CA, certificate_serial, storage_dir

from .conftest import VEHICLE_ID, VIN, entry_data, issue_car_certificate

RESULT = PairingResult(
    vehicle=VehicleInfo(
        vehicle_id=VEHICLE_ID, vin=VIN, make="Volkswagen", model="Golf", agent_version="0.1.0"
    ),
    certificate_pem=b"-----BEGIN CERTIFICATE-----\n...",
)
OTHER_RESULT = PairingResult(
    vehicle=VehicleInfo(
        vehicle_id="zoe-7",
        vin="VF1AG000000000001",
        make="Renault",
        model="Zoe",
        agent_version="0.1.0",
    ),
    certificate_pem=b"-----BEGIN CERTIFICATE-----\n...",
)

DISCOVERY = ZeroconfServiceInfo(
    ip_address=ip_address("192.168.1.50"),
    ip_addresses=[ip_address("192.168.1.50")],
    hostname="golf-1.local.",
    name="golf-1._carhub._tcp.local.",
    port=8767,
    type="_carhub._tcp.local.",
    properties={
        "vehicle_id": VEHICLE_ID,
        "make": "Volkswagen",
        "model": "Golf",
        "agent_version": "0.1.0",
        "pairing_port": "8767",
    },
)


@pytest.fixture
def mock_pair() -> Generator[AsyncMock]:
    """The bridge's pairing, patched where the config flow imports it."""
    with patch(
        "custom_components.carhub.config_flow.pair_with_car", autospec=True, return_value=RESULT
    ) as mock:
        yield mock


def issuing(
    hass: HomeAssistant, car_dir: Path, vehicle: VehicleInfo, issued: list[bytes]
) -> Callable[..., Awaitable[PairingResult]]:
    """A pair_with_car that really signs a certificate for ``vehicle`` with the home CA."""

    async def _pair(*, ca: HomeCA, **_kwargs: Any) -> PairingResult:
        def sign() -> bytes:
            identity = CarIdentity.create(car_dir / uuid.uuid4().hex)
            csr = identity.csr_pem(vehicle.vehicle_id)
            return ca.sign_car_csr(csr, vehicle_id=vehicle.vehicle_id)

        pem = await hass.async_add_executor_job(sign)
        issued.append(pem)
        return PairingResult(vehicle=vehicle, certificate_pem=pem)

    return _pair


async def revoked(hass: HomeAssistant) -> dict[str, bool]:
    """Every certificate the home CA issued (hex serial) and whether it is revoked."""
    ca = hass.data[DATA_CA]
    records = await hass.async_add_executor_job(ca.issued_certificates)
    return {f"0x{r.serial:x}": r.revoked_at is not None for r in records}


@pytest.fixture(autouse=True)
def mock_setup_entry() -> Generator[AsyncMock]:
    """Do not start the listener in flow tests."""
    with patch("custom_components.carhub.async_setup_entry", return_value=True) as mock:
        yield mock


async def test_user_flow(hass: HomeAssistant, mock_pair: AsyncMock) -> None:
    """The first car: address, code and the listener settings."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert CONF_LISTEN_PORT in result["data_schema"].schema
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_HOST: "192.168.1.50",
            CONF_PORT: 8767,
            CONF_CODE: "12345678",
            CONF_LISTEN_PORT: 8800,
            CONF_EXTERNAL_URL: "wss://home.example.com:8800",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Volkswagen Golf"
    assert result["result"].unique_id == VEHICLE_ID
    assert result["data"][CONF_LISTEN_PORT] == 8800
    assert result["data"][CONF_EXTERNAL_URL] == "wss://home.example.com:8800"
    assert result["data"][CONF_HOST] == "192.168.1.50"
    kwargs = mock_pair.call_args.kwargs
    assert kwargs["host"] == "192.168.1.50"
    assert kwargs["port"] == 8767
    assert kwargs["code"] == "12345678"
    assert kwargs["hub"].external_url == "wss://home.example.com:8800"
    assert all(url.endswith(":8800") for url in kwargs["hub"].lan_urls)


@pytest.mark.parametrize(
    ("side_effect", "error"),
    [
        (PairingCodeError("bad code"), "invalid_code"),
        (PairingClosedError("window closed"), "pairing_closed"),
        (PairingError("unreachable"), "cannot_connect"),
        (OSError("no route"), "cannot_connect"),
        (RuntimeError("boom"), "unknown"),
    ],
)
async def test_user_flow_errors_then_retry(
    hass: HomeAssistant, mock_pair: AsyncMock, side_effect: Exception, error: str
) -> None:
    """Each pairing failure shows an error; the next attempt succeeds."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    user_input = {CONF_HOST: "192.168.1.50", CONF_PORT: 8767, CONF_CODE: "12345678"}
    mock_pair.side_effect = side_effect
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    mock_pair.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_invalid_external_url(hass: HomeAssistant, mock_pair: AsyncMock) -> None:
    """A bad external URL is rejected before pairing; fixing it succeeds."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    user_input = {
        CONF_HOST: "192.168.1.50",
        CONF_PORT: 8767,
        CONF_CODE: "12345678",
        CONF_EXTERNAL_URL: "ftp://nope",
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["errors"] == {CONF_EXTERNAL_URL: "invalid_url"}
    assert not mock_pair.called
    user_input[CONF_EXTERNAL_URL] = "https://home.example.com"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_second_car_shares_listener(
    hass: HomeAssistant, mock_pair: AsyncMock, mock_config_entry: MockConfigEntry
) -> None:
    """A second car is not asked for the listener settings; it inherits them."""
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        mock_config_entry, data={**mock_config_entry.data, CONF_LISTEN_PORT: 9000}
    )
    mock_pair.return_value = OTHER_RESULT
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert CONF_LISTEN_PORT not in result["data_schema"].schema
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "192.168.1.51", CONF_PORT: 8767, CONF_CODE: "87654321"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_LISTEN_PORT] == 9000


async def test_user_flow_already_configured(
    hass: HomeAssistant,
    mock_pair: AsyncMock,
    mock_config_entry: MockConfigEntry,
    car_identity: CarIdentity,
    tmp_path: Path,
) -> None:
    """Pairing a car that already has an entry aborts; only the new certificate is revoked."""
    mock_config_entry.add_to_hass(hass)
    issued: list[bytes] = []
    mock_pair.side_effect = issuing(hass, tmp_path, RESULT.vehicle, issued)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "192.168.1.50", CONF_PORT: 8767, CONF_CODE: "12345678"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    existing = certificate_serial(car_identity.cert_path.read_bytes())
    assert await revoked(hass) == {existing: False, certificate_serial(issued[0]): True}


async def test_zeroconf_flow(hass: HomeAssistant, mock_pair: AsyncMock) -> None:
    """A discovered car: confirm with its code."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=DISCOVERY
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    assert result["description_placeholders"] == {"name": "Volkswagen Golf", "host": "192.168.1.50"}
    mock_pair.side_effect = PairingCodeError("bad")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CODE: "00000000"}
    )
    assert result["errors"] == {"base": "invalid_code"}
    mock_pair.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CODE: "12345678"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == VEHICLE_ID
    assert mock_pair.call_args.kwargs["host"] == "192.168.1.50"
    assert mock_pair.call_args.kwargs["port"] == 8767


@pytest.mark.parametrize(
    ("side_effect", "error"),
    [
        (PairingClosedError("window closed"), "pairing_closed"),
        (PairingError("unreachable"), "cannot_connect"),
        (RuntimeError("boom"), "unknown"),
    ],
)
async def test_zeroconf_errors_then_retry(
    hass: HomeAssistant, mock_pair: AsyncMock, side_effect: Exception, error: str
) -> None:
    """Discovery confirm errors are followed by a successful retry."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=DISCOVERY
    )
    mock_pair.side_effect = side_effect
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CODE: "12345678"}
    )
    assert result["errors"] == {"base": error}
    mock_pair.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CODE: "12345678"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_zeroconf_code_of_other_car(
    hass: HomeAssistant, mock_pair: AsyncMock, tmp_path: Path
) -> None:
    """The code was typed for a different car than the one discovered: abort and revoke."""
    issued: list[bytes] = []
    mock_pair.side_effect = issuing(hass, tmp_path, OTHER_RESULT.vehicle, issued)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=DISCOVERY
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CODE: "12345678"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_vehicle"
    assert await revoked(hass) == {certificate_serial(issued[0]): True}
    assert not hass.config_entries.async_entries(DOMAIN)


async def test_zeroconf_paired_meanwhile(
    hass: HomeAssistant, mock_pair: AsyncMock, tmp_path: Path
) -> None:
    """The discovered car got an entry while the code was typed: abort and revoke."""
    issued: list[bytes] = []
    mock_pair.side_effect = issuing(hass, tmp_path, RESULT.vehicle, issued)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=DISCOVERY
    )
    MockConfigEntry(domain=DOMAIN, unique_id=VEHICLE_ID, data=entry_data()).add_to_hass(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CODE: "12345678"}
    )
    assert result["reason"] == "already_configured"
    assert await revoked(hass) == {certificate_serial(issued[0]): True}


async def test_abort_when_revocation_fails(
    hass: HomeAssistant, mock_pair: AsyncMock, caplog: pytest.LogCaptureFixture
) -> None:
    """A certificate that cannot be revoked is logged; the flow still aborts cleanly."""
    mock_pair.return_value = OTHER_RESULT  # not a real certificate
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=DISCOVERY
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_CODE: "12345678"}
    )
    assert result["reason"] == "wrong_vehicle"
    assert "Could not revoke the certificate just issued to zoe-7" in caplog.text


async def test_zeroconf_already_configured(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """A paired car announcing itself again aborts and its address is kept current."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=DISCOVERY
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert mock_config_entry.data[CONF_HOST] == "192.168.1.50"


async def test_zeroconf_without_vehicle_id(hass: HomeAssistant) -> None:
    """An announcement without a vehicle id is ignored."""
    info = ZeroconfServiceInfo(
        ip_address=ip_address("192.168.1.50"),
        ip_addresses=[ip_address("192.168.1.50")],
        hostname="x.local.",
        name="x._carhub._tcp.local.",
        port=8767,
        type="_carhub._tcp.local.",
        properties={},
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=info
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery"


async def test_reauth(
    hass: HomeAssistant, mock_pair: AsyncMock, mock_config_entry: MockConfigEntry
) -> None:
    """Re-pairing a car whose certificate was revoked; a wrong code first."""
    mock_config_entry.add_to_hass(hass)
    result = await mock_config_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    mock_pair.side_effect = PairingCodeError("bad")
    user_input = {CONF_HOST: "192.168.1.77", CONF_PORT: 8767, CONF_CODE: "12345678"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["errors"] == {"base": "invalid_code"}
    mock_pair.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert mock_config_entry.data[CONF_HOST] == "192.168.1.77"
    # The declared signals survive re-pairing.
    assert mock_config_entry.data[CONF_SIGNALS] == entry_data()[CONF_SIGNALS]


async def test_reauth_wrong_vehicle(
    hass: HomeAssistant,
    mock_pair: AsyncMock,
    mock_config_entry: MockConfigEntry,
    config_dir: Path,
    tmp_path: Path,
) -> None:
    """Re-pairing with another car's code aborts without touching the entry; the other
    car's new certificate is revoked, its existing one is not."""
    mock_config_entry.add_to_hass(hass)
    other = await hass.async_add_executor_job(
        issue_car_certificate, storage_dir(hass), config_dir / "zoe", "zoe-7"
    )
    issued: list[bytes] = []
    mock_pair.side_effect = issuing(hass, tmp_path, OTHER_RESULT.vehicle, issued)
    result = await mock_config_entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "192.168.1.77", CONF_PORT: 8767, CONF_CODE: "12345678"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_vehicle"
    assert mock_config_entry.data[CONF_HOST] == "127.0.0.1"
    assert await revoked(hass) == {
        certificate_serial(other.cert_path.read_bytes()): False,
        certificate_serial(issued[0]): True,
    }


def free_port() -> int:
    """A port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_reconfigure(
    hass: HomeAssistant, socket_enabled: None, mock_config_entry: MockConfigEntry
) -> None:
    """Listener settings change for every car; a bad URL and a busy port first."""
    mock_config_entry.add_to_hass(hass)
    other = MockConfigEntry(
        domain=DOMAIN, unique_id="zoe-7", title="Renault Zoe", data=entry_data()
    )
    other.add_to_hass(hass)
    port = free_port()
    result = await mock_config_entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_LISTEN_PORT: port, CONF_EXTERNAL_URL: "home.example.com"}
    )
    assert result["errors"] == {CONF_EXTERNAL_URL: "invalid_url"}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {CONF_LISTEN_PORT: taken, CONF_EXTERNAL_URL: "wss://home.example.com"},
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_LISTEN_PORT: "port_in_use"}
    assert mock_config_entry.data[CONF_LISTEN_PORT] == 0
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_LISTEN_PORT: port, CONF_EXTERNAL_URL: "wss://home.example.com"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    for entry in (mock_config_entry, other):
        assert entry.data[CONF_LISTEN_PORT] == port
        assert entry.data[CONF_EXTERNAL_URL] == "wss://home.example.com"


async def test_options_flow(hass: HomeAssistant, mock_config_entry: MockConfigEntry) -> None:
    """Agent and per-car limits are stored as options."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(mock_config_entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_AGENT_ID: "conversation.home_assistant",
            CONF_ALLOWED_DOMAINS: ["light", "cover"],
            CONF_ALLOWED_AREAS: ["garage"],
            CONF_ALLOWED_SENSITIVE: ["garage_door"],
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert mock_config_entry.options == {
        CONF_AGENT_ID: "conversation.home_assistant",
        CONF_ALLOWED_DOMAINS: ["light", "cover"],
        CONF_ALLOWED_AREAS: ["garage"],
        CONF_ALLOWED_SENSITIVE: ["garage_door"],
        # Approaching-home thresholds keep their defaults (home_approach.py).
        "approach_minutes": 10.0,
        "eta_max_km": 100.0,
    }
