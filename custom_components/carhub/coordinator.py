"""Per-car runtime: receives the bridge's callbacks for one car and pushes to entities.

No polling: the shared hub dispatches every message of this car here, the
coordinator updates its ``VehicleState`` and calls ``async_set_updated_data``.

Backlog: after a long offline period the car replays its outbox oldest first.
A state value older than the one already held is ignored (per-signal
timestamps), and entity writes for messages older than ``BACKLOG_AGE`` are
coalesced until the backlog ends (the first newer message, a quiet period of
``BACKLOG_QUIET_S`` or the link closing), so Home Assistant records the newest
value of each signal instead of a series of bygone "live" states, however long
the replay. Coalescing keeps only the newest value per signal (at most
``MAX_SIGNALS``), never the messages. Message ages use the car's clock
corrected by the offset seen in its hello, so a car whose clock lags is not
mistaken for a replay. Events keep the car's original timestamp in their data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from homeassistant.components.zone import async_active_zone
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from bridge.errors import BridgeError
from bridge.protocol import Envelope, MessageType

from .const import (
    BACKLOG_AGE,
    BACKLOG_QUIET_S,
    COMMAND_TTL,
    CONF_AGENT_VERSION,
    CONF_APPROACH_MINUTES,
    CONF_ETA_MAX_KM,
    CONF_MAKE,
    CONF_MODEL,
    CONF_PROFILE,
    CONF_SENT_SIGNALS,
    CONF_SIGNALS,
    CONF_VIN,
    CONNECTION_ROUTES,
    DOMAIN,
    EVENT_APPROACHING_HOME,
    EVENT_ARRIVED_HOME,
    EVENT_CHARGING_END,
    EVENT_LEFT_HOME,
    EVENT_TRIP_END,
    EVENT_VEHICLE,
    LOGGER,
    MAX_SIGNALS,
    RTT_REFRESH_INTERVAL,
    VEHICLE_EVENT_TYPES,
)
from .history_import import HistoryImporter
from .home_approach import DEFAULT_APPROACH_MINUTES, DEFAULT_ETA_MAX_KM, HomeWatch, Position
from .models import SignalValue, VehicleState, as_float, parse_declared_signals
from .signals import GNSS_SPEED, HEADING, LATITUDE, LOCATION_ACCURACY, LONGITUDE, SPEED
from .trips import TripTracker

if TYPE_CHECKING:
    from .hub import CarHub
    from .models import CarHubConfigEntry

# Car event kinds shown on the event entity (the rest go to the HA bus only).
ENTITY_EVENT_KINDS = ("alert",)
# A hello whose clock differs by more than this is not used to correct ages.
MAX_CLOCK_OFFSET_S = 366 * 86400.0
HOME_ZONE = "zone.home"
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def _effective_signals(declared: dict[str, dict[str, Any]], sent: Any) -> dict[str, dict[str, Any]]:
    """Hello-declared signals plus those the car sent without declaring them."""
    implicit = parse_declared_signals(
        {path: {} for path in sent if isinstance(path, str)} if isinstance(sent, list) else {}
    )
    return {**implicit, **declared}


def signal_car_event(entry_id: str) -> str:
    """Dispatcher signal for the event entity of one config entry."""
    return f"{DOMAIN}_{entry_id}_car_event"


class CarHubCoordinator(DataUpdateCoordinator[VehicleState]):
    """Holds one car's state and turns bridge messages into entity updates."""

    config_entry: CarHubConfigEntry

    def __init__(self, hass: HomeAssistant, entry: CarHubConfigEntry, hub: CarHub) -> None:
        """Initialise from the config entry; the car's declared signals come from its data."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=None,
        )
        assert entry.unique_id is not None
        self.vehicle_id: str = entry.unique_id
        self.hub = hub
        self.device_id: str | None = None
        self.data = VehicleState(
            declared=_effective_signals(
                parse_declared_signals(entry.data.get(CONF_SIGNALS)),
                entry.data.get(CONF_SENT_SIGNALS),
            )
        )
        self.data.last_seen = hub.last_seen(self.vehicle_id)
        self._signal_listeners: list[Callable[[], None]] = []
        self._flush_unsub: CALLBACK_TYPE | None = None
        # Car clock minus ours, from its latest hello (seconds).
        self._clock_offset = 0.0
        self._signals_capped = False
        self._rtt_unsub: CALLBACK_TYPE | None = None
        self._in_home: bool | None = None
        self.trips = TripTracker(hass, self.data)
        self.home = HomeWatch(hass)
        self.history = HistoryImporter(hass, self)

    async def _async_update_data(self) -> VehicleState:
        """Nothing to fetch: the car pushes. A refresh just re-publishes the state."""
        self.data.rtt_ms = self.hub.round_trip_ms(self.vehicle_id)
        return self.data

    @callback
    def async_start(self) -> None:
        """Start the local timer that refreshes the link round-trip time."""
        self._rtt_unsub = async_track_time_interval(
            self.hass,
            self._async_refresh_rtt,
            RTT_REFRESH_INTERVAL,
            name=f"{DOMAIN} rtt {self.vehicle_id}",
            cancel_on_shutdown=True,
        )

    async def async_shutdown(self) -> None:
        """Cancel timers (called when the entry unloads)."""
        await super().async_shutdown()
        if self._rtt_unsub is not None:
            self._rtt_unsub()
            self._rtt_unsub = None
        self._cancel_flush()
        self.history.shutdown()

    @callback
    def async_add_signals_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call ``listener`` whenever the car declares a different set of signals."""
        self._signal_listeners.append(listener)

        @callback
        def _remove() -> None:
            self._signal_listeners.remove(listener)

        return _remove

    # -- bridge callbacks (dispatched by the hub) ------------------------------------
    async def async_on_connect(self, hello: Envelope) -> None:
        """The car connected and said hello: take its vehicle info and signal list."""
        body = hello.body
        offset = hello.ts - time.time()
        self._clock_offset = offset if abs(offset) <= MAX_CLOCK_OFFSET_S else 0.0
        declared = parse_declared_signals(body.get("signals"))
        vehicle = body.get("vehicle")
        info = vehicle if isinstance(vehicle, Mapping) else {}
        self._update_entry(declared, info, body.get("agent_version"))
        route = body.get("route")
        self.data.route = route if route in CONNECTION_ROUTES else None
        self.data.connected = True
        self._touch()
        LOGGER.info("%s connected", self.config_entry.title)
        self._publish()
        await self.hub.async_send_vocabulary(self.vehicle_id)

    async def async_on_link_resumed(self) -> None:
        """The entry loaded while the car's link was already up: refresh everything."""
        self.data.connected = True
        self._publish()
        try:
            await self.hub.async_send(
                self.vehicle_id,
                MessageType.COMMAND,
                {
                    "command": "snapshot",
                    "args": {},
                    "expires_at": time.time() + COMMAND_TTL.total_seconds(),
                },
            )
        except BridgeError as err:
            LOGGER.warning("Cannot ask %s for a snapshot: %s", self.config_entry.title, err)

    async def async_on_disconnect(self) -> None:
        """The car's link closed: entities keep their values, ``connected`` turns off."""
        if not self.data.connected:
            return
        # The backlog (if any) ends with the link: publish what it brought.
        self.data.connected = False
        self._touch()
        LOGGER.info("%s disconnected", self.config_entry.title)
        self._publish()

    async def async_on_message(self, env: Envelope) -> None:
        """One durable message from the car, in order and exactly once."""
        self._touch(force=False)
        age = time.time() - (env.ts - self._clock_offset)
        backlog = age > BACKLOG_AGE.total_seconds()
        if env.type in (MessageType.STATE, MessageType.SNAPSHOT):
            self._apply_signals(env.body.get("signals"))
            self._schedule_publish(backlog=backlog and env.type == MessageType.STATE)
        elif env.type == MessageType.EVENT:
            self._handle_event(env)
        elif env.type == MessageType.VOICE_REQUEST:
            self._handle_voice_request(env)
        elif env.type == MessageType.COMMAND_RESULT:
            LOGGER.debug("%s command result: %s", self.config_entry.title, env.body)
        else:
            LOGGER.debug("%s: ignoring message type %s", self.config_entry.title, env.type)

    # -- helpers ---------------------------------------------------------------
    def _touch(self, *, force: bool = True) -> None:
        """Record contact; while messages stream in, at most once a minute.

        Connect and disconnect always record it; a timestamp that changed with
        every message would only flood the recorder.
        """
        now = dt_util.utcnow()
        last = self.data.last_seen
        if force or last is None or now - last >= LAST_SEEN_RESOLUTION:
            self.data.last_seen = now
            self.hub.set_last_seen(self.vehicle_id, now)

    def _update_entry(
        self,
        declared: dict[str, dict[str, Any]],
        info: Mapping[str, Any],
        agent_version: Any,
    ) -> None:
        entry = self.config_entry
        data = dict(entry.data)
        if declared:
            data[CONF_SIGNALS] = declared
        for key in (CONF_VIN, CONF_MAKE, CONF_MODEL, CONF_PROFILE):
            value = info.get(key)
            if isinstance(value, str) and value:
                data[key] = value
        if isinstance(agent_version, str) and agent_version:
            data[CONF_AGENT_VERSION] = agent_version
        if declared:
            declared = _effective_signals(declared, data.get(CONF_SENT_SIGNALS))
        signals_changed = declared and declared != self.data.declared
        if data != dict(entry.data):
            self.hass.config_entries.async_update_entry(entry, data=data)
            if self.device_id is not None:
                dr.async_get(self.hass).async_update_device(
                    self.device_id,
                    manufacturer=data.get(CONF_MAKE),
                    model=data.get(CONF_MODEL),
                    serial_number=data.get(CONF_VIN),
                    sw_version=data.get(CONF_AGENT_VERSION),
                )
        if signals_changed:
            for path, meta in declared.items():
                before = self.data.declared.get(path)
                if before is not None and before.get("unit") != meta.get("unit"):
                    # Held in the old unit; the snapshot after this hello brings
                    # the value in the new one.
                    self.data.signals.pop(path, None)
            self.data.declared = declared
            for listener in list(self._signal_listeners):
                listener()

    def _apply_signals(self, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            LOGGER.debug("%s: state without a signals map", self.config_entry.title)
            return
        location_changed = False
        undeclared: list[str] = []
        for path, item in raw.items():
            if not isinstance(path, str) or not isinstance(item, Mapping):
                continue
            if path not in self.data.declared:
                undeclared.append(path)
            ts = as_float(item.get("ts"))
            if ts is None or "value" not in item:
                continue
            current = self.data.signals.get(path)
            if current is not None and current.ts > ts:
                # Older than what we show: a replayed delta must not win.
                continue
            if current is None and len(self.data.signals) >= MAX_SIGNALS:
                if not self._signals_capped:
                    self._signals_capped = True
                    LOGGER.warning(
                        "%s sends more than %d signals; ignoring new ones",
                        self.config_entry.title,
                        MAX_SIGNALS,
                    )
                continue
            self.data.signals[path] = SignalValue(value=item["value"], ts=ts)
            if path in (LATITUDE, LONGITUDE):
                location_changed = True
        if undeclared:
            self._declare_sent_signals(undeclared)
        if location_changed:
            self._check_arrived_home()

    def _declare_sent_signals(self, paths: list[str]) -> None:
        """Signals the car sends without having declared them count as declared.

        Their unit is the contract's default for the path. This keeps an agent
        that adds a source (say GPS) outside its profile from losing entities.
        """
        room = MAX_SIGNALS - len(self.data.declared)
        added = parse_declared_signals({path: {} for path in paths[: max(0, room)]})
        if not added:
            return
        self.data.declared = {**self.data.declared, **added}
        data = self.config_entry.data
        sent = sorted({*data.get(CONF_SENT_SIGNALS, []), *added})
        self.hass.config_entries.async_update_entry(
            self.config_entry, data={**data, CONF_SENT_SIGNALS: sent}
        )
        LOGGER.debug("%s sent undeclared signals %s", self.config_entry.title, sorted(added))
        for listener in list(self._signal_listeners):
            listener()

    def _check_arrived_home(self) -> None:
        lat = as_float(self.data.value(LATITUDE))
        lon = as_float(self.data.value(LONGITUDE))
        if lat is None or lon is None:
            return
        accuracy = round(as_float(self.data.value(LOCATION_ACCURACY)) or 0)
        zone = async_active_zone(self.hass, lat, lon, accuracy)
        in_home = zone is not None and zone.entity_id == HOME_ZONE
        ts = max(self.data.signals[LATITUDE].ts, self.data.signals[LONGITUDE].ts)
        place = {"zone": HOME_ZONE, "latitude": lat, "longitude": lon}
        if in_home != self._in_home and self._in_home is not None:
            self._fire_vehicle_event(EVENT_ARRIVED_HOME if in_home else EVENT_LEFT_HOME, ts, place)
            self.home.reset()
        self._in_home = in_home
        self._watch_approach(Position(ts=ts, latitude=lat, longitude=lon))

    def _watch_approach(self, pos: Position) -> None:
        """Distance, ETA and approaching_home (home_approach.py)."""
        speed = as_float(self.data.value(SPEED))
        if speed is None:
            speed = as_float(self.data.value(GNSS_SPEED))
        pos = Position(
            ts=pos.ts,
            latitude=pos.latitude,
            longitude=pos.longitude,
            heading=as_float(self.data.value(HEADING)),
            speed_kmh=speed,
        )
        options = self.config_entry.options
        fired = self.home.update(
            pos,
            approach_minutes=float(options.get(CONF_APPROACH_MINUTES, DEFAULT_APPROACH_MINUTES)),
            eta_max_km=float(options.get(CONF_ETA_MAX_KM, DEFAULT_ETA_MAX_KM)),
        )
        if fired is not None:
            self._fire_vehicle_event(EVENT_APPROACHING_HOME, pos.ts, fired)

    def _handle_event(self, env: Envelope) -> None:
        body = env.body
        kind = body.get("kind")
        ts = as_float(body.get("ts")) or env.ts
        data = body.get("data")
        event_data = dict(data) if isinstance(data, Mapping) else {}
        if not isinstance(kind, str):
            LOGGER.debug("%s: event without a kind", self.config_entry.title)
            return
        if kind == "history":  # a dead zone's history: into statistics, not the bus
            self.history.handle(event_data)
            return
        if kind == EVENT_TRIP_END:
            trip = self.trips.trip_end(event_data)
            if trip is None:
                LOGGER.debug("%s: trip sent again, ignored", self.config_entry.title)
                return
            event_data = trip
            self._publish()
        if kind == EVENT_CHARGING_END:
            self.data.last_charge = event_data
            self._publish()
        if kind in VEHICLE_EVENT_TYPES:
            self._fire_vehicle_event(kind, ts, event_data)
        if kind in ENTITY_EVENT_KINDS:
            async_dispatcher_send(
                self.hass,
                signal_car_event(self.config_entry.entry_id),
                kind,
                {**event_data, "ts": ts},
            )

    def _fire_vehicle_event(self, kind: str, ts: float, data: dict[str, Any]) -> None:
        self.hass.bus.async_fire(
            EVENT_VEHICLE,
            {
                "device_id": self.device_id,
                "vehicle_id": self.vehicle_id,
                "type": kind,
                "ts": ts,
                "time": dt_util.utc_from_timestamp(ts).isoformat(),
                "data": data,
            },
        )

    def _handle_voice_request(self, env: Envelope) -> None:
        from .voice import async_answer_voice_request

        body = env.body
        request_id = body.get("request_id")
        text = body.get("text")
        language = body.get("language")
        if not isinstance(request_id, str) or not isinstance(text, str):
            LOGGER.warning("%s: malformed voice request ignored", self.config_entry.title)
            return
        async_dispatcher_send(
            self.hass,
            signal_car_event(self.config_entry.entry_id),
            "voice_request",
            {"request_id": request_id, "text": text, "ts": env.ts},
        )
        # Answered in the background: a slow agent must not hold up the car's
        # state stream. Unloading the entry cancels it.
        self.config_entry.async_create_background_task(
            self.hass,
            async_answer_voice_request(
                self.hass,
                self,
                request_id=request_id,
                text=text,
                language=language if isinstance(language, str) and language else None,
                sent_at=env.ts,
            ),
            name=f"{DOMAIN} voice {self.vehicle_id} {request_id}",
        )

    def _schedule_publish(self, *, backlog: bool) -> None:
        if not backlog:
            # Live data (it also ends a backlog): entities show it now.
            self._publish()
            return
        # Replayed data: wait for the backlog to end. No deadline: however long
        # the replay, its intermediate values are not recorded as live states.
        if self._flush_unsub is not None:
            self._flush_unsub()
        self._flush_unsub = async_call_later(self.hass, BACKLOG_QUIET_S, self._async_flush)

    @callback
    def _async_flush(self, _now: datetime) -> None:
        self._flush_unsub = None
        self._publish()

    def _cancel_flush(self) -> None:
        if self._flush_unsub is not None:
            self._flush_unsub()
            self._flush_unsub = None

    def _publish(self) -> None:
        self._cancel_flush()
        self.data.rtt_ms = self.hub.round_trip_ms(self.vehicle_id)
        self.async_set_updated_data(self.data)

    @callback
    def _async_refresh_rtt(self, _now: datetime) -> None:
        rtt = self.hub.round_trip_ms(self.vehicle_id)
        if rtt != self.data.rtt_ms:
            self.data.rtt_ms = rtt
            self.async_set_updated_data(self.data)
