"""GpsdClient against a real gpsd, fed an NMEA log by gpsfake (Debian gpsd-clients)."""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from datetime import UTC, datetime

import pytest

from vehicle_agent.gps.gpsd import GpsdClient
from vehicle_agent.gps.nmea import checksum

EPOCHS = 40


def nmea_log():
    """A northbound drive at 22.4 knots: RMC + GGA per second."""
    lines = []
    for i in range(EPOCHS):
        tod = f"1200{i:02d}.00"
        lat = f"{4807.038 + i * 0.01:09.4f}"
        for body in (
            f"GPRMC,{tod},A,{lat},N,01131.000,E,022.4,084.4,180524,003.1,W",
            f"GPGGA,{tod},{lat},N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
        ):
            lines.append(f"${body}*{checksum(body):02X}")
    return "\r\n".join(lines) + "\r\n"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def stop_group(proc):
    """Stop gpsfake and the gpsd it started (its own process group)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            # gpsfake sometimes ignores SIGTERM while its gpsd shuts down.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 5)


async def test_fixes_from_real_gpsd(tmp_path):
    gpsfake = shutil.which("gpsfake")
    if gpsfake is None:
        pytest.fail(
            "gpsfake is not installed: the GPS tests need Debian's gpsd and gpsd-clients "
            "packages (scripts/bootstrap.sh installs them; or: apt-get install gpsd gpsd-clients)"
        )
    log = tmp_path / "drive.nmea"
    log.write_text(nmea_log())
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *[gpsfake, "-P", str(port), "-1", "-q", "-c", "0.05", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = GpsdClient("127.0.0.1", port, reconnect_delay_s=0.2, max_reconnect_delay_s=0.5)
    fixes = []

    async def collect():
        async with contextlib.aclosing(client.fixes()) as stream:
            async for fix in stream:
                fixes.append(fix)
                if sum(f.speed_kmh is not None for f in fixes) >= 5:
                    return

    try:
        await asyncio.wait_for(collect(), 30)
    except TimeoutError:
        pytest.fail(
            f"no fixes from gpsd within 30 s ({client.stats}); gpsfake exit code {proc.returncode}"
        )
    finally:
        client.stop()
        await stop_group(proc)
    start = datetime(2024, 5, 18, 12, 0, 0, tzinfo=UTC).timestamp()
    track_lats = [48 + (7.038 + i * 0.01) / 60 for i in range(EPOCHS)]
    for fix in fixes:
        # Every position is one of the log's, whatever report gpsd built it from.
        assert min(abs(fix.lat - lat) for lat in track_lats) < 1e-6
        assert fix.lon == pytest.approx(11 + 31.0 / 60, abs=1e-6)
        assert fix.mode in (2, 3)
    # gpsd may report a GGA-only cycle (no time, speed or course); the RMC-based
    # reports carry the log's time, speed and course.
    complete = [f for f in fixes if f.speed_kmh is not None]
    assert len(complete) >= 3, fixes
    for fix in complete:
        assert start <= fix.time < start + EPOCHS
        assert fix.lat == pytest.approx(track_lats[round(fix.time - start)], abs=1e-6)
        assert fix.speed_kmh == pytest.approx(22.4 * 1.852, abs=0.05)
        assert fix.track_deg == pytest.approx(84.4, abs=0.01)
    assert client.stats.garbage == 0
    assert client.stats.connects >= 1
