"""ObdClient against the simulated ECU on a python-can virtual bus (ISO-TP both ways)."""

import asyncio

import can
import pytest

from tests.agent.obd_testing import obd_link, wait_until
from vehicle_agent.obd.dtc import DtcKind
from vehicle_agent.obd.errors import (
    ObdNegativeResponseError,
    ObdNotSupportedError,
    ObdResponseError,
    ObdTimeoutError,
    ObdTransportError,
)
from vehicle_agent.obd.simulator import DEFAULT_VIN

VALUES = {
    0x04: 42.0,
    0x05: 91,
    0x0C: 2150.25,
    0x0D: 87,
    0x0F: 27,
    0x2F: 55.3,
    0x42: 13.912,
    0x46: -5,
    0xA6: 123456.7,
}


async def test_supported_pids_follow_the_bitmaps():
    async with obd_link(pids=VALUES) as link:
        supported = await link.client.supported_pids()
        assert {0x04, 0x05, 0x0C, 0x0D, 0x0F, 0x2F, 0x42, 0x46, 0xA6, 0x01} <= supported
        assert 0x10 not in supported and 0x11 not in supported
        # Blocks up to 0xA0 are walked because 0xA6 exists; 0xC0 is never asked.
        asked = [r for r in link.ecu.requests if r[0] == 0x01]
        assert asked == [bytes([1, b]) for b in (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0)]


async def test_walk_stops_when_next_block_is_absent():
    async with obd_link(pids={0x0D: 10, 0x05: 80}) as link:
        supported = await link.client.supported_pids()
        assert supported == {0x00, 0x01, 0x05, 0x0D}
        assert link.ecu.requests == [b"\x01\x00"]


EXPECTED = {
    0x04: 41.96,  # 107/255
    0x05: 91,
    0x0C: 2150.25,
    0x0D: 87,
    0x0F: 27,
    0x2F: 55.29,  # 141/255
    0x42: 13.912,
    0x46: -5,
    0xA6: 123456.7,
}


async def test_each_pid_decoded():
    async with obd_link(pids=VALUES) as link:
        for pid, expected in EXPECTED.items():
            reading = await link.client.read_pid(pid)
            assert reading.pid == pid
            assert reading.value == pytest.approx(expected, abs=1e-6), hex(pid)
            assert reading.raw == link.ecu.values[pid]
        assert link.client.stats.responses == len(EXPECTED)


async def test_mil_status_from_dtcs():
    async with obd_link(pids=VALUES, stored_dtcs=["P0301", "P0420"]) as link:
        reading = await link.client.read_pid(0x01)
        assert reading.fields["mil_on"] is True
        assert reading.fields["dtc_count"] == 2


@pytest.mark.parametrize("functional", [True, False])
async def test_multi_frame_vin(functional):
    async with obd_link(functional=functional) as link:
        assert await link.client.read_vin() == DEFAULT_VIN
        if not functional:
            assert link.client.stats.requests == 1
        # 49 02 01 + 17 characters = 20 bytes: a first frame and 2 consecutive frames.
        assert link.client.stats.transport_errors == 0


async def test_multi_frame_dtc_lists_with_descriptions():
    stored = ["P0301", "P0302", "P0420", "P0171", "U0100", "C0123", "B1234", "P1456"]
    async with obd_link(stored_dtcs=stored, pending_dtcs=["P0442"], permanent_dtcs=[]) as link:
        dtcs = await link.client.read_dtcs(DtcKind.STORED)
        assert [d.code for d in dtcs] == stored
        assert dtcs[0].description == "Cylinder 1 Misfire Detected"
        assert "Manufacturer-specific" in dtcs[-1].description
        assert {d.kind for d in dtcs} == {DtcKind.STORED}
        pending = await link.client.read_dtcs(DtcKind.PENDING)
        assert [(d.code, d.kind) for d in pending] == [("P0442", DtcKind.PENDING)]
        assert await link.client.read_dtcs(DtcKind.PERMANENT) == []
        assert [r[0] for r in link.ecu.requests] == [0x03, 0x07, 0x0A]


async def test_clear_dtcs_is_explicit_and_keeps_permanent():
    async with obd_link(
        stored_dtcs=["P0420"], pending_dtcs=["P0171"], permanent_dtcs=["P0420"]
    ) as link:
        assert len(await link.client.read_all_dtcs()) == 3
        assert link.ecu.clear_count == 0  # reading never clears
        await link.client.clear_dtcs()
        assert link.ecu.clear_count == 1
        remaining = await link.client.read_all_dtcs()
        assert [(d.code, d.kind) for d in remaining] == [("P0420", DtcKind.PERMANENT)]
        assert (await link.client.read_pid(0x01)).fields["mil_on"] is False


async def test_unsupported_pid_and_service_are_negative_responses():
    async with obd_link(pids=VALUES) as link:
        with pytest.raises(ObdNotSupportedError) as err:
            await link.client.read_pid(0x10)
        assert err.value.nrc == 0x31 and err.value.service == 0x01
        assert "requestOutOfRange" in str(err.value)
        with pytest.raises(ObdNotSupportedError) as err:
            await link.client.request(b"\x22\xf1\x90")
        assert err.value.nrc == 0x11 and err.value.nrc_name == "serviceNotSupported"
        assert link.client.stats.negative_responses == 2
        # The link still works afterwards.
        assert (await link.client.read_pid(0x0D)).value == 87


async def test_other_negative_response_is_not_unsupported():
    async with obd_link(junk={b"\x01\x0d": b"\x7f\x01\x22"}) as link:
        with pytest.raises(ObdNegativeResponseError) as err:
            await link.client.read_pid(0x0D)
        assert not isinstance(err.value, ObdNotSupportedError)
        assert err.value.nrc_name == "conditionsNotCorrect"


async def test_response_pending_extends_the_wait():
    async with obd_link(pending_responses=2) as link:
        assert await link.client.read_vin() == DEFAULT_VIN
        assert link.client.stats.negative_responses == 0


async def test_timeout_when_ecu_is_silent_or_asleep():
    async with obd_link(pids=VALUES, silent_pids=[0x0D], timeout_s=0.2) as link:
        with pytest.raises(ObdTimeoutError, match="no answer"):
            await link.client.read_pid(0x0D)
        link.ecu.powered = False
        with pytest.raises(ObdTimeoutError):
            await link.client.read_pid(0x05)
        assert link.client.stats.timeouts == 2
        link.ecu.powered = True
        assert (await link.client.read_pid(0x05)).value == 91


async def test_junk_answers_are_counted_not_fatal():
    junk = {
        b"\x01\x0d": b"\x41\x0c\x1a\xf8",  # answers another PID
        b"\x01\x0c": b"\x41\x0c\x1a",  # truncated RPM
        b"\x01\x05": b"\x55",  # not even a response byte
        b"\x09\x02": b"\x49\x02\x01ABC",  # a VIN that is no VIN
        b"\x03": b"\x43\x05\x01\x33",  # announces 5 codes, carries 1
    }
    async with obd_link(pids=VALUES, junk=junk, timeout_s=0.2) as link:
        with pytest.raises(ObdTimeoutError):
            await link.client.read_pid(0x0D)
        with pytest.raises(ObdResponseError):
            await link.client.read_pid(0x0C)
        with pytest.raises(ObdTimeoutError):
            await link.client.read_pid(0x05)
        with pytest.raises(ObdResponseError, match="17 characters"):
            await link.client.read_vin()
        with pytest.raises(ObdResponseError, match="announces 5"):
            await link.client.read_dtcs()
        assert link.client.stats.junk_responses == 5
        assert (await link.client.read_pid(0x0F)).value == 27


async def test_broken_isotp_frames_are_counted_and_link_recovers():
    async with obd_link(pids=VALUES) as link:
        # A consecutive frame out of nowhere, a flow control to us, an empty frame.
        for data in (b"\x21\x01\x02\x03", b"\x30\x00\x00", b"", b"\xf0\x00"):
            link.ecu_bus.send(can.Message(arbitration_id=0x7E8, data=data, is_extended_id=False))
        await wait_until(lambda: link.client.stats.transport_errors >= 2, what="ISO-TP errors")
        assert (await link.client.read_pid(0x0D)).value == 87


async def test_stale_answer_is_dropped():
    async with obd_link(pids=VALUES) as link:
        # An unsolicited single frame arrives between requests.
        link.ecu_bus.send(
            can.Message(arbitration_id=0x7E8, data=b"\x03\x41\x0d\x11", is_extended_id=False)
        )
        await asyncio.sleep(0.1)
        assert (await link.client.read_pid(0x0D)).value == 87
        assert link.client.stats.junk_responses == 1


async def test_closed_client_refuses():
    async with obd_link() as link:
        await link.client.close()
        with pytest.raises(ObdTransportError, match="not started"):
            await link.client.read_pid(0x0D)
        with pytest.raises(ValueError, match="1 to 7 bytes"):
            await link.client.request(b"")
