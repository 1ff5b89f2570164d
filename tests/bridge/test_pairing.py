"""SPAKE2 pairing over real sockets on 127.0.0.1: success, wrong code, limits, replay."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import pytest

from bridge.errors import PairingClosedError, PairingCodeError, PairingError
from bridge.homes import HomeRegistry
from bridge.pairing import (
    HubInfo,
    PairingServer,
    VehicleInfo,
    generate_pairing_code,
    normalize_code,
    pair_with_car,
)
from bridge.pki import CarIdentity, HomeCA, vehicle_id_from_certificate
from tests.bridge.pki_testing import tls_handshake

CODE = "12345678"
WRONG = "87654321"
VEHICLE = VehicleInfo(
    vehicle_id="car-test1", vin="WVWZZZ1JZXW000001", make="VW", model="Golf", agent_version="0.1.0"
)


@pytest.fixture
def ca(tmp_path: Path) -> HomeCA:
    return HomeCA.create(tmp_path / "certs")


@pytest.fixture
def hub(ca: HomeCA) -> HubInfo:
    return HubInfo(
        hub_id=ca.hub_id,
        lan_urls=["wss://127.0.0.1:8766/"],
        external_url="wss://home.example.net:8766/",
    )


@pytest.fixture
def registry(tmp_path: Path) -> HomeRegistry:
    return HomeRegistry(tmp_path / "agent")


def _server(registry: HomeRegistry, **kwargs: object) -> PairingServer:
    options: dict[str, object] = {"code": CODE, "host": "127.0.0.1", "failure_delay_s": 0.0}
    options.update(kwargs)
    return PairingServer(
        vehicle=VEHICLE,
        identity_factory=registry.identity_factory,
        **options,  # type: ignore[arg-type]
    )


async def test_pairing_end_to_end_then_tls13(
    ca: HomeCA, hub: HubInfo, registry: HomeRegistry
) -> None:
    server = _server(registry)
    await server.start()
    try:
        result = await pair_with_car(
            host="127.0.0.1", port=server.port, code="1234-5678", ca=ca, hub=hub, timeout=10
        )
        got_hub = await asyncio.wait_for(server.wait_paired(), 5)
    finally:
        await server.close()
    assert result.vehicle == VEHICLE
    assert got_hub == hub
    record = registry.commit(got_hub)
    assert record.urls == [*hub.lan_urls, hub.external_url]
    identity = CarIdentity.load(record.directory)
    assert identity.cert_path.read_bytes() == result.certificate_pem
    assert identity.ca_path.read_bytes() == ca.ca_cert_pem
    assert [r.vehicle_id for r in ca.issued_certificates()] == ["car-test1"]
    # The fruit of pairing: a real mutual TLS 1.3 handshake.
    handshake = await asyncio.to_thread(
        tls_handshake, ca.server_ssl_context(), identity.client_ssl_context()
    )
    assert handshake.ok, (handshake.server_error, handshake.client_error)
    assert handshake.version == "TLSv1.3"
    assert handshake.peer_cert_der is not None
    assert vehicle_id_from_certificate(handshake.peer_cert_der) == "car-test1"


async def test_wrong_code_then_correct_retry(
    ca: HomeCA, hub: HubInfo, registry: HomeRegistry
) -> None:
    server = _server(registry)
    await server.start()
    try:
        with pytest.raises(PairingCodeError):
            await pair_with_car(host="127.0.0.1", port=server.port, code=WRONG, ca=ca, hub=hub)
        assert server.failed_attempts == 1
        assert server.is_open
        assert not (registry.homes_dir / f".pending-{hub.hub_id}").exists()
        assert ca.issued_certificates() == []
        result = await pair_with_car(host="127.0.0.1", port=server.port, code=CODE, ca=ca, hub=hub)
        assert result.vehicle.vehicle_id == VEHICLE.vehicle_id
        assert await asyncio.wait_for(server.wait_paired(), 5) == hub
        # one-time: the code is spent once pairing succeeded
        with pytest.raises(PairingClosedError):
            await pair_with_car(host="127.0.0.1", port=server.port, code=CODE, ca=ca, hub=hub)
    finally:
        await server.close()


async def test_window_expiry(ca: HomeCA, hub: HubInfo, registry: HomeRegistry) -> None:
    server = _server(registry, window_s=0.2)
    await server.start()
    try:
        with pytest.raises(PairingClosedError, match="expired"):
            await asyncio.wait_for(server.wait_paired(), 5)
        assert not server.is_open
        with pytest.raises(PairingClosedError):
            await pair_with_car(host="127.0.0.1", port=server.port, code=CODE, ca=ca, hub=hub)
    finally:
        await server.close()
    assert ca.issued_certificates() == []


async def test_attempt_limit_closes_window(
    ca: HomeCA, hub: HubInfo, registry: HomeRegistry
) -> None:
    server = _server(registry, max_attempts=3)
    await server.start()
    try:
        for _ in range(3):
            with pytest.raises(PairingCodeError):
                await pair_with_car(host="127.0.0.1", port=server.port, code=WRONG, ca=ca, hub=hub)
        assert server.failed_attempts == 3
        with pytest.raises(PairingClosedError, match="too many"):
            await asyncio.wait_for(server.wait_paired(), 5)
        # even the right code is refused now
        with pytest.raises(PairingClosedError):
            await pair_with_car(host="127.0.0.1", port=server.port, code=CODE, ca=ca, hub=hub)
    finally:
        await server.close()


async def test_wrong_codes_are_delayed_exponentially(
    ca: HomeCA, hub: HubInfo, registry: HomeRegistry
) -> None:
    server = _server(registry, failure_delay_s=0.5, max_failure_delay_s=4.0)
    assert [server.failure_delay(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    server._sleep = record
    await server.start()
    try:
        for _ in range(3):
            with pytest.raises(PairingCodeError):
                await pair_with_car(host="127.0.0.1", port=server.port, code=WRONG, ca=ca, hub=hub)
    finally:
        await server.close()
    assert slept == [0.5, 1.0, 2.0]


class _Recorder:
    """A TCP proxy on 127.0.0.1 that records what the home sends to the car."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.from_home = bytearray()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, rec: bool) -> None:
            for _ in range(10_000):  # bounded
                data = await src.read(65536)
                if not data:
                    break
                if rec:
                    self.from_home.extend(data)
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.wait_for(
            asyncio.gather(pump(reader, up_w, True), pump(up_r, writer, False)), 10
        )


async def _read_frames(reader: asyncio.StreamReader, limit: int) -> list[bytes]:
    frames = []
    for _ in range(limit):
        try:
            header = await asyncio.wait_for(reader.readexactly(4), 5)
        except asyncio.IncompleteReadError:
            break
        frames.append(await reader.readexactly(struct.unpack(">I", header)[0]))
    return frames


async def test_replayed_transcript_fails(
    ca: HomeCA, hub: HubInfo, registry: HomeRegistry, tmp_path: Path
) -> None:
    first = _server(registry)
    await first.start()
    proxy = _Recorder(first.port)
    await proxy.start()
    try:
        await pair_with_car(host="127.0.0.1", port=proxy.port, code=CODE, ca=ca, hub=hub)
    finally:
        await proxy.close()
        await first.close()
    recorded = bytes(proxy.from_home)
    assert len(recorded) > 200  # pake, confirm and the encrypted frames

    # A fresh pairing window with the very same code (the worst case).
    calls: list[HubInfo] = []
    other = HomeRegistry(tmp_path / "victim")

    def factory(info: HubInfo) -> CarIdentity:
        calls.append(info)
        return other.identity_factory(info)

    second = PairingServer(
        vehicle=VEHICLE, identity_factory=factory, code=CODE, host="127.0.0.1", failure_delay_s=0
    )
    await second.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", second.port)
        writer.write(recorded)
        await writer.drain()
        frames = await _read_frames(reader, 10)
        writer.close()
        await writer.wait_closed()
    finally:
        await second.close()
    replies = [json.loads(f) for f in frames]
    assert replies[0]["type"] == "pake"  # fresh SPAKE2 message from the car
    assert replies[-1] == {**replies[-1], "type": "error", "code": "bad_code"}
    assert not any(r.get("type") == "confirm" for r in replies)
    assert calls == []
    assert second.failed_attempts == 1


async def test_garbage_does_not_break_the_server(
    ca: HomeCA, hub: HubInfo, registry: HomeRegistry
) -> None:
    server = _server(registry)
    await server.start()
    bad_inputs = [
        b"GET / HTTP/1.1\r\n\r\n",  # absurd length prefix
        struct.pack(">I", 10_000_000),  # oversized frame
        struct.pack(">I", 5) + b"\xff\xfe\x00\x01\x02",  # not JSON
        struct.pack(">I", 2) + b"[]",  # not an object
        _frame({"type": "pake", "version": 99, "msg": "AAAA"}),  # unknown version
        _frame({"type": "pake", "version": 1, "msg": "!!notbase64"}),
        _frame({"type": "pake", "version": 1, "msg": "QUFB"}),  # wrong SPAKE2 length
        _frame({"type": "hello"}),
    ]
    try:
        for data in bad_inputs:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(data)
            await writer.drain()
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 5)  # the car answers or closes
            writer.close()
            await writer.wait_closed()
        assert server.is_open
        result = await pair_with_car(host="127.0.0.1", port=server.port, code=CODE, ca=ca, hub=hub)
        assert result.vehicle == VEHICLE
    finally:
        await server.close()


def _frame(obj: object) -> bytes:
    payload = json.dumps(obj).encode()
    return struct.pack(">I", len(payload)) + payload


async def test_unreachable_car_is_a_pairing_error(ca: HomeCA, hub: HubInfo) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    with pytest.raises(PairingError):
        await pair_with_car(host="127.0.0.1", port=port, code=CODE, ca=ca, hub=hub, timeout=5)


async def test_silent_car_times_out(ca: HomeCA, hub: HubInfo) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()

    probe = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        with pytest.raises(PairingError, match="timed out"):
            await pair_with_car(
                host="127.0.0.1",
                port=probe.sockets[0].getsockname()[1],
                code=CODE,
                ca=ca,
                hub=hub,
                timeout=0.3,
            )
    finally:
        probe.close()
        await probe.wait_closed()


def test_codes() -> None:
    codes = {generate_pairing_code() for _ in range(50)}
    assert all(len(c) == 8 and c.isdigit() for c in codes)
    assert len(codes) > 45
    assert normalize_code(" 1234-5678 ") == "12345678"
    for bad in ("1234567", "abcdefgh", "1234567x", "١٢٣٤٥٦٧٨"):
        with pytest.raises(PairingCodeError):
            normalize_code(bad)


async def test_bad_hub_urls_are_refused_before_connecting(ca: HomeCA) -> None:
    bad = HubInfo(hub_id=ca.hub_id, lan_urls=["http://127.0.0.1:8766/"], external_url=None)
    with pytest.raises(PairingError, match="wss"):
        await pair_with_car(host="127.0.0.1", port=1, code=CODE, ca=ca, hub=bad)
