"""A real car: pairing over SPAKE2 and a CarLink over mTLS on 127.0.0.1, end to end.

The car side is the bridge from this repo (PairingServer, HomeRegistry, CarLink);
the home side is the integration, set up through its config flow, with its
listener running inside the ``hass`` fixture.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PORT, STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_mock_service,
)

from bridge.client import CarLink
from bridge.homes import HomeRegistry
from bridge.pairing import PairingServer, VehicleInfo
from bridge.pki import CarIdentity
from bridge.protocol import Envelope, MessageType
from custom_components.carhub.const import CONF_CODE, CONF_LISTEN_PORT, DOMAIN, EVENT_VEHICLE
from custom_components.carhub.hub import storage_dir

from .conftest import (
    SIGNALS,
    SNAPSHOT_VALUES,
    car_device_entry,
    entry_data,
    hub,
    issue_car_certificate,
    unload_all,
)

VEHICLE = VehicleInfo(
    vehicle_id="polo-3",
    vin="WVWZZZ6RZGY000003",
    make="Volkswagen",
    model="Polo",
    agent_version="0.1.0",
)


async def wait_for(predicate: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Poll a condition (bounded in time): the car's link is truly asynchronous."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def pair(hass: HomeAssistant, registry: HomeRegistry) -> str:
    """Pair through the config flow against the car's real pairing server; the hub id."""
    server = PairingServer(
        vehicle=VEHICLE, identity_factory=registry.identity_factory, host="127.0.0.1", port=0
    )
    await server.start()
    with socket.socket() as probe:  # a free port for the home's listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        # A wrong code first: the window stays open and the retry succeeds.
        wrong = "0" * 8 if server.code != "0" * 8 else "1" * 8
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {
                CONF_HOST: "127.0.0.1",
                CONF_PORT: server.port,
                CONF_CODE: wrong,
                CONF_LISTEN_PORT: port,
            },
        )
        assert result["errors"] == {"base": "invalid_code"}
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {
                CONF_HOST: "127.0.0.1",
                CONF_PORT: server.port,
                CONF_CODE: server.code,
                CONF_LISTEN_PORT: port,
            },
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["result"].unique_id == VEHICLE.vehicle_id
        info = await asyncio.wait_for(server.wait_paired(), 10)
    finally:
        await server.close()
    await hass.async_add_executor_job(registry.commit, info)
    await hass.async_block_till_done()
    return info.hub_id


async def test_real_car_over_mtls(
    hass: HomeAssistant, socket_enabled: None, config_dir: Path
) -> None:
    """Pair, connect over mTLS, state to entities, voice round trip, notify, disconnect."""
    registry = HomeRegistry(config_dir / "car")
    hub_id = await pair(hass, registry)
    carhub = hub(hass)
    assert carhub.ca.hub_id == hub_id

    lights_on = async_mock_service(hass, "light", "turn_on")
    hass.states.async_set("light.porch", "off", {"friendly_name": "Porch light"})
    async_expose_entity(hass, "conversation", "light.porch", True)

    received: list[Envelope] = []

    async def on_message(env: Envelope) -> None:
        received.append(env)

    now = time.time()
    link = CarLink(
        home_dir=registry.directory(hub_id),
        hello_body={
            "agent_version": "0.1.0",
            "vehicle": {
                "vehicle_id": VEHICLE.vehicle_id,
                "vin": VEHICLE.vin,
                "make": "Volkswagen",
                "model": "Polo",
                "profile": "test",
            },
            "capabilities": ["voice"],
            "signals": SIGNALS,
        },
        on_message=on_message,
        snapshot=lambda: {p: {"value": v, "ts": now} for p, v in SNAPSHOT_VALUES.items()},
        url=f"wss://127.0.0.1:{carhub.listen_port}",
        backoff_min_s=0.1,
        backoff_max_s=0.5,
    )
    await link.start()
    try:
        assert await link.wait_connected(10)
        # The snapshot sent after connecting reaches the entities.
        await wait_for(
            lambda: (
                (s := hass.states.get("sensor.volkswagen_polo_speed")) is not None
                and s.state == "42.5"
            )
        )
        assert hass.states.get("binary_sensor.volkswagen_polo_connected").state == STATE_ON
        assert hass.states.get("device_tracker.volkswagen_polo").attributes["latitude"] == 52.52
        # The car got the Assist vocabulary after its hello.
        await wait_for(lambda: any(e.type == MessageType.VOCABULARY for e in received))
        vocab = next(e for e in received if e.type == MessageType.VOCABULARY)
        assert "Porch light" in vocab.body["entities"]

        # A state delta.
        await link.send(
            MessageType.STATE,
            {"signals": {"Vehicle.Speed": {"value": 0, "ts": time.time()}}},
        )
        await wait_for(
            lambda: hass.states.get("binary_sensor.volkswagen_polo_moving").state == STATE_OFF
        )

        # The driver speaks; the home acts and answers.
        await link.send(
            MessageType.VOICE_REQUEST,
            {"request_id": "v1", "text": "turn on the porch light", "language": "en"},
        )
        await wait_for(lambda: any(e.type == MessageType.VOICE_REPLY for e in received))
        reply = next(e for e in received if e.type == MessageType.VOICE_REPLY)
        assert reply.body["request_id"] == "v1"
        assert reply.body["success"] is True
        assert [c.data["entity_id"] for c in lights_on] == [["light.porch"]]

        # An action from Home Assistant reaches the car.
        device = car_device_entry(hass, VEHICLE.vehicle_id)
        await hass.services.async_call(
            DOMAIN,
            "notify_vehicle",
            {"device_id": device.id, "message": "Drive safely"},
            blocking=True,
        )
        await wait_for(lambda: any(e.type == MessageType.NOTIFY for e in received))
        notify: dict[str, Any] = next(e for e in received if e.type == MessageType.NOTIFY).body
        assert notify["message"] == "Drive safely"
    finally:
        await link.stop()
    await wait_for(
        lambda: hass.states.get("binary_sensor.volkswagen_polo_connected").state == STATE_OFF
    )
    # The car is away: its last values stay.
    assert hass.states.get("sensor.volkswagen_polo_odometer").state == "123456.7"
    await unload_all(hass)


async def test_car_of_unloaded_entry_keeps_its_messages(
    hass: HomeAssistant,
    socket_enabled: None,
    mock_config_entry: MockConfigEntry,
    car_identity: CarIdentity,
    config_dir: Path,
) -> None:
    """A real car whose entry is not loaded: its voice request is answered (also behind
    its snapshot), its other messages are deferred: not acked, the link closed with
    'retry soon', and they arrive, exactly once, after the entry loads."""
    mock_config_entry.add_to_hass(hass)  # keeps the listener up
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    identity = await hass.async_add_executor_job(
        issue_car_certificate, storage_dir(hass), config_dir / "zoe", "zoe-7"
    )
    zoe = MockConfigEntry(domain=DOMAIN, unique_id="zoe-7", title="Renault Zoe", data=entry_data())
    zoe.add_to_hass(hass)  # known, but not loaded
    events = async_capture_events(hass, EVENT_VEHICLE)
    received: list[Envelope] = []

    async def on_message(env: Envelope) -> None:
        received.append(env)

    link = CarLink(
        home_dir=identity.directory,
        hello_body={
            "agent_version": "0.1.0",
            "vehicle": {"vehicle_id": "zoe-7", "vin": "", "make": "Renault", "model": "Zoe"},
            "capabilities": ["voice"],
            "signals": {},
        },
        on_message=on_message,
        snapshot=lambda: {"Vehicle.Speed": {"value": 5, "ts": time.time()}},
        url=f"wss://127.0.0.1:{hub(hass).listen_port}",
        backoff_min_s=0.05,
        backoff_max_s=60.0,  # a car that took 4005 for a refusal would wait 30-60 s
    )
    with (
        patch("custom_components.carhub.hub.NOT_LOADED_GRACE_S", 0.2),
        patch("custom_components.carhub.hub.NOT_LOADED_RETRY_S", 0.2),
    ):
        await link.start()
        try:
            assert await link.wait_connected(10)
            await link.send(
                MessageType.VOICE_REQUEST,
                {"request_id": "z1", "text": "turn on the light", "language": "en"},
            )
            await wait_for(lambda: any(e.type == MessageType.VOICE_REPLY for e in received))
            reply = next(e for e in received if e.type == MessageType.VOICE_REPLY).body
            assert reply == {
                "request_id": "z1",
                "text": "Sorry, this car can't use the home right now.",
                "success": False,
            }
            seq = await link.send(
                MessageType.EVENT, {"kind": "trip_start", "ts": time.time(), "data": {}}
            )
            connects = link.connects
            # The hub defers the event: the link closes with 4005 and a hint; the car
            # comes back soon, and the event is still in its outbox.
            await wait_for(lambda: link.connects >= connects + 2)
            assert link.outbox.acked_seq < seq
            assert not [e for e in events if e.data["vehicle_id"] == "zoe-7"]
            assert (link.last_close_reason or "").startswith(
                "retry_after=0.2; home not ready for this car"
            )

            await hass.config_entries.async_setup(zoe.entry_id)
            await hass.async_block_till_done()
            await wait_for(lambda: link.outbox.acked_seq >= seq)
            await wait_for(lambda: any(e.data["vehicle_id"] == "zoe-7" for e in events))
            await asyncio.sleep(0.3)  # a duplicate would have come by now
            [event] = [e for e in events if e.data["vehicle_id"] == "zoe-7"]
            assert event.data["type"] == "trip_start"
        finally:
            await link.stop()
    await unload_all(hass)
