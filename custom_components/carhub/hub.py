"""The shared hub: one home CA and one mTLS listener for every paired car.

The hub is created with the first config entry and stopped with the last. It
implements the bridge's ``HubHandler`` and dispatches each callback to the
coordinator of the car it concerns (by the vehicle id in the car's client
certificate). All certificate file I/O runs in the executor.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from homeassistant.components import network
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from bridge.addresses import HomeAddresses
from bridge.deadletter import DeadLetter
from bridge.errors import BridgeError, DeferMessage
from bridge.pairing import HubInfo
from bridge.pki import HomeCA
from bridge.protocol import Envelope, MessageType
from bridge.renewal import RenewalEvent
from bridge.server import HubServer, PeerInfo

from .addresses import AddressSync, async_remote_urls
from .const import DEFAULT_LISTEN_HOST, DEFAULT_LISTEN_HOST_V6, DOMAIN, LOGGER
from .coordinator import CarHubCoordinator
from .handled import HandledRecord
from .health import async_certificate_renewed
from .vocabulary import VocabularySync

DATA_HUB: HassKey[CarHub] = HassKey(f"{DOMAIN}_hub")
DATA_CA: HassKey[HomeCA] = HassKey(f"{DOMAIN}_ca")
DATA_LOCK: HassKey[asyncio.Lock] = HassKey(f"{DOMAIN}_lock")
LAST_SEEN_STORE_VERSION = 1
LAST_SEEN_SAVE_DELAY = 30
# How long messages of a car whose entry is about to load (a reload takes about
# a second, a start a little more) are held for it, once per time the entry is
# not loaded; after that they are deferred at once (see the HubHandler part).
NOT_LOADED_GRACE_S = 10.0
# Retry hints sent with a deferral (close 4005): soon while the entry may load
# any moment (not loaded, setting up, retrying its setup), rarely while it needs
# the user (disabled, failed); CarLink caps the hint at its maximum backoff.
NOT_LOADED_RETRY_S = 10.0
NEEDS_USER_RETRY_S = 60.0
NOT_LOADED_REASON = "home not ready for this car; try again later"
_MAY_LOAD_SOON = (
    ConfigEntryState.NOT_LOADED,
    ConfigEntryState.SETUP_IN_PROGRESS,
    ConfigEntryState.SETUP_RETRY,
)
# Host names a certificate can carry (letters, digits, hyphens; dot-separated).
_HOSTNAME_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(\.(?!-)[A-Za-z0-9-]{1,63})*\.?")


def storage_dir(hass: HomeAssistant) -> Path:
    """Where the home CA and the hub's outboxes live (inside HA's .storage)."""
    return Path(hass.config.path(".storage", DOMAIN))


def hub_url(host: str, port: int) -> str:
    """The URL a car dials to reach the hub at ``host:port``."""
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"wss://{host}:{port}"


def _lock(hass: HomeAssistant) -> asyncio.Lock:
    if (lock := hass.data.get(DATA_LOCK)) is None:
        lock = hass.data[DATA_LOCK] = asyncio.Lock()
    return lock


async def async_get_home_ca(hass: HomeAssistant) -> HomeCA:
    """Load (or create on first use) the home CA, once per Home Assistant run."""
    async with _lock(hass):
        if (ca := hass.data.get(DATA_CA)) is None:
            ca = await hass.async_add_executor_job(HomeCA.load_or_create, storage_dir(hass))
            hass.data[DATA_CA] = ca
        return ca


async def async_lan_hosts(hass: HomeAssistant, *, ipv6: bool) -> list[str]:
    """The addresses of this Home Assistant that cars on the LAN can dial, IPv4 first.

    IPv6 addresses (global and unique local; never link-local, which needs a
    zone) only with ``ipv6``: when the listener listens on IPv6, else they
    would be advertised (and put in the server certificate) with nothing
    listening.
    """
    hosts: list[str] = []
    try:
        addresses = await network.async_get_enabled_source_ips(hass)
    except Exception:
        LOGGER.debug("no source addresses found", exc_info=True)
        addresses = []
    for address in sorted(addresses, key=lambda a: a.version):
        if (
            (address.version == 6 and not ipv6)
            or address.is_loopback
            or address.is_link_local
            or address.is_unspecified
        ):
            continue
        hosts.append(str(address))
    return list(dict.fromkeys(hosts))


def ipv6_listen_works() -> bool:
    """True if this machine can listen on IPv6 at all (blocking; a free port, let go again)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((DEFAULT_LISTEN_HOST_V6, 0))
    except OSError:
        return False
    return True


def check_port_free(port: int) -> None:
    """Raise ``OSError`` if the listener could not bind ``port`` now (blocking).

    Binds the listener's host the way the listener does (address reuse on, so
    only a socket that really holds the port makes it fail) and lets go again.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((DEFAULT_LISTEN_HOST, port))


async def async_hub_info(
    hass: HomeAssistant, ca: HomeCA, port: int, external_url: str | None
) -> HubInfo:
    """What a car being paired is told about the hub.

    IPv6 addresses are included when the running listener listens on IPv6
    (or, with none running, when this machine can).
    """
    if (hub := hass.data.get(DATA_HUB)) is not None and hub.running:
        ipv6 = hub.ipv6
    else:
        ipv6 = await hass.async_add_executor_job(ipv6_listen_works)
    lan = [hub_url(host, port) for host in await async_lan_hosts(hass, ipv6=ipv6)]
    if not lan and external_url is None:
        lan = [hub_url("127.0.0.1", port)]
    return HubInfo(
        hub_id=ca.hub_id,
        lan_urls=lan,
        external_url=external_url,
        remote_urls=async_remote_urls(hass),
    )


class CarHub:
    """The listener shared by all cars, and the dispatch of its callbacks."""

    def __init__(self, hass: HomeAssistant, ca: HomeCA) -> None:
        """Create an idle hub; ``async_start`` opens the listener."""
        self.hass = hass
        self.ca = ca
        self.port: int | None = None
        self.external_url: str | None = None
        self.ipv6 = False
        """True while the listener listens on IPv6 too (its addresses are advertised)."""
        self._server: HubServer | None = None
        self._coordinators: dict[str, CarHubCoordinator] = {}
        # Set when a car's coordinator registers: held messages go on to it.
        self._registered: dict[str, asyncio.Event] = {}
        # Until when (loop time) messages of a car whose entry is not loaded are
        # held for it; cleared when it registers.
        self._grace_until: dict[str, float] = {}
        self._closing: dict[str, asyncio.Task[None]] = {}
        self._entries: set[str] = set()
        self._stop_unsub: CALLBACK_TYPE | None = None
        self._last_seen_store: Store[dict[str, float]] = Store(
            hass, LAST_SEEN_STORE_VERSION, f"{DOMAIN}.last_seen"
        )
        self._last_seen: dict[str, float] = {}
        self.vocabulary = VocabularySync(hass, self)
        # Voice requests and events acted on, so a redelivery is not acted on again.
        self._handled = HandledRecord(storage_dir(hass) / "hub" / "handled.db")
        self.addresses = AddressSync(hass, self.async_addresses)

    # -- lifecycle -----------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the listener is up."""
        return self._server is not None

    @property
    def server(self) -> HubServer | None:
        """The bridge's listener while it runs (the tunnel view hands cars to it)."""
        return self._server

    async def async_addresses(self) -> HomeAddresses:
        """Every address a car can reach this home at now (what pairing hands over)."""
        port = self.listen_port or self.port or 0
        info = await async_hub_info(self.hass, self.ca, port, self.external_url)
        return HomeAddresses(
            lan_urls=info.lan_urls, external_url=info.external_url, remote_urls=info.remote_urls
        )

    @property
    def listen_port(self) -> int | None:
        """The port the listener actually bound (differs from ``port`` when 0)."""
        return None if self._server is None else self._server.port

    async def async_start(
        self, port: int, external_url: str | None, *, bind_port: int | None = None
    ) -> None:
        """Issue the server certificate for the current addresses and listen.

        Listens on IPv4 and IPv6; if IPv6 cannot be bound (no IPv6 here, or the
        port is taken there), on IPv4 alone, with a certificate and advertised
        addresses without IPv6. ``port`` is the configured port; ``bind_port``
        (default: the same) the one to bind, for going back to a listener that
        had port 0 bound.
        """
        stored = await self._last_seen_store.async_load()
        self._last_seen = dict(stored or {})
        await self.hass.async_add_executor_job(self._handled.open)
        for ipv6 in (True, False):
            hostnames, ips = await self._async_server_names(external_url, ipv6=ipv6)
            await self.hass.async_add_executor_job(
                partial(self.ca.issue_server_certificate, hostnames=hostnames, ips=ips)
            )
            server = HubServer(
                ca=self.ca,
                state_dir=storage_dir(self.hass) / "hub",
                handler=self,
                host=(DEFAULT_LISTEN_HOST, DEFAULT_LISTEN_HOST_V6) if ipv6 else DEFAULT_LISTEN_HOST,
                port=port if bind_port is None else bind_port,
                on_renewal=self._on_renewal,
                on_dead_letter=self._on_dead_letter,
            )
            try:
                await server.start()
            except OSError as err:
                await server.stop()  # a failed start may leave the ledger open
                if not ipv6:
                    self._handled.close()
                    raise
                LOGGER.info("The CarHub listener cannot listen on IPv6 (%s): IPv4 only", err)
                continue
            except BaseException:
                await server.stop()
                self._handled.close()
                raise
            break
        self.ipv6 = ipv6
        self._server = server
        self.port = port
        self.external_url = external_url
        self._stop_unsub = self.hass.bus.async_listen_once(
            EVENT_HOMEASSISTANT_STOP, self._async_on_hass_stop
        )
        self.vocabulary.async_start()
        self.addresses.async_start()
        LOGGER.info("CarHub listener on port %s", server.port)
        # A moved listener (reconfigure) changes the cars' LAN addresses.
        await self.addresses.async_push_all()

    async def async_stop(self) -> None:
        """Close the listener and every car link; flush the last-seen store."""
        self.vocabulary.async_stop()
        self.addresses.async_stop()
        for task in self._closing.values():
            task.cancel()
        self._closing.clear()
        if self._stop_unsub is not None:
            self._stop_unsub()
            self._stop_unsub = None
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
        self._handled.close()
        await self._last_seen_store.async_save(self._last_seen)

    async def _async_on_hass_stop(self, _event: Event) -> None:
        self._stop_unsub = None
        await self.async_stop()

    async def async_restart(self, port: int, external_url: str | None) -> None:
        """Apply new listener settings (reconfigure).

        If the listener cannot start with them (port taken meanwhile), the old
        listener is started again and the error propagates: cars keep their
        home while the entry retries.
        """
        old_port, old_external, old_bound = self.port, self.external_url, self.listen_port
        await self.async_stop()
        try:
            await self.async_start(port, external_url)
        except (BridgeError, OSError) as err:
            if old_port is None:
                raise
            LOGGER.warning(
                "Cannot move the CarHub listener to port %s (%s); staying on port %s",
                port,
                err,
                old_port,
            )
            try:
                await self.async_start(old_port, old_external, bind_port=old_bound)
            except (BridgeError, OSError) as again:
                LOGGER.error("The CarHub listener cannot start again: %s", again)
            raise

    async def _async_server_names(
        self, external_url: str | None, *, ipv6: bool
    ) -> tuple[list[str], list[str]]:
        hostnames = ["localhost"]
        loopback = ["127.0.0.1", "::1"] if ipv6 else ["127.0.0.1"]
        ips = [*loopback, *await async_lan_hosts(self.hass, ipv6=ipv6)]
        host = socket.gethostname()
        if host != "localhost" and _HOSTNAME_RE.fullmatch(host):
            hostnames.append(host)
        if external_url and (ext := urlsplit(external_url).hostname):
            try:
                ipaddress.ip_address(ext)
            except ValueError:
                if _HOSTNAME_RE.fullmatch(ext):
                    hostnames.append(ext)
                else:
                    LOGGER.warning("External URL host %s cannot go in a certificate", ext)
            else:
                ips.append(ext)
        return list(dict.fromkeys(hostnames)), list(dict.fromkeys(ips))

    # -- entries ------------------------------------------------------------------
    @callback
    def async_register(self, coordinator: CarHubCoordinator) -> None:
        """Route this car's callbacks to ``coordinator``."""
        self._coordinators[coordinator.vehicle_id] = coordinator
        self._entries.add(coordinator.config_entry.entry_id)
        self._grace_until.pop(coordinator.vehicle_id, None)
        self._registration(coordinator.vehicle_id).set()

    @callback
    def async_unregister(self, coordinator: CarHubCoordinator) -> None:
        """Stop routing to ``coordinator`` (its entry unloads)."""
        if self._coordinators.get(coordinator.vehicle_id) is coordinator:
            del self._coordinators[coordinator.vehicle_id]
            self._registration(coordinator.vehicle_id).clear()
        self._entries.discard(coordinator.config_entry.entry_id)

    def _registration(self, vehicle_id: str) -> asyncio.Event:
        if (event := self._registered.get(vehicle_id)) is None:
            event = self._registered[vehicle_id] = asyncio.Event()
        return event

    @property
    def has_entries(self) -> bool:
        """True while at least one config entry uses the hub."""
        return bool(self._entries)

    def coordinators(self) -> list[CarHubCoordinator]:
        """The coordinators of every registered car."""
        return list(self._coordinators.values())

    # -- HubHandler ---------------------------------------------------------------
    # A car whose entry exists but is not loaded keeps its link. Its messages are
    # held for up to NOT_LOADED_GRACE_S in case the entry is about to load (a
    # reload, a start), once per time the entry is not loaded; a disabled or
    # failed entry, or one retrying its setup, gets no grace. If the entry does
    # not load, a message is deferred (DeferMessage): the bridge acks neither
    # it nor anything after it and closes the link with 4005 "retry soon", and
    # the car's own durable outbox sends it again after reconnecting, until the
    # entry is back. Two kinds are answered instead: a voice request at once
    # (the driver hears that the home cannot help now; replayed later it would
    # be too old to run), and a snapshot after the grace (the car sends a new
    # one after every reconnect, and the entry asks for one when it loads while
    # the car is connected), so that a voice request queued behind it is reached.

    def _entry_known(self, vehicle_id: str) -> bool:
        return (
            self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, vehicle_id)
            is not None
        )

    def _retry_hint(self, vehicle_id: str) -> float:
        """When a deferred car should come back (seconds), by its entry's state."""
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, vehicle_id)
        if entry is not None and entry.disabled_by is None and entry.state in _MAY_LOAD_SOON:
            return NOT_LOADED_RETRY_S
        return NEEDS_USER_RETRY_S

    async def _async_wait_registered(self, vehicle_id: str) -> CarHubCoordinator | None:
        """The car's coordinator once its entry loads, or None once the grace is over."""
        if (coordinator := self._coordinators.get(vehicle_id)) is not None:
            return coordinator
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, vehicle_id)
        if (
            entry is None
            or entry.disabled_by is not None
            or entry.state not in (ConfigEntryState.NOT_LOADED, ConfigEntryState.SETUP_IN_PROGRESS)
        ):
            return None  # not about to load (disabled, failed, retrying later): no waiting
        now = asyncio.get_running_loop().time()
        remaining = self._grace_until.setdefault(vehicle_id, now + NOT_LOADED_GRACE_S) - now
        if remaining <= 0:
            return None
        try:
            async with asyncio.timeout(remaining):
                await self._registration(vehicle_id).wait()
        except TimeoutError:
            return None
        return self._coordinators.get(vehicle_id)

    @callback
    def _async_close_later(self, vehicle_id: str, reason: str) -> None:
        """Close the car's link in the background (never from inside its own callback)."""
        if (task := self._closing.get(vehicle_id)) is not None and not task.done():
            return

        async def _close() -> None:
            LOGGER.info("Closing the link of %s: %s", vehicle_id, reason)
            await self.async_disconnect(vehicle_id, reason)

        self._closing[vehicle_id] = self.hass.async_create_background_task(
            _close(), f"{DOMAIN} close {vehicle_id}"
        )

    async def on_connect(self, peer: PeerInfo, hello: Envelope) -> None:
        """A car with a valid certificate said hello."""
        coordinator = self._coordinators.get(peer.vehicle_id)
        if coordinator is None:
            if self._entry_known(peer.vehicle_id):
                # Its messages are held or deferred (see above); the link stays.
                LOGGER.debug("Car %s connected while its entry is not loaded", peer.vehicle_id)
                return
            # A certificate from this CA but no entry at all: close the link once
            # it runs (closing from inside on_connect would wait for ourselves).
            LOGGER.warning("Closing the link of unknown car %s", peer.vehicle_id)
            self._async_close_later(peer.vehicle_id, "vehicle is not configured")
            return
        await coordinator.async_on_connect(hello)
        await self.addresses.async_car_connected(peer.vehicle_id)

    async def on_message(self, peer: PeerInfo, env: Envelope) -> None:
        """A durable message from a car (raises ``DeferMessage`` while its entry is not loaded).

        Voice requests and events are acted on at most once across crashes
        (see ``handled``): a redelivered one that was acted on is skipped.
        """
        vehicle_id = peer.vehicle_id
        if self._handled.skip(vehicle_id, env):
            return
        if (coordinator := self._coordinators.get(vehicle_id)) is not None:
            await self._async_act(coordinator, env)
            return
        if not self._entry_known(vehicle_id):
            return  # an unknown car: its link is being closed
        if env.type == MessageType.VOICE_REQUEST:
            self._handled.before_acting(vehicle_id, env)
            await self._async_answer_unavailable(vehicle_id, env)
            return
        if (coordinator := await self._async_wait_registered(vehicle_id)) is not None:
            await self._async_act(coordinator, env)
            return
        if env.type == MessageType.SNAPSHOT:
            LOGGER.debug("Dropping a snapshot of %s: its entry is not loaded", vehicle_id)
            return
        LOGGER.debug("Deferring %s seq %d of %s: entry not loaded", env.type, env.seq, vehicle_id)
        raise DeferMessage(NOT_LOADED_REASON, retry_after=self._retry_hint(vehicle_id))

    async def _async_act(self, coordinator: CarHubCoordinator, env: Envelope) -> None:
        """Hand one message to the car's coordinator, recorded as ``handled`` says.

        No await between an event being fired and its record: the coordinator
        fires an event without yielding to the loop.
        """
        self._handled.before_acting(coordinator.vehicle_id, env)
        await coordinator.async_on_message(env)
        self._handled.after_acting(coordinator.vehicle_id, env)

    @callback
    def _on_dead_letter(self, letter: DeadLetter) -> None:
        """A car message failed every attempt: it is kept on disk; tell the owner (repair)."""
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, letter.peer)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            f"dead_letter_{letter.peer}",
            is_fixable=False,
            is_persistent=True,
            severity=ir.IssueSeverity.WARNING,
            translation_key="dead_letter",
            translation_placeholders={
                "name": entry.title if entry is not None else letter.peer,
                "type": letter.type,
                "seq": str(letter.seq),
                "reason": letter.reason,
                "path": str(storage_dir(self.hass) / "hub" / "dead-letters.db"),
            },
        )

    async def _async_answer_unavailable(self, vehicle_id: str, env: Envelope) -> None:
        """Reply to a voice request the car's (unloaded) entry cannot take."""
        from .voice import async_message

        request_id = env.body.get("request_id")
        if not isinstance(request_id, str):
            return
        language = env.body.get("language")
        lang = language if isinstance(language, str) and language else self.hass.config.language
        text = await async_message(self.hass, lang, "voice_unavailable")
        try:
            await self.async_send(
                vehicle_id,
                MessageType.VOICE_REPLY,
                {"request_id": request_id, "text": text, "success": False},
            )
        except BridgeError as err:
            LOGGER.warning("Could not queue the voice reply for %s: %s", vehicle_id, err)

    @callback
    def _on_renewal(self, event: RenewalEvent) -> None:
        """The listener renewed a car's certificate: update its expiring-certificate repair."""
        if not event.ok or event.not_after is None:
            LOGGER.info("Certificate renewal of %s refused: %s", event.vehicle_id, event.detail)
            return
        entry = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, event.vehicle_id)
        if entry is None:
            return
        LOGGER.info("Certificate of %s renewed, valid until %s", entry.title, event.not_after)
        async_certificate_renewed(self.hass, entry, event.not_after)

    async def on_disconnect(self, peer: PeerInfo) -> None:
        """A car's link closed."""
        if (coordinator := self._coordinators.get(peer.vehicle_id)) is not None:
            await coordinator.async_on_disconnect()

    @property
    def duplicates(self) -> int | None:
        """Resent messages the listener dropped as duplicates (diagnostics)."""
        return None if self._server is None else self._server.duplicates

    # -- link operations ----------------------------------------------------------------
    def connected(self, vehicle_id: str) -> bool:
        """Whether the car has a live link now."""
        return self._server is not None and self._server.connected(vehicle_id)

    def round_trip_ms(self, vehicle_id: str) -> float | None:
        """The link's latest round-trip time, or None without a link."""
        if self._server is None:
            return None
        return self._server.round_trip_ms(vehicle_id)

    async def async_send(self, vehicle_id: str, type_: MessageType, body: dict[str, Any]) -> int:
        """Queue a durable message for the car (delivered when it is connected)."""
        if self._server is None:
            raise BridgeError("the CarHub listener is not running")
        return await self._server.send(vehicle_id, type_, body)

    async def async_disconnect(
        self, vehicle_id: str, reason: str, *, retry_after: float | None = None
    ) -> None:
        """Close a car's link if it has one (4003; with ``retry_after``: 4005, come back soon)."""
        if self._server is not None:
            await self._server.disconnect(vehicle_id, reason, retry_after=retry_after)

    async def async_send_vocabulary(self, vehicle_id: str) -> None:
        """Send the current Assist vocabulary to one car."""
        await self.vocabulary.async_send_to(vehicle_id)

    async def async_revoke(self, vehicle_id_or_serial: str) -> None:
        """Revoke a car (every certificate of a vehicle id, or one by hex serial).

        The bridge's ``HubServer.revoke`` reloads the CRL into the running
        listener and closes the car's live link. Raises ``CertificateError``
        when nothing was issued under that id or serial.
        """
        if self._server is not None:
            await self._server.revoke(vehicle_id_or_serial)
        else:
            await self.hass.async_add_executor_job(self.ca.revoke, vehicle_id_or_serial)
        if self._last_seen.pop(vehicle_id_or_serial, None) is not None:
            self._last_seen_store.async_delay_save(lambda: self._last_seen, LAST_SEEN_SAVE_DELAY)

    # -- last seen (persisted, for the not-seen repair) ----------------------------------
    def last_seen(self, vehicle_id: str) -> datetime | None:
        """When the car was last heard from, across restarts."""
        ts = self._last_seen.get(vehicle_id)
        return None if ts is None else dt_util.utc_from_timestamp(ts)

    def set_last_seen(self, vehicle_id: str, when: datetime) -> None:
        """Record contact with the car; persisted lazily."""
        self._last_seen[vehicle_id] = when.timestamp()
        self._last_seen_store.async_delay_save(lambda: self._last_seen, LAST_SEEN_SAVE_DELAY)


async def async_acquire_hub(hass: HomeAssistant, port: int, external_url: str | None) -> CarHub:
    """Return the running hub, starting it (or applying new settings) as needed."""
    ca = await async_get_home_ca(hass)
    async with _lock(hass):
        hub = hass.data.get(DATA_HUB)
        if hub is None:
            hub = CarHub(hass, ca)
            await hub.async_start(port, external_url)
            hass.data[DATA_HUB] = hub
        elif hub.port != port or hub.external_url != external_url:
            await hub.async_restart(port, external_url)
        return hub


def certificate_serial(certificate_pem: bytes) -> str:
    """The hex serial (``0x...``) of a PEM certificate, as ``HomeCA.revoke`` takes it."""
    return f"0x{x509.load_pem_x509_certificate(certificate_pem).serial_number:x}"


async def async_revoke_certificate(hass: HomeAssistant, certificate_pem: bytes) -> None:
    """Revoke one certificate this home issued (pairing that ended in an abort).

    Only that certificate: the car may have an entry with another, valid one.
    Through the running listener when there is one, so it applies at once.
    """
    serial = certificate_serial(certificate_pem)
    if (hub := hass.data.get(DATA_HUB)) is not None:
        await hub.async_revoke(serial)
        return
    ca = await async_get_home_ca(hass)
    await hass.async_add_executor_job(ca.revoke, serial)


async def async_move_hub(hass: HomeAssistant, port: int, external_url: str | None) -> bool:
    """Apply new settings to the running hub (reconfigure); False if none runs.

    Raises ``OSError`` / ``BridgeError`` when the listener cannot start with
    them; the old listener is then running again.
    """
    async with _lock(hass):
        hub = hass.data.get(DATA_HUB)
        if hub is None or not hub.running:
            return False
        if hub.port != port or hub.external_url != external_url:
            await hub.async_restart(port, external_url)
        return True


async def async_release_hub(hass: HomeAssistant) -> None:
    """Stop the hub when no config entry uses it any more."""
    async with _lock(hass):
        hub = hass.data.get(DATA_HUB)
        if hub is not None and not hub.has_entries:
            del hass.data[DATA_HUB]
            await hub.async_stop()
