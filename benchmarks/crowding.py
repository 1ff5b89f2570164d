"""Latency of a well-behaved car while other peers crowd the hub.

Run: ``.venv/bin/python benchmarks/crowding.py [--messages 200]``. Writes
``benchmarks/results/crowding.json`` and prints it.

Setup: a real home CA, a hub (``HubServer``, default limits except a small
``max_connections`` of 8 so crowding is possible at all) and car-2 (``CarLink``)
in one process, over mutual TLS on 127.0.0.1. car-2 sends events one at a
time and we measure send-to-ack latency, in four phases: nobody else; car-1
(valid certificate) holding 20 WebSocket connections that never say hello;
20 peers that open TCP and send nothing; 20 peers that send half a
ClientHello and stall. Each attacking phase starts its attackers first, then
measures. The issue's promise is that car-2 keeps flowing within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.client import CarLink
from bridge.pki import CarIdentity, HomeCA
from bridge.protocol import Envelope, MessageType
from bridge.server import HubServer, PeerInfo, ServerLimits

RESULTS = Path(__file__).resolve().parent / "results" / "crowding.json"
LIMITS = ServerLimits(max_connections=8)
ATTACKERS = 20


class _Quiet:
    async def on_connect(self, peer: PeerInfo, hello: Envelope) -> None:
        return None

    async def on_message(self, peer: PeerInfo, env: Envelope) -> None:
        return None

    async def on_disconnect(self, peer: PeerInfo) -> None:
        return None


def _pair(ca: HomeCA, directory: Path, vehicle_id: str) -> ssl.SSLContext:
    identity = CarIdentity.create(directory)
    cert = ca.sign_car_csr(identity.csr_pem(vehicle_id), vehicle_id=vehicle_id)
    identity.store_certificate(cert, ca.ca_cert_pem)
    return identity.client_ssl_context()


def _client_hello() -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def _latencies(car: CarLink, n: int) -> list[float]:
    out: list[float] = []
    for i in range(n):
        start = time.perf_counter()
        seq = await car.send(MessageType.EVENT, {"kind": "alert", "ts": 1.0, "data": {"i": i}})
        while car.outbox.acked_seq < seq:
            if time.perf_counter() - start > 30:
                raise RuntimeError("no ack within 30 s")
            await asyncio.sleep(0.001)
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def main_async(messages: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ca = HomeCA.create(root / "ca")
        car1_ssl = _pair(ca, root / "car1", "car-1")
        car2_ssl = _pair(ca, root / "car2", "car-2")
        hub = HubServer(
            ca=ca, state_dir=root / "hub", handler=_Quiet(), host="127.0.0.1", port=0, limits=LIMITS
        )
        await hub.start()
        car = CarLink(
            home_dir=root / "car2-home",
            hello_body={"agent_version": "bench", "vehicle": {"vehicle_id": "car-2"}},
            on_message=lambda env: asyncio.sleep(0),
            snapshot=dict,
            url=f"wss://127.0.0.1:{hub.port}",
            ssl_context=car2_ssl,
            backoff_min_s=0.05,
            backoff_max_s=0.5,
        )
        results: dict[str, Any] = {}
        writers: list[asyncio.StreamWriter] = []
        try:
            await car.start()
            assert await car.wait_connected(10)
            results["alone"] = _summary(await _latencies(car, messages))
            async with aiohttp.ClientSession() as session:
                sockets = []
                for _ in range(ATTACKERS):
                    with contextlib.suppress(aiohttp.ClientError):
                        sockets.append(
                            await session.ws_connect(
                                f"wss://127.0.0.1:{hub.port}/carhub", ssl=car1_ssl
                            )
                        )
                results["car1_half_open_links"] = _summary(await _latencies(car, messages))
                for ws in sockets:
                    await ws.close()
            for _ in range(ATTACKERS):
                _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
                writers.append(writer)
            results["silent_tcp"] = _summary(await _latencies(car, messages))
            hello = _client_hello()
            for _ in range(ATTACKERS):
                _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
                writer.write(hello[: len(hello) // 2])
                writers.append(writer)
            results["half_client_hello"] = _summary(await _latencies(car, messages))
            results["car2_reconnects"] = car.connects - 1
        finally:
            for writer in writers:
                writer.close()
            await car.stop()
            await hub.stop()
        return results


def main() -> int:
    """Run the phases and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200, help="events per phase")
    args = parser.parse_args()
    results = asyncio.run(main_async(args.messages))
    doc = {
        "benchmark": "crowding",
        "command": f"benchmarks/crowding.py --messages {args.messages}",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "attackers_per_phase": ATTACKERS,
        "limits": {"max_connections": LIMITS.max_connections, "max_pending_per_car": 2},
        "results": results,
    }
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
