"""HubServer listening on several hosts (IPv4 and IPv6 loopback) on one port."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from bridge.pki import HomeCA
from bridge.server import HubServer
from tests.bridge.link_testing import RecordingHandler, make_car, start_hub


async def test_one_port_on_ipv4_and_ipv6(
    tmp_path: Path, home_ca: HomeCA, car_ssl: ssl.SSLContext, car2_ssl: ssl.SSLContext
) -> None:
    handler = RecordingHandler()
    hub = await start_hub(home_ca, tmp_path / "hub", handler)  # one host still works
    await hub.stop()
    hub = HubServer(
        ca=home_ca, state_dir=tmp_path / "hub2", handler=handler, host=["127.0.0.1", "::1"], port=0
    )
    await hub.start()
    assert hub.hosts == ("127.0.0.1", "::1")
    v4 = make_car(tmp_path / "v4", f"wss://127.0.0.1:{hub.port}", car_ssl, vehicle_id="car-1")
    v6 = make_car(tmp_path / "v6", f"wss://[::1]:{hub.port}", car2_ssl, vehicle_id="car-2")
    try:
        await v4.start()
        await v6.start()
        assert await v4.wait_connected(10)
        assert await v6.wait_connected(10)
        remotes = {peer.vehicle_id: peer.remote for peer, _ in handler.connects}
        assert remotes["car-1"] == "127.0.0.1"
        assert remotes["car-2"] == "::1"
    finally:
        await v4.stop()
        await v6.stop()
        await hub.stop()


async def test_a_host_that_cannot_bind_fails_the_start_and_frees_the_others(
    tmp_path: Path, home_ca: HomeCA
) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as holder:
        holder.bind(("::1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        hub = HubServer(
            ca=home_ca,
            state_dir=tmp_path / "hub",
            handler=RecordingHandler(),
            host=("127.0.0.1", "::1"),
            port=port,
        )
        with pytest.raises(OSError):
            await hub.start()
    # The IPv4 site that did start was closed again.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", port))


def test_no_host_is_an_error(tmp_path: Path, home_ca: HomeCA) -> None:
    with pytest.raises(ValueError, match="at least one host"):
        HubServer(ca=home_ca, state_dir=tmp_path, handler=RecordingHandler(), host=[])
