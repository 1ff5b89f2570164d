"""Handshake cost with 10 and with 1,000 issued certificates on record.

Run: ``.venv/bin/python benchmarks/ca_records.py [--connects 150] [--rounds 3]``.
Writes ``benchmarks/results/ca_records.json`` and prints a summary.

Setup: two home CAs in one process, one with 10 car certificates on record
and one with 1,000 (250 cars paired and renewed up to three times, plus the
measured car), each with its own hub (``HubServer``) on 127.0.0.1. One
measured connect is what every car does: a mutual TLS 1.3 handshake (CRL
checked by OpenSSL), then an HTTP request that the hub answers after its own
revocation check
(``HomeCA.is_revoked``); a request without a WebSocket upgrade is answered
400 right after that check, so nothing else is timed. The two hubs are
measured in alternating batches so that load from other processes falls on
both alike; the ratio of the medians is the figure that matters (1.0 means
the record's size costs nothing per connection).

Also measured: ``is_revoked`` alone, and the same check re-reading the whole
record every time (what every connection did before the cache), for scale.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bridge.issued import IssuedStore
from bridge.pki import CarIdentity, HomeCA
from bridge.protocol import Envelope
from bridge.server import HubServer, PeerInfo
from tests.bridge.pki_testing import issue_many

RESULTS = Path(__file__).resolve().parent / "results" / "ca_records.json"
SIZES = (10, 1000)


class NullHandler:
    """The hub never gets this far: the requests carry no WebSocket upgrade."""

    async def on_connect(self, peer: PeerInfo, hello: Envelope) -> None:
        return None

    async def on_message(self, peer: PeerInfo, env: Envelope) -> None:
        return None

    async def on_disconnect(self, peer: PeerInfo) -> None:
        return None


def make_ca(directory: Path, records: int) -> tuple[HomeCA, CarIdentity]:
    """A CA with ``records`` car certificates on record; the last one is the measured car's."""
    ca = HomeCA.create(directory / "ca")
    issue_many(ca, records - 1, per_vehicle=4)
    car = CarIdentity.create(directory / "car")
    pem = ca.sign_car_csr(car.csr_pem("car-measured"), vehicle_id="car-measured")
    car.store_certificate(pem, ca.ca_cert_pem)
    assert len(ca.issued_certificates()) == records
    return ca, car


async def connect_once(port: int, ctx: ssl.SSLContext) -> float:
    """Seconds for one mutual TLS handshake plus the hub's answer after its revocation check."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"
    )
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    elapsed = time.perf_counter() - start
    if not head.startswith(b"HTTP/1.1 400"):
        raise RuntimeError(f"unexpected answer {head!r}: the car was not accepted")
    return elapsed


def time_calls(fn: Any, n: int) -> float:
    """Median microseconds of ``fn()`` over ``n`` calls."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return round(statistics.median(samples) * 1e6, 2)


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1] * 1000, 3),
    }


async def main_async(connects: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        setups = {n: make_ca(Path(tmp) / f"r{n}", n) for n in SIZES}
        hubs: dict[int, HubServer] = {}
        ctxs = {n: car.client_ssl_context() for n, (_, car) in setups.items()}
        try:
            for n, (ca, _) in setups.items():
                hub = HubServer(
                    ca=ca,
                    state_dir=Path(tmp) / f"hub{n}",
                    handler=NullHandler(),
                    host="127.0.0.1",
                    port=0,
                )
                await hub.start()
                hubs[n] = hub
            for n in SIZES:  # warm up both (first reads, TLS session machinery)
                for _ in range(5):
                    await connect_once(hubs[n].port, ctxs[n])
            samples: dict[int, list[float]] = {n: [] for n in SIZES}
            batch = max(1, connects // (rounds * 5))
            for _ in range(rounds * 5):
                for n in SIZES:
                    for _ in range(batch):
                        samples[n].append(await connect_once(hubs[n].port, ctxs[n]))
        finally:
            for hub in hubs.values():
                await hub.stop()
        serials = {n: car.certificate().serial_number for n, (_, car) in setups.items()}  # type: ignore[union-attr]
        check = {
            n: time_calls(lambda n=n: setups[n][0].is_revoked(serials[n]), 2000) for n in SIZES
        }
        reread = {
            n: time_calls(
                lambda n=n: IssuedStore(setups[n][0].issued_path).snapshot().is_revoked(serials[n]),
                50,
            )
            for n in SIZES
        }
        sizes = {n: setups[n][0].issued_path.stat().st_size for n in SIZES}
    handshake = {str(n): {"connects": len(samples[n]), **_ms(samples[n])} for n in SIZES}
    ratio = statistics.median(samples[1000]) / statistics.median(samples[10])
    return {
        "benchmark": "ca_records",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "setup": "two hubs in one process, mTLS (TLS 1.3) on 127.0.0.1, measured alternately",
        "issued_json_bytes": {str(n): sizes[n] for n in SIZES},
        "handshake": handshake,
        "handshake_ratio_1000_vs_10": round(ratio, 3),
        "is_revoked_us": {str(n): check[n] for n in SIZES},
        "full_reread_us": {str(n): reread[n] for n in SIZES},
        "how": (
            "handshake: TLS 1.3 with client certificate and CRL check, then GET / answered "
            "400 after the hub's revocation check; is_revoked_us: the cached check alone; "
            "full_reread_us: reading and parsing the whole record per check (before the cache)"
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=150, help="connects per record size")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = asyncio.run(main_async(args.connects, args.rounds))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    hs = results["handshake"]
    print(
        f"handshake median: {hs['10']['median_ms']} ms at 10 records, "
        f"{hs['1000']['median_ms']} ms at 1,000 "
        f"(ratio {results['handshake_ratio_1000_vs_10']}); "
        f"is_revoked {results['is_revoked_us']['10']} / {results['is_revoked_us']['1000']} us; "
        f"full re-read {results['full_reread_us']['10']} / {results['full_reread_us']['1000']} us"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
