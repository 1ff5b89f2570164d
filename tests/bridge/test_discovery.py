"""PairingAdvertiser with real zeroconf restricted to the loopback interface."""

from __future__ import annotations

import asyncio
import secrets

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from bridge.discovery import SERVICE_TYPE, PairingAdvertiser
from bridge.pairing import VehicleInfo

LOOPBACK = ["127.0.0.1"]


def _vehicle() -> VehicleInfo:
    # A unique id per test run: other processes on this machine may browse too.
    return VehicleInfo(
        vehicle_id=f"car-{secrets.token_hex(4)}",
        vin="WVWZZZ1JZXW000001",
        make="VW",
        model="Golf",
        agent_version="0.1.0",
    )


class _Watcher:
    """Collects service names added / removed, as a browser reports them."""

    def __init__(self) -> None:
        self.added: set[str] = set()
        self.removed: set[str] = set()
        self.changed = asyncio.Event()

    def handler(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if state_change is ServiceStateChange.Added:
            self.added.add(name)
        elif state_change is ServiceStateChange.Removed:
            self.removed.add(name)
        self.changed.set()

    async def wait_for(self, bucket: set[str], name: str, limit_s: float = 10.0) -> bool:
        async with asyncio.timeout(limit_s):
            while name not in bucket:
                self.changed.clear()
                await self.changed.wait()
        return True


async def test_advertises_txt_records_on_loopback_and_withdraws() -> None:
    vehicle = _vehicle()
    advertiser = PairingAdvertiser(vehicle=vehicle, port=18767, interfaces=LOOPBACK)
    browser_zc = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    watcher = _Watcher()
    browser = AsyncServiceBrowser(browser_zc.zeroconf, SERVICE_TYPE, handlers=[watcher.handler])
    try:
        await advertiser.start()
        name = advertiser.service_name
        assert name is not None and name.endswith(SERVICE_TYPE)
        assert vehicle.vehicle_id in name
        await watcher.wait_for(watcher.added, name)

        info = AsyncServiceInfo(SERVICE_TYPE, name)
        assert await info.async_request(browser_zc.zeroconf, 3000)
        assert info.port == 18767
        assert info.parsed_addresses() == ["127.0.0.1"]
        assert info.decoded_properties == {
            "vehicle_id": vehicle.vehicle_id,
            "model": "Golf",
            "make": "VW",
            "agent_version": "0.1.0",
            "pairing_port": "18767",
        }

        await advertiser.stop()
        await watcher.wait_for(watcher.removed, name)
        assert advertiser.service_name is None
    finally:
        await advertiser.stop()
        await browser.async_cancel()
        await browser_zc.async_close()


async def test_shared_zeroconf_is_not_closed() -> None:
    shared = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    try:
        advertiser = PairingAdvertiser(vehicle=_vehicle(), port=18768, zeroconf=shared)
        await advertiser.start()
        name = advertiser.service_name
        assert name is not None
        assert shared.zeroconf.registry.async_get_info_name(name.lower()) is not None
        await advertiser.stop()
        assert shared.zeroconf.registry.async_get_info_name(name.lower()) is None
        assert not shared.zeroconf.done  # still usable by its owner
        # the owner can keep using it, e.g. to advertise again
        again = PairingAdvertiser(vehicle=_vehicle(), port=18769, zeroconf=shared)
        await again.start()
        await again.stop()
        assert not shared.zeroconf.done
    finally:
        await shared.async_close()


async def test_own_zeroconf_is_closed_on_stop() -> None:
    advertiser = PairingAdvertiser(vehicle=_vehicle(), port=18770, interfaces=LOOPBACK)
    await advertiser.start()
    zc = advertiser._zeroconf
    assert zc is not None and not zc.zeroconf.done
    await advertiser.stop()
    assert zc.zeroconf.done
    await advertiser.stop()  # idempotent
