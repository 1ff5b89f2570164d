"""The home's addresses from outside, and keeping connected cars' lists current.

Besides the listener's LAN addresses (and the owner's forwarded-port URL), a
car reaches home through Home Assistant's own web server: its configured
external URL and, when the cloud integration is active, Home Assistant
Cloud's remote URL, both at the tunnel path (``bridge.tunnel``). These are
given to the car at pairing (``remote_urls``) and again in an ``addresses``
message whenever they change (external URL edited, remote access switched on,
the listener moved), so a car never needs pairing again to keep reaching home.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from homeassistant.const import EVENT_CORE_CONFIG_UPDATE
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers.network import NoURLAvailableError, get_url

from bridge.addresses import HomeAddresses
from bridge.errors import BridgeError
from bridge.protocol import MessageType
from bridge.tunnel import tunnel_url

from .const import LOGGER


def async_remote_urls(hass: HomeAssistant) -> list[str]:
    """Home Assistant's outside addresses at the tunnel path: external URL, then cloud."""
    bases: list[str] = []
    with contextlib.suppress(NoURLAvailableError):
        bases.append(get_url(hass, allow_internal=False, allow_cloud=False, allow_ip=True))
    if "cloud" in hass.config.components:
        from homeassistant.components import cloud  # only when the owner uses it

        with contextlib.suppress(cloud.CloudNotAvailable):
            bases.append(cloud.async_remote_ui_url(hass))
    urls: list[str] = []
    for base in bases:
        try:
            urls.append(tunnel_url(base))
        except ValueError:
            LOGGER.debug("Not an address a car can use: %s", base)
    return list(dict.fromkeys(urls))


class AddressSync:
    """Sends cars the home's current addresses when they differ from what they were told."""

    def __init__(
        self, hass: HomeAssistant, current: Callable[[], Awaitable[HomeAddresses]]
    ) -> None:
        """``await current()`` gives the addresses to hand out now."""
        self.hass = hass
        self._current = current
        # What each car was last sent (this run): a car is told again after a
        # restart of Home Assistant, once, in case something changed meanwhile.
        self._sent: dict[str, HomeAddresses] = {}
        self._unsubs: list[CALLBACK_TYPE] = []
        self._vehicles: set[str] = set()

    @callback
    def async_start(self) -> None:
        """Follow changes of the core configuration and of Home Assistant Cloud."""
        self._unsubs.append(self.hass.bus.async_listen(EVENT_CORE_CONFIG_UPDATE, self._on_change))
        if "cloud" in self.hass.config.components:
            from homeassistant.components import cloud

            self._unsubs.append(
                cloud.async_listen_connection_change(self.hass, self._on_cloud_change)
            )

    @callback
    def async_stop(self) -> None:
        """Stop following changes."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()

    async def async_car_connected(self, vehicle_id: str) -> None:
        """A car connected: send it the addresses if they are not what it was last sent."""
        self._vehicles.add(vehicle_id)
        await self._async_send(vehicle_id, await self._current())

    async def async_push_all(self) -> None:
        """Addresses may have changed: tell every car seen this run that needs it."""
        addresses = await self._current()
        for vehicle_id in sorted(self._vehicles):
            await self._async_send(vehicle_id, addresses)

    async def _async_send(self, vehicle_id: str, addresses: HomeAddresses) -> None:
        if self._sent.get(vehicle_id) == addresses or not addresses.all_urls():
            return
        try:
            await self._send(vehicle_id, addresses)
        except BridgeError as err:
            LOGGER.warning("Cannot send the new addresses to %s: %s", vehicle_id, err)
            return
        self._sent[vehicle_id] = addresses
        LOGGER.info("Sent %s the home's addresses: %s", vehicle_id, addresses.all_urls())

    async def _send(self, vehicle_id: str, addresses: HomeAddresses) -> None:
        from .hub import DATA_HUB  # the hub imports this module

        hub = self.hass.data.get(DATA_HUB)
        if hub is None:
            raise BridgeError("the CarHub listener is not running")
        await hub.async_send(vehicle_id, MessageType.ADDRESSES, addresses.to_body())

    @callback
    def _on_change(self, _event: Event) -> None:
        self.hass.async_create_task(self.async_push_all(), "carhub addresses")

    @callback
    def _on_cloud_change(self, _state: object) -> None:
        self.hass.async_create_task(self.async_push_all(), "carhub addresses")
