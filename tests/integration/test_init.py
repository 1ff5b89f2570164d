"""Setup, unload, reload, removal and the shared listener."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Generator
from ipaddress import ip_address
from unittest.mock import patch

import pytest
from cryptography import x509
from homeassistant.config_entries import ConfigEntryDisabler, ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from bridge.errors import DeferMessage
from bridge.pki import HomeCA
from bridge.protocol import Envelope, MessageType
from bridge.server import PeerInfo
from custom_components.carhub import async_remove_config_entry_device
from custom_components.carhub.const import CONF_LISTEN_PORT, DOMAIN
from custom_components.carhub.hub import (
    DATA_HUB,
    NEEDS_USER_RETRY_S,
    NOT_LOADED_REASON,
    NOT_LOADED_RETRY_S,
    CarHub,
    async_hub_info,
    ipv6_listen_works,
    storage_dir,
)

from .conftest import (
    PEER,
    VEHICLE_ID,
    VIN,
    car_device_entry,
    connect_car,
    entry_data,
    hello,
    hub,
    issue_car_certificate,
    message,
    signals_body,
    unload_all,
)


async def test_setup_and_unload(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """The entry loads, the listener runs; unloading stops it."""
    assert init_integration.state is ConfigEntryState.LOADED
    carhub = hub(hass)
    assert carhub.running
    assert carhub.listen_port
    await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.NOT_LOADED
    assert DATA_HUB not in hass.data
    assert not carhub.running


async def test_two_cars_share_one_listener(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    config_dir,
) -> None:
    """A second car joins the running listener; it stops only with the last car."""
    await hass.async_add_executor_job(
        issue_car_certificate, storage_dir(hass), config_dir / "zoe", "zoe-7"
    )
    second = MockConfigEntry(
        domain=DOMAIN, unique_id="zoe-7", title="Renault Zoe", data=entry_data()
    )
    second.add_to_hass(hass)
    carhub = hub(hass)
    await hass.config_entries.async_setup(second.entry_id)
    await hass.async_block_till_done()
    assert second.state is ConfigEntryState.LOADED
    assert hub(hass) is carhub
    await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert carhub.running
    await hass.config_entries.async_unload(second.entry_id)
    await hass.async_block_till_done()
    assert not carhub.running
    assert DATA_HUB not in hass.data


async def test_reload_keeps_no_leftovers(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Reloading restarts the listener cleanly (the plugin checks tasks, timers, threads)."""
    await connect_car(hass)
    await hass.config_entries.async_reload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED
    assert hub(hass).running


async def test_revoked_certificate_starts_reauth(
    hass: HomeAssistant, socket_enabled: None, mock_config_entry: MockConfigEntry, car_identity
) -> None:
    """A car whose certificate was revoked cannot load: Home Assistant asks to pair again."""
    ca = await hass.async_add_executor_job(HomeCA.load, storage_dir(hass))
    await hass.async_add_executor_job(ca.revoke, VEHICLE_ID)
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress()
    assert [f["context"]["source"] for f in flows] == ["reauth"]
    assert DATA_HUB not in hass.data


async def test_listener_port_busy_retries(
    hass: HomeAssistant, socket_enabled: None, mock_config_entry: MockConfigEntry, car_identity
) -> None:
    """A port that cannot be bound makes setup retry later."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        mock_config_entry.add_to_hass(hass)
        hass.config_entries.async_update_entry(
            mock_config_entry, data={**mock_config_entry.data, CONF_LISTEN_PORT: port}
        )
        await hass.config_entries.async_setup(mock_config_entry.entry_id)
        await hass.async_block_till_done()
        assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert DATA_HUB not in hass.data
    await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_remove_entry_revokes_certificate(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Deleting the car revokes its certificate, so it can never connect again."""
    ca = hub(hass).ca
    assert await hass.async_add_executor_job(ca.certificate_expiry, VEHICLE_ID) is not None
    await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()
    assert await hass.async_add_executor_job(ca.certificate_expiry, VEHICLE_ID) is None
    assert [c.revoked_at is not None for c in ca.issued_certificates()] == [True]


async def test_unknown_car_is_dropped(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A certificate of this CA without an entry gets its link closed, nothing else."""
    carhub = hub(hass)
    with patch.object(carhub, "async_disconnect") as disconnect:
        await carhub.on_connect(PeerInfo(vehicle_id="ghost", remote="x"), hello())
        await carhub.on_message(
            PeerInfo(vehicle_id="ghost", remote="x"),
            message(MessageType.STATE, signals_body({"Vehicle.Speed": 1})),
        )
        await hass.async_block_till_done(wait_background_tasks=True)
    disconnect.assert_called_once_with("ghost", "vehicle is not configured")


async def test_stale_devices_removed(
    hass: HomeAssistant, socket_enabled: None, mock_config_entry: MockConfigEntry, car_identity
) -> None:
    """A device of this entry that is not its car is removed at setup."""
    mock_config_entry.add_to_hass(hass)
    dev_reg = dr.async_get(hass)
    stale = dev_reg.async_get_or_create(
        config_entry_id=mock_config_entry.entry_id, identifiers={(DOMAIN, "old-id")}
    )
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert dev_reg.async_get(stale.id) is None
    car = car_device_entry(hass)
    assert car is not None
    assert car.serial_number == VIN
    assert car.manufacturer == "Volkswagen"
    await unload_all(hass)


async def test_hello_updates_device(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """The car's hello updates the device (agent version, model) and the entry."""
    await hub(hass).on_connect(PEER, hello(model="Golf GTI"))
    await hass.async_block_till_done()
    car = car_device_entry(hass)
    assert car.sw_version == "0.2.0"
    assert car.model == "Golf GTI"
    assert init_integration.data["model"] == "Golf GTI"


async def test_reconfigure_moves_listener(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir
) -> None:
    """Reconfiguring the port restarts the shared listener on the new port; every car's
    entry gets the new settings and stays loaded on the same hub."""
    second = await _second_car_keeps_hub(hass, config_dir)
    carhub = hub(hass)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await init_integration.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_LISTEN_PORT: port}
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert hub(hass) is carhub
    assert carhub.listen_port == port
    for entry in (init_integration, second):
        assert entry.data[CONF_LISTEN_PORT] == port
        assert entry.state is ConfigEntryState.LOADED
    # The other car's entry reloads later with the same settings: nothing moves.
    await hass.config_entries.async_reload(second.entry_id)
    await hass.async_block_till_done()
    assert carhub.listen_port == port


async def test_reconfigure_busy_port(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A port another program holds is an error in the form; the listener stays where
    it was (started again on its old port) and a free port then works."""
    carhub = hub(hass)
    old_port = carhub.listen_port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        result = await init_integration.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_LISTEN_PORT: taken}
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_LISTEN_PORT: "port_in_use"}
    assert carhub.running
    assert carhub.listen_port == old_port
    assert init_integration.data[CONF_LISTEN_PORT] == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_LISTEN_PORT: port}
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert carhub.listen_port == port
    assert init_integration.state is ConfigEntryState.LOADED


async def test_restart_failure_rolls_back(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir
) -> None:
    """An entry that loads with a port the listener cannot take (taken meanwhile)
    leaves the shared listener on its old port and retries later."""
    second = await _second_car_keeps_hub(hass, config_dir)
    carhub = hub(hass)
    old_port = carhub.listen_port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        hass.config_entries.async_update_entry(
            second, data={**second.data, CONF_LISTEN_PORT: taken}
        )
        await hass.config_entries.async_reload(second.entry_id)
        await hass.async_block_till_done()
        assert second.state is ConfigEntryState.SETUP_RETRY
    assert hub(hass) is carhub
    assert carhub.running
    assert carhub.listen_port == old_port
    assert init_integration.state is ConfigEntryState.LOADED
    await hass.config_entries.async_unload(second.entry_id)


async def test_server_certificate_names(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The external URL's host goes into the server certificate (DNS name or IP)."""
    carhub = hub(hass)
    names, ips = await carhub._async_server_names("wss://home.example.com:8766", ipv6=False)
    assert "home.example.com" in names
    assert "localhost" in names
    assert "127.0.0.1" in ips
    names, ips = await carhub._async_server_names("https://203.0.113.5", ipv6=False)
    assert "203.0.113.5" in ips
    names, _ = await carhub._async_server_names("wss://bad_host.example.com", ipv6=False)
    assert "bad_host.example.com" not in names


ADDRESSES = [
    ip_address("192.168.1.10"),
    ip_address("fd00::10"),
    ip_address("2001:db8::1"),
    ip_address("fe80::1"),
]


async def test_ipv6_addresses_advertised_when_listening_on_ipv6(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The listener listens on IPv4 and IPv6 (loopback in tests): cars are told, and the
    certificate names, the IPv6 addresses too (never link-local), IPv4 first."""
    carhub = hub(hass)
    assert carhub.ipv6
    assert carhub._server is not None and carhub._server.hosts == ("127.0.0.1", "::1")
    with patch(
        "custom_components.carhub.hub.network.async_get_enabled_source_ips",
        return_value=[*ADDRESSES[1:], ADDRESSES[0]],
    ):
        info = await async_hub_info(hass, carhub.ca, 8766, None)
        _, ips = await carhub._async_server_names(None, ipv6=True)
    assert info.lan_urls == [
        "wss://192.168.1.10:8766",
        "wss://[fd00::10]:8766",
        "wss://[2001:db8::1]:8766",
    ]
    assert ips == ["127.0.0.1", "::1", "192.168.1.10", "fd00::10", "2001:db8::1"]
    cert = await hass.async_add_executor_job(carhub.ca.server_certificate)
    assert cert is not None
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ip_address("::1") in san.get_values_for_type(x509.IPAddress)


@pytest.mark.usefixtures("car_identity", "socket_enabled")
async def test_only_ipv4_when_ipv6_cannot_listen(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """If the IPv6 listener cannot bind, the hub listens on IPv4 alone and advertises
    (and certifies) IPv4 addresses only."""
    with patch("custom_components.carhub.hub.DEFAULT_LISTEN_HOST_V6", "192.0.2.123"):
        mock_config_entry.add_to_hass(hass)  # an address this machine does not have
        assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
        await hass.async_block_till_done()
    carhub = hub(hass)
    assert carhub.running
    assert not carhub.ipv6
    assert carhub._server is not None and carhub._server.hosts == ("127.0.0.1",)
    with patch(
        "custom_components.carhub.hub.network.async_get_enabled_source_ips",
        return_value=ADDRESSES,
    ):
        info = await async_hub_info(hass, carhub.ca, 8766, None)
    assert info.lan_urls == ["wss://192.168.1.10:8766"]
    cert = await hass.async_add_executor_job(carhub.ca.server_certificate)
    assert cert is not None
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    certified = san.get_values_for_type(x509.IPAddress)
    assert ip_address("127.0.0.1") in certified
    assert all(a.version == 4 for a in certified)
    await unload_all(hass)


async def test_ipv6_probe_without_listener(hass: HomeAssistant, socket_enabled: None) -> None:
    """With no listener running, pairing advertises IPv6 if this machine can listen on it."""
    with patch(
        "custom_components.carhub.hub.network.async_get_enabled_source_ips",
        return_value=ADDRESSES,
    ):
        ca = await hass.async_add_executor_job(HomeCA.load_or_create, storage_dir(hass))
        with patch("custom_components.carhub.hub.ipv6_listen_works", return_value=True):
            info = await async_hub_info(hass, ca, 8766, None)
        assert "wss://[fd00::10]:8766" in info.lan_urls
        info = await async_hub_info(hass, ca, 8766, None)  # the autouse patch: no IPv6
        assert info.lan_urls == ["wss://192.168.1.10:8766"]
    assert ipv6_listen_works() is socket.has_ipv6  # the real probe (IPv6 works here)


async def test_remove_unloaded_entry_still_revokes(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A car removed while its entry is not loaded (no listener) is revoked too."""
    ca = hub(hass).ca
    await hass.config_entries.async_unload(init_integration.entry_id)
    await hass.async_block_till_done()
    assert DATA_HUB not in hass.data
    await hass.config_entries.async_remove(init_integration.entry_id)
    await hass.async_block_till_done()
    assert await hass.async_add_executor_job(ca.certificate_expiry, VEHICLE_ID) is None


async def test_home_assistant_stop_closes_listener(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Stopping Home Assistant closes the listener even though entries stay loaded."""
    carhub = hub(hass)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert not carhub.running


async def test_manual_device_removal(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The car's own device cannot be deleted by hand; a stale one can."""
    dev_reg = dr.async_get(hass)
    car = car_device_entry(hass)
    stale = dev_reg.async_get_or_create(
        config_entry_id=init_integration.entry_id, identifiers={(DOMAIN, "old-id")}
    )
    assert not await async_remove_config_entry_device(hass, init_integration, car)
    assert await async_remove_config_entry_device(hass, init_integration, stale)


async def _second_car_keeps_hub(hass: HomeAssistant, config_dir) -> MockConfigEntry:
    """Another loaded car, so the listener stays up while the first one is unloaded."""
    await hass.async_add_executor_job(
        issue_car_certificate, storage_dir(hass), config_dir / "zoe", "zoe-7"
    )
    second = MockConfigEntry(
        domain=DOMAIN, unique_id="zoe-7", title="Renault Zoe", data=entry_data()
    )
    second.add_to_hass(hass)
    await hass.config_entries.async_setup(second.entry_id)
    await hass.async_block_till_done()
    return second


@pytest.fixture
def short_grace() -> Generator[None]:
    """Messages of a car of an unloaded entry wait 0.05 s (not 10 s) for it to load."""
    with patch("custom_components.carhub.hub.NOT_LOADED_GRACE_S", 0.05):
        yield


async def _unload_first_car(hass: HomeAssistant, entry: MockConfigEntry, config_dir) -> CarHub:
    """Unload ``entry`` while another car keeps the listener up; the hub."""
    await _second_car_keeps_hub(hass, config_dir)
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    return hub(hass)


def _event() -> Envelope:
    return message(MessageType.EVENT, {"kind": "trip_start", "ts": 1.0})


@pytest.mark.usefixtures("short_grace")
async def test_reload_while_car_connected_requests_snapshot(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir
) -> None:
    """With the listener kept up by another car, reloading one car keeps its link,
    shows it connected and asks it for a snapshot."""
    carhub = await _unload_first_car(hass, init_integration, config_dir)
    with patch.object(carhub, "async_disconnect") as disconnect:
        await carhub.on_connect(PEER, hello())
        await hass.async_block_till_done(wait_background_tasks=True)
    disconnect.assert_not_called()  # a car of an unloaded entry keeps its link
    with (
        patch.object(carhub, "connected", return_value=True),
        patch.object(CarHub, "async_send", autospec=True, return_value=1) as send,
    ):
        await hass.config_entries.async_setup(init_integration.entry_id)
        await hass.async_block_till_done()
        assert hass.states.get("binary_sensor.volkswagen_golf_connected").state == "on"
    commands = [c.args[3] for c in send.call_args_list if c.args[2] == MessageType.COMMAND]
    assert [c["command"] for c in commands] == ["snapshot"]


async def test_message_waits_for_entry_to_load(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir
) -> None:
    """A message that arrives during a reload is held and then handled, not deferred."""
    carhub = await _unload_first_car(hass, init_integration, config_dir)
    with patch("custom_components.carhub.hub.NOT_LOADED_GRACE_S", 5.0):
        held = hass.async_create_task(
            carhub.on_message(PEER, message(MessageType.STATE, signals_body({"Vehicle.Speed": 77})))
        )
        await asyncio.sleep(0)
        assert not held.done()
        await hass.config_entries.async_setup(init_integration.entry_id)
        await held  # returned normally: acked
        await hass.async_block_till_done()
    assert init_integration.runtime_data.coordinator.data.value("Vehicle.Speed") == 77


async def test_message_of_unloaded_entry_is_deferred(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir
) -> None:
    """A message for an entry that does not load within the grace is deferred (not acked,
    the link closes with 'retry soon'); the grace is spent once per time the entry is not
    loaded, so later messages are deferred at once, until the entry has loaded again."""
    carhub = await _unload_first_car(hass, init_integration, config_dir)
    with patch("custom_components.carhub.hub.NOT_LOADED_GRACE_S", 0.2):
        held = hass.async_create_task(carhub.on_message(PEER, _event()))
        await asyncio.sleep(0.05)
        assert not held.done()  # held for a reload first
        with pytest.raises(DeferMessage) as deferred:
            await held
    assert deferred.value.reason == NOT_LOADED_REASON
    assert deferred.value.retry_after == NOT_LOADED_RETRY_S
    with patch("custom_components.carhub.hub.NOT_LOADED_GRACE_S", 30.0):
        async with asyncio.timeout(5):  # no second grace
            with pytest.raises(DeferMessage):
                await carhub.on_message(PEER, _event())
        # Loaded and unloaded again: a new grace.
        await hass.config_entries.async_setup(init_integration.entry_id)
        await hass.async_block_till_done()
        await hass.config_entries.async_unload(init_integration.entry_id)
        await hass.async_block_till_done()
        held = hass.async_create_task(carhub.on_message(PEER, _event()))
        await asyncio.sleep(0.1)
        assert not held.done()
        held.cancel()  # what the bridge does when the link ends meanwhile
        with pytest.raises(asyncio.CancelledError):
            await held


async def test_message_of_disabled_entry_is_deferred_at_once(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir
) -> None:
    """A disabled entry is not about to load: no grace, and the car is asked to come
    back rarely."""
    await _second_car_keeps_hub(hass, config_dir)
    await hass.config_entries.async_set_disabled_by(
        init_integration.entry_id, ConfigEntryDisabler.USER
    )
    await hass.async_block_till_done()
    with patch("custom_components.carhub.hub.NOT_LOADED_GRACE_S", 30.0):
        async with asyncio.timeout(5):
            with pytest.raises(DeferMessage) as deferred:
                await hub(hass).on_message(PEER, _event())
    assert deferred.value.retry_after == NEEDS_USER_RETRY_S


@pytest.mark.usefixtures("short_grace")
async def test_snapshot_of_unloaded_entry_is_dropped_after_the_grace(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir
) -> None:
    """A snapshot is not deferred (a new one follows every reconnect), so what the car
    queued behind it, such as a voice request, is reached."""
    carhub = await _unload_first_car(hass, init_integration, config_dir)
    await carhub.on_message(
        PEER, message(MessageType.SNAPSHOT, signals_body({"Vehicle.Speed": 5}))
    )  # returns: acked
    await hass.config_entries.async_setup(init_integration.entry_id)
    await hass.async_block_till_done()
    assert init_integration.runtime_data.coordinator.data.value("Vehicle.Speed") is None


async def test_voice_request_of_unloaded_entry_is_answered_at_once(
    hass: HomeAssistant, init_integration: MockConfigEntry, config_dir
) -> None:
    """The driver gets a spoken reply at once (no grace, no deferral) when the car's
    entry is not loaded."""
    carhub = await _unload_first_car(hass, init_integration, config_dir)
    with (
        patch("custom_components.carhub.hub.NOT_LOADED_GRACE_S", 30.0),
        patch.object(CarHub, "async_send", autospec=True, return_value=1) as send,
        patch.object(carhub, "async_disconnect") as disconnect,
    ):
        async with asyncio.timeout(5):
            await carhub.on_message(
                PEER,
                message(
                    MessageType.VOICE_REQUEST,
                    {"request_id": "v9", "text": "turn on the light", "language": "en"},
                ),
            )
        await hass.async_block_till_done(wait_background_tasks=True)
    [(_, vehicle_id, type_, body)] = [c.args for c in send.call_args_list]
    assert (vehicle_id, type_) == (VEHICLE_ID, MessageType.VOICE_REPLY)
    assert body == {
        "request_id": "v9",
        "text": "Sorry, this car can't use the home right now.",
        "success": False,
    }
    disconnect.assert_not_called()


async def test_unknown_car_is_refused(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A car with a certificate of this CA but no entry is disconnected (4003, no retry
    hint) and its messages are dropped."""
    carhub = hub(hass)
    stranger = PeerInfo(vehicle_id="stranger-1", remote="127.0.0.1")
    with patch.object(carhub, "async_disconnect") as disconnect:
        await carhub.on_connect(stranger, hello())
        await carhub.on_message(stranger, _event())  # returns: acked and dropped
        await hass.async_block_till_done(wait_background_tasks=True)
    disconnect.assert_called_once_with("stranger-1", "vehicle is not configured")
