"""Zeroconf advertisement of a car waiting to be paired.

While in pairing mode the car announces ``_carhub._tcp.local.`` on the LAN so
Home Assistant (whose manifest declares the type) offers it in its
discovered list. TXT records: ``vehicle_id``, ``model``, ``make``,
``agent_version``, ``pairing_port``. Nothing secret is announced: the code is
only shown on the car's screen.

``PairingAdvertiser`` accepts an existing ``AsyncZeroconf`` (Home
Assistant's, or one shared with a browser) and closes only an instance it
created itself.
"""

from __future__ import annotations

import ipaddress
import logging
import re

import ifaddr
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from bridge.pairing import VehicleInfo

__all__ = ["SERVICE_TYPE", "TXT_KEYS", "PairingAdvertiser", "local_addresses"]

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_carhub._tcp.local."
TXT_KEYS = ("vehicle_id", "model", "make", "agent_version", "pairing_port")
_MAX_TXT_VALUE = 200  # a TXT string holds 255 bytes including "key="
_MAX_LABEL = 63


def local_addresses(*, include_loopback: bool = False) -> list[str]:
    """The machine's IP addresses (IPv4 first), for the advertisement's A/AAAA records."""
    v4: list[str] = []
    v6: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(
                    ip.ip
                )
            else:
                address = ipaddress.IPv6Address(ip.ip[0].split("%")[0])
            if address.is_link_local and address.version == 6:
                continue  # needs a scope id the advertisement cannot carry
            if address.is_loopback and not include_loopback:
                continue
            (v4 if address.version == 4 else v6).append(str(address))
    return sorted(set(v4)) + sorted(set(v6))


def _ip_literals(values: list[str]) -> list[str]:
    result = []
    for value in values:
        try:
            result.append(str(ipaddress.ip_address(value)))
        except ValueError:
            continue  # an interface index, not an address
    return result


def _label(vehicle: VehicleInfo) -> str:
    # The instance name is what a user sees in Home Assistant's discovered list.
    text = " ".join(p for p in (vehicle.make, vehicle.model) if p) or "Car"
    text = re.sub(r"[^\w .-]", "", text).strip() or "Car"
    return f"CarHub {text} {vehicle.vehicle_id}"[:_MAX_LABEL]


class PairingAdvertiser:
    """Announce a car in pairing mode via zeroconf; ``stop()`` withdraws it."""

    def __init__(
        self,
        *,
        vehicle: VehicleInfo,
        port: int,
        zeroconf: AsyncZeroconf | None = None,
        interfaces: list[str] | None = None,
        addresses: list[str] | None = None,
    ) -> None:
        """Prepare the advertisement; nothing is sent before ``start()``.

        ``interfaces`` (IP addresses) restricts a zeroconf instance created
        here to those interfaces. ``addresses`` are the addresses announced
        for the car; by default the IP literals of ``interfaces``, or else
        every non-loopback address of this machine.
        """
        self.vehicle = vehicle
        self.port = port
        self._zeroconf = zeroconf
        self._owns_zeroconf = zeroconf is None
        self._interfaces = interfaces
        self._addresses = addresses
        self._info: ServiceInfo | None = None

    @property
    def service_name(self) -> str | None:
        """The registered instance name (zeroconf may add a suffix on conflict)."""
        return self._info.name if self._info is not None else None

    def _build_info(self) -> ServiceInfo:
        addresses = self._addresses
        if addresses is None and self._interfaces is not None:
            addresses = _ip_literals(self._interfaces)
        if not addresses:
            addresses = local_addresses() or local_addresses(include_loopback=True)
        properties = {
            "vehicle_id": self.vehicle.vehicle_id,
            "model": self.vehicle.model,
            "make": self.vehicle.make,
            "agent_version": self.vehicle.agent_version,
            "pairing_port": str(self.port),
        }
        host = re.sub(r"[^A-Za-z0-9-]", "-", f"carhub-{self.vehicle.vehicle_id}")[:_MAX_LABEL]
        return ServiceInfo(
            SERVICE_TYPE,
            f"{_label(self.vehicle)}.{SERVICE_TYPE}",
            port=self.port,
            properties={k: v[:_MAX_TXT_VALUE] for k, v in properties.items()},
            server=f"{host}.local.",
            parsed_addresses=addresses,
        )

    async def start(self) -> None:
        """Register the service (announcements go out in the background)."""
        if self._info is not None:
            return
        if self._zeroconf is None:
            ip_version = None
            if self._interfaces is not None:
                literals = _ip_literals(self._interfaces)
                if literals and all(ipaddress.ip_address(a).version == 4 for a in literals):
                    ip_version = IPVersion.V4Only
            self._zeroconf = (
                AsyncZeroconf(interfaces=self._interfaces, ip_version=ip_version)
                if self._interfaces
                else AsyncZeroconf()
            )
        info = self._build_info()
        await self._zeroconf.async_register_service(info, allow_name_change=True)
        self._info = info
        _LOGGER.info("advertising %s on port %d", info.name, self.port)

    async def stop(self) -> None:
        """Unregister the service; close the zeroconf instance only if we created it."""
        zc = self._zeroconf
        info, self._info = self._info, None
        if zc is None:
            return
        if info is not None:
            # Await the goodbye packets so browsers drop the car at once.
            done = await zc.async_unregister_service(info)
            await done
        if self._owns_zeroconf:
            await zc.async_close()
            self._zeroconf = None
