"""Sensor entities: created from the declared signals, fed by the car, restored."""

from __future__ import annotations

import time
from datetime import timedelta
from unittest.mock import patch

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
    snapshot_platform,
)
from syrupy.assertion import SnapshotAssertion

from bridge.protocol import MessageType
from custom_components.carhub.hub import CarHub

from .conftest import PEER, connect_car, hub, message, signals_body, unload_all


@pytest.fixture(autouse=True)
def only_sensors():
    """Load only the sensor platform (one platform per snapshot)."""
    with patch("custom_components.carhub.PLATFORMS", [Platform.SENSOR]):
        yield


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_sensors_snapshot(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every sensor the car declares, with the values of its snapshot."""
    with patch("custom_components.carhub.coordinator.dt_util.utcnow") as utcnow:
        utcnow.return_value = dt_util.parse_datetime("2025-04-01T12:00:00+00:00")
        await connect_car(hass)
    await snapshot_platform(hass, entity_registry, snapshot, init_integration.entry_id)


async def test_values_and_units(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Values reach the entities with device classes and units Home Assistant converts."""
    await connect_car(hass)
    speed = hass.states.get("sensor.volkswagen_golf_speed")
    assert speed is not None
    assert speed.state == "42.5"
    assert speed.attributes["unit_of_measurement"] == "km/h"
    assert speed.attributes["device_class"] == "speed"
    odometer = hass.states.get("sensor.volkswagen_golf_odometer")
    assert odometer.attributes["state_class"] == "total_increasing"
    assert hass.states.get("sensor.volkswagen_golf_gear").state == "d"
    dtc = hass.states.get("sensor.volkswagen_golf_trouble_codes")
    assert dtc.state == "1"
    assert dtc.attributes["codes"] == [
        {"code": "P0301", "description": "Cylinder 1 misfire detected", "kind": "stored"}
    ]
    # The traction battery is not declared by this petrol car: no entity.
    assert hass.states.get("sensor.volkswagen_golf_traction_battery") is None


async def test_declared_unit_is_used(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A profile that declares mph gets a native unit of mph, shown in km/h (metric):
    a new hello with another unit applies at once, without a reload."""
    from .conftest import SIGNALS, hello

    await connect_car(hass)
    entity_id = "sensor.volkswagen_golf_speed"
    assert hass.states.get(entity_id).state == "42.5"
    signals = {**SIGNALS, "Vehicle.Speed": {"unit": "mph", "datatype": "float"}}
    carhub = hub(hass)
    await carhub.on_connect(PEER, hello(signals))
    await hass.async_block_till_done()
    # What the sensor held was km/h: converted, not reinterpreted as mph.
    state = hass.states.get(entity_id)
    assert state.attributes["unit_of_measurement"] == "km/h"
    assert float(state.state) == pytest.approx(42.5, abs=0.01)
    await carhub.on_message(PEER, message(MessageType.STATE, signals_body({"Vehicle.Speed": 10})))
    await hass.async_block_till_done()
    state = hass.states.get(entity_id)
    assert state.attributes["unit_of_measurement"] == "km/h"
    assert float(state.state) == pytest.approx(16.09, abs=0.01)
    # The odometer's unit did not change: its value is kept as it was.
    assert hass.states.get("sensor.volkswagen_golf_odometer").state == "123456.7"


async def test_older_delta_does_not_win(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A replayed delta older than the current value is ignored."""
    await connect_car(hass)
    carhub = hub(hass)
    now = time.time()
    await carhub.on_message(
        PEER, message(MessageType.STATE, signals_body({"Vehicle.Speed": 80}, ts=now + 5))
    )
    await carhub.on_message(
        PEER, message(MessageType.STATE, signals_body({"Vehicle.Speed": 10}, ts=now + 1))
    )
    await hass.async_block_till_done()
    assert float(hass.states.get("sensor.volkswagen_golf_speed").state) == 80


async def test_backlog_only_newest_becomes_state(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A replayed backlog writes one state per signal: the newest, not every old value."""
    old = time.time() - 3600
    await connect_car(hass, ts=old - 600)  # what HA knew before the car went away
    entity_id = "sensor.volkswagen_golf_odometer"
    written: list[str] = []

    @callback
    def record(event) -> None:
        if event.data["entity_id"] == entity_id:
            written.append(event.data["new_state"].state)

    hass.bus.async_listen("state_changed", record)
    carhub = hub(hass)
    for i in range(50):
        await carhub.on_message(
            PEER,
            message(
                MessageType.STATE,
                signals_body({"Vehicle.TraveledDistance": 123460 + i}, ts=old + i),
                ts=old + i,
            ),
        )
    await hass.async_block_till_done()
    assert written == []  # coalesced while the backlog streams in
    # The replay pauses: the quiet-period timer fires.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=6))
    await hass.async_block_till_done()
    assert [float(v) for v in written] == [123509]


async def test_long_backlog_coalesced_until_live(
    hass: HomeAssistant, init_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """A replay that lasts long (minutes here) records no intermediate values: entities
    change once, when the first live message ends the backlog."""
    old = time.time() - 3 * 3600
    await connect_car(hass, ts=old - 600)
    entity_id = "sensor.volkswagen_golf_odometer"
    written: list[str] = []

    @callback
    def record(event) -> None:
        if event.data["entity_id"] == entity_id:
            written.append(event.data["new_state"].state)

    hass.bus.async_listen("state_changed", record)
    carhub = hub(hass)
    for i in range(120):
        # A slow replay: one message every 2 s (4 minutes in all).
        freezer.tick(2)
        async_fire_time_changed(hass)
        await carhub.on_message(
            PEER,
            message(
                MessageType.STATE,
                signals_body({"Vehicle.TraveledDistance": 123460 + i}, ts=old + 60 * i),
                ts=old + 60 * i,
            ),
        )
        await hass.async_block_till_done()
    assert written == []
    await carhub.on_message(
        PEER, message(MessageType.STATE, signals_body({"Vehicle.Speed": 50}))
    )  # live: the backlog is over
    await hass.async_block_till_done()
    assert [float(v) for v in written] == [123579]
    freezer.tick(10)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert len(written) == 1  # nothing left to flush


async def test_backlog_ends_with_the_link(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A replay cut short by a disconnect shows what it brought right away."""
    old = time.time() - 3600
    await connect_car(hass, ts=old - 600)
    carhub = hub(hass)
    await carhub.on_message(
        PEER,
        message(
            MessageType.STATE,
            signals_body({"Vehicle.TraveledDistance": 123999}, ts=old),
            ts=old,
        ),
    )
    await hass.async_block_till_done()
    assert hass.states.get("sensor.volkswagen_golf_odometer").state == "123456.7"
    await carhub.on_disconnect(PEER)
    await hass.async_block_till_done()
    assert float(hass.states.get("sensor.volkswagen_golf_odometer").state) == 123999


async def test_lagging_car_clock_is_live(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A car whose clock is two minutes behind is not mistaken for a replay: its hello
    tells the offset."""
    from .conftest import hello

    lag = 120.0
    carhub = hub(hass)
    greeting = hello()
    await carhub.on_connect(PEER, type(greeting)(**{**vars_of(greeting), "ts": time.time() - lag}))
    car_now = time.time() - lag
    await carhub.on_message(
        PEER,
        message(MessageType.STATE, signals_body({"Vehicle.Speed": 33}, ts=car_now), ts=car_now),
    )
    await hass.async_block_till_done()
    assert float(hass.states.get("sensor.volkswagen_golf_speed").state) == 33


async def test_signal_count_is_bounded(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """A car sending ever new signal paths cannot grow what is held without bound."""
    await connect_car(hass)
    carhub = hub(hass)
    flood = {f"Vehicle.Custom.Leaf{i}": i for i in range(1500)}
    await carhub.on_message(PEER, message(MessageType.STATE, signals_body(flood)))
    await hass.async_block_till_done()
    coordinator = init_integration.runtime_data.coordinator
    assert len(coordinator.data.signals) <= 1000
    assert len(coordinator.data.declared) <= 1000
    assert len(init_integration.data["sent_signals"]) <= 1000
    # Known signals still update.
    await carhub.on_message(PEER, message(MessageType.STATE, signals_body({"Vehicle.Speed": 12})))
    await hass.async_block_till_done()
    assert float(hass.states.get("sensor.volkswagen_golf_speed").state) == 12


async def test_malformed_state_is_ignored(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Garbage in a state message changes nothing and raises nothing."""
    await connect_car(hass)
    carhub = hub(hass)
    for body in (
        {"signals": "nope"},
        {"signals": {"Vehicle.Speed": "fast"}},
        {"signals": {"Vehicle.Speed": {"value": 5}}},
        {"signals": {"Vehicle.Speed": {"value": "fast", "ts": time.time()}}},
        {},
    ):
        await carhub.on_message(PEER, message(MessageType.STATE, body))
    await hass.async_block_till_done()
    # The last one carried a string: the sensor keeps its number.
    assert hass.states.get("sensor.volkswagen_golf_speed").state == "42.5"


async def test_restore_after_restart(
    hass: HomeAssistant,
    socket_enabled: None,
    mock_config_entry: MockConfigEntry,
    car_identity,
) -> None:
    """Before the car connects, sensors show their last values from before the restart."""
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("sensor.volkswagen_golf_odometer", "123000"),
                {"native_value": 123000.0, "native_unit_of_measurement": "km"},
            )
        ],
    )
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get("sensor.volkswagen_golf_odometer").state == "123000.0"
    await connect_car(hass)
    assert hass.states.get("sensor.volkswagen_golf_odometer").state == "123456.7"
    await unload_all(hass)


async def test_round_trip_time(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """The link's round-trip time is refreshed locally while connected, unknown when not."""
    entity_id = "sensor.volkswagen_golf_link_round_trip_time"
    with patch.object(CarHub, "round_trip_ms", return_value=None):
        await connect_car(hass)
    assert hass.states.get(entity_id).state == "unknown"
    with patch.object(CarHub, "round_trip_ms", return_value=12.5):
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=31))
        await hass.async_block_till_done()
    assert hass.states.get(entity_id).state == "12.5"
    await hub(hass).on_disconnect(PEER)
    await hass.async_block_till_done()
    assert hass.states.get(entity_id).state == "unknown"


async def test_last_seen_resolution(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Last seen moves on connect, then at most once a minute while data streams in."""
    entity_id = "sensor.volkswagen_golf_last_seen"
    start = dt_util.parse_datetime("2025-04-01T12:00:00+00:00")
    with patch("custom_components.carhub.coordinator.dt_util.utcnow", return_value=start):
        await connect_car(hass)
    assert hass.states.get(entity_id).state == "2025-04-01T12:00:00+00:00"
    carhub = hub(hass)
    for seconds, expected in ((30, "12:00:00"), (61, "12:01:01")):
        with patch(
            "custom_components.carhub.coordinator.dt_util.utcnow",
            return_value=start + timedelta(seconds=seconds),
        ):
            await carhub.on_message(
                PEER, message(MessageType.STATE, signals_body({"Vehicle.Speed": seconds}))
            )
            await hass.async_block_till_done()
        assert hass.states.get(entity_id).state == f"2025-04-01T{expected}+00:00"


def vars_of(env):
    """The fields of an envelope (a frozen, slotted dataclass)."""
    return {f: getattr(env, f) for f in ("v", "type", "seq", "ts", "body")}
