"""GpsdClient against a scripted fake gpsd on 127.0.0.1: garbage, no-fix, reconnect."""

import asyncio
import contextlib
import json

import pytest

from vehicle_agent.gps.gpsd import WATCH_COMMAND, GpsdClient, TpvError, parse_tpv


def tpv(**fields):
    return json.dumps({"class": "TPV", "device": "/dev/fake", **fields}).encode() + b"\n"


FIRST = [
    b'{"class":"VERSION","release":"3.22","proto_major":3,"proto_minor":14}\n',
    b"this is not json\n",
    b"[1, 2, 3]\n",
    b'{"no_class": true}\n',
    b"\xff\xfe\x00 binary junk\n",
    b"{" * 5000 + b"\n",  # deeply nested / unterminated
    b"x" * 3000 + b"\n",  # longer than the client's line limit
    b"\n",
    tpv(mode=1),  # no fix yet
    tpv(mode=3, lat="north", lon=5.0),  # claims a fix, carries junk
    tpv(mode=2, lat=91.0, lon=5.0),
    tpv(
        mode=3,
        time="2024-05-18T10:00:00.000Z",
        lat=52.0,
        lon=5.0,
        speed=25.0,
        track=90.0,
        eph=3.5,
        altMSL=12.0,
    ),
    b'{"class":"SKY","satellites":[]}\n',
    tpv(mode=2, time="garbage-time", lat=52.001, lon=5.001, epx=3.0, epy=4.0),
]
SECOND = [tpv(mode=3, time="2024-05-18T10:00:02Z", lat=52.002, lon=5.002)]


class FakeGpsd:
    """Serves scripted sessions; each connection gets the next script, then is closed."""

    def __init__(self, scripts):
        self.scripts = list(scripts)
        self.commands = []
        self.server = None

    async def handle(self, reader, writer):
        self.commands.append(await asyncio.wait_for(reader.readline(), 5))
        script = self.scripts.pop(0) if self.scripts else []
        for line in script:
            writer.write(line)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


async def take(client, n, within=10):
    out = []

    async def run():
        async with contextlib.aclosing(client.fixes()) as fixes:
            async for fix in fixes:
                out.append(fix)
                if len(out) >= n:
                    return

    try:
        await asyncio.wait_for(run(), within)
    finally:
        client.stop()
    return out


async def test_garbage_is_counted_and_client_reconnects():
    async with FakeGpsd([FIRST, SECOND]) as gpsd:
        client = GpsdClient("127.0.0.1", gpsd.port, reconnect_delay_s=0.05, max_line_bytes=2048)
        fixes = await take(client, 3)
    assert gpsd.commands == [WATCH_COMMAND, WATCH_COMMAND]
    first, second, third = fixes
    assert (first.lat, first.lon, first.mode) == (52.0, 5.0, 3)
    assert first.speed_kmh == pytest.approx(90.0)
    assert first.track_deg == 90.0 and first.eph_m == 3.5 and first.alt_m == 12.0
    assert second.eph_m == pytest.approx(5.0)  # hypot(epx, epy)
    assert second.alt_m is None and second.speed_kmh is None
    assert third.lat == 52.002
    stats = client.stats
    assert stats.connects == 2 and stats.disconnects == 1
    assert stats.fixes == 3 and stats.no_fix == 1
    # not json, list, no class, binary, nested, too long, 2 bad TPVs
    assert stats.garbage == 8


async def test_unreachable_gpsd_retries_with_backoff():
    async with FakeGpsd([]) as gpsd:
        port = gpsd.port
    client = GpsdClient("127.0.0.1", port, reconnect_delay_s=0.02, max_reconnect_delay_s=0.05)
    task = asyncio.create_task(take(client, 1, within=0.5))
    with pytest.raises(TimeoutError):
        await task
    assert client.stats.connect_failures >= 3
    assert client.stats.connects == 0


def test_parse_tpv_edge_cases():
    assert parse_tpv({"class": "TPV"}) is None
    assert parse_tpv({"class": "TPV", "mode": "3"}) is None
    with pytest.raises(TpvError):
        parse_tpv({"class": "TPV", "mode": 2, "lat": float("nan"), "lon": 1.0})
    with pytest.raises(TpvError):
        parse_tpv({"class": "TPV", "mode": 2, "lat": True, "lon": 1.0})
    fix = parse_tpv(
        {"mode": 2, "lat": 1.0, "lon": 2.0, "speed": "fast", "track": 725.0, "alt": 100.0}, now=42.0
    )
    assert fix.time == 42.0 and fix.speed_kmh is None and fix.track_deg == 5.0
    assert fix.alt_m is None  # 2D fix: no altitude
