"""`vehicle-agent obd`: ask the car's engine ECU standard OBD-II questions."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import can

from vehicle_agent.can_input import CanInputError, ListenOnlyBus, open_bus
from vehicle_agent.obd.client import ObdClient
from vehicle_agent.obd.dtc import DtcKind
from vehicle_agent.obd.elm327 import Elm327Client, ElmOptions, parse_target
from vehicle_agent.obd.errors import ObdError, ObdNotSupportedError, ObdTransportError
from vehicle_agent.obd.pids import PIDS, SUPPORTED_PID_BLOCKS, parse_pid
from vehicle_agent.obd.queries import ObdQueries
from vehicle_agent.obd.simulator import SimulatedEcu

DESCRIPTION = """\
Query the engine ECU over OBD-II (ISO 15765-4 CAN, ISO-TP, 11-bit IDs
0x7DF/0x7E0 -> 0x7E8).

OBD-II queries TRANSMIT on the CAN bus: unlike `vehicle-agent decode`, this
command does not open the bus listen-only. Every query wakes the ECUs, so run
it with the ignition on. `clear-dtcs` erases stored and pending trouble codes,
freeze frames and readiness monitors and turns the check-engine lamp off: it
requires --yes.

Actions:
  pids         list the mode 01 PIDs the ECU supports
  read [PID..] read and decode PIDs (hex like 0D or 0x0D, or names like speed);
               default: every supported PID this tool can decode
  dtcs         read trouble codes (--kind stored|pending|permanent|all)
  clear-dtcs   mode 04, needs --yes
  vin          mode 09 PID 02

With --elm327 the questions go through an ELM327 dongle (or a clone, or
WiCAN): a serial device (USB /dev/ttyUSB0, Bluetooth /dev/rfcomm0) or a Wi-Fi
dongle's HOST:PORT (usually 192.168.0.10:35000); the protocol is detected
automatically and every ECU that answers is heard.

Output is one JSON object per line on stdout; errors go to stderr.
Exit codes: 0 ok, 1 the ECU did not answer or refused, 2 usage, bus or dongle error.

Examples:
  vehicle-agent obd --interface socketcan --channel can0 read speed rpm
  vehicle-agent obd --simulate dtcs --kind all
  vehicle-agent obd --elm327 /dev/ttyUSB0 vin
  vehicle-agent obd --elm327 192.168.0.10:35000 clear-dtcs --yes
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `obd` sub-command."""
    parser = subparsers.add_parser(
        "obd",
        help="query the engine ECU over OBD-II (transmits on the bus)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--interface", default="socketcan", help="python-can interface (default: socketcan)"
    )
    parser.add_argument("--channel", default="can0", help="bus channel (default: can0)")
    parser.add_argument(
        "--bitrate",
        type=int,
        default=None,
        help="bit rate for interfaces that set it (OBD-II is 500000)",
    )
    parser.add_argument(
        "--physical",
        action="store_true",
        help="address the engine ECU at 0x7E0 instead of broadcasting to 0x7DF",
    )
    parser.add_argument(
        "--timeout", type=float, default=1.0, help="seconds to wait for each answer (default: 1)"
    )
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="talk to a built-in simulated ECU on a private virtual bus "
        "(ignores --interface/--channel)",
    )
    parser.add_argument(
        "--elm327",
        metavar="PORT_OR_HOST:PORT",
        help="use an ELM327 dongle (serial device or HOST:PORT) instead of a CAN interface",
    )
    parser.add_argument(
        "--elm327-baud",
        type=int,
        default=38400,
        help="serial speed of --elm327 (default: 38400; ignored for TCP and rfcomm)",
    )
    parser.add_argument("action", choices=["pids", "read", "dtcs", "clear-dtcs", "vin"])
    parser.add_argument("pids", nargs="*", metavar="PID", help="PIDs for `read`")
    parser.add_argument(
        "--kind",
        choices=[*(k.value for k in DtcKind), "all"],
        default="all",
        help="which DTC list `dtcs` reads (default: all)",
    )
    parser.add_argument("--yes", action="store_true", help="confirm `clear-dtcs`")
    parser.set_defaults(func=run)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _fail(message: str) -> None:
    sys.stderr.write(f"vehicle-agent obd: {message}\n")


@contextlib.asynccontextmanager
async def _connect(args: argparse.Namespace) -> AsyncIterator[ObdQueries]:
    """Open the bus (or a simulated ECU, or a dongle), yield a started client, close all."""
    if args.elm327 is not None:
        options = ElmOptions(baudrate=args.elm327_baud, request_timeout_s=max(args.timeout, 5.0))
        async with Elm327Client(args.elm327, options=options) as dongle:
            yield dongle
        return
    buses: list[can.BusABC] = []
    ecu: SimulatedEcu | None = None
    try:
        if args.simulate:
            channel = f"obd-sim-{uuid.uuid4().hex}"
            buses.append(can.Bus(interface="virtual", channel=channel))
            buses.append(can.Bus(interface="virtual", channel=channel))
            ecu = SimulatedEcu(
                buses[1],
                stored_dtcs=["P0301", "P0420"],
                pending_dtcs=["P0171"],
                permanent_dtcs=["P0420"],
            )
            ecu.start()
            bus: can.BusABC = buses[0]
        else:
            opened = open_bus(args.interface, args.channel, listen_only=False, bitrate=args.bitrate)
            bus = opened.bus if isinstance(opened, ListenOnlyBus) else opened
            buses.append(bus)
        async with ObdClient(bus, functional=not args.physical, timeout_s=args.timeout) as client:
            yield client
    finally:
        if ecu is not None:
            ecu.stop()
        for opened in buses:
            opened.shutdown()


async def _pids(client: ObdQueries, args: argparse.Namespace) -> int:
    supported = await client.supported_pids()
    for pid in sorted(supported):
        spec = PIDS.get(pid)
        _emit(
            {
                "pid": f"0x{pid:02X}",
                "name": spec.name if spec else None,
                "description": spec.description if spec else None,
                "decodable": spec is not None,
            }
        )
    return 0


async def _read(client: ObdQueries, args: argparse.Namespace) -> int:
    supported = await client.supported_pids()
    if args.pids:
        try:
            wanted = [parse_pid(p) for p in args.pids]
        except ValueError as err:
            _fail(str(err))
            return 2
    else:
        wanted = [p for p in sorted(supported) if p in PIDS and p not in SUPPORTED_PID_BLOCKS]
    status = 0
    for pid in wanted:
        if pid not in PIDS:
            _fail(f"PID 0x{pid:02X} is not in the PID table")
            status = 2
            continue
        if pid not in supported:
            _fail(f"PID 0x{pid:02X} ({PIDS[pid].name}) is not supported by this ECU; not asked")
            status = max(status, 1)
            continue
        try:
            reading = await client.read_pid(pid)
        except ObdError as err:
            _fail(f"PID 0x{pid:02X}: {err}")
            status = max(status, 1)
            continue
        _emit(
            {
                "pid": f"0x{pid:02X}",
                "name": reading.spec.name,
                "value": reading.value,
                "unit": reading.spec.unit,
                "fields": reading.fields,
                "raw": reading.raw.hex(),
            }
        )
    return status


async def _dtcs(client: ObdQueries, args: argparse.Namespace) -> int:
    kinds = list(DtcKind) if args.kind == "all" else [DtcKind(args.kind)]
    for kind in kinds:
        try:
            dtcs = await client.read_dtcs(kind)
        except ObdNotSupportedError:
            _fail(f"the ECU does not report {kind} DTCs")
            continue
        for dtc in dtcs:
            _emit(dtc.to_dict())
    return 0


async def _clear(client: ObdQueries, args: argparse.Namespace) -> int:
    await client.clear_dtcs()
    _emit({"cleared": True})
    return 0


async def _vin(client: ObdQueries, args: argparse.Namespace) -> int:
    _emit({"vin": await client.read_vin()})
    return 0


_ACTIONS: dict[str, Callable[[ObdQueries, argparse.Namespace], Awaitable[int]]] = {
    "pids": _pids,
    "read": _read,
    "dtcs": _dtcs,
    "clear-dtcs": _clear,
    "vin": _vin,
}


async def _main(args: argparse.Namespace) -> int:
    try:
        async with _connect(args) as client:
            return await _ACTIONS[args.action](client, args)
    except CanInputError as err:
        _fail(str(err))
        return 2
    except ObdTransportError as err:  # the bus or the dongle is not there
        _fail(str(err))
        return 2
    except ObdError as err:
        _fail(str(err))
        return 1


def run(args: argparse.Namespace) -> int:
    """Run `vehicle-agent obd`."""
    if args.action == "clear-dtcs" and not args.yes:
        _fail(
            "clear-dtcs erases trouble codes, freeze frames and readiness monitors; "
            "add --yes to confirm"
        )
        return 2
    if args.elm327 is not None:
        if args.simulate:
            _fail("--simulate and --elm327 exclude each other")
            return 2
        try:
            parse_target(args.elm327)
        except ValueError as err:
            _fail(f"--elm327: {err}")
            return 2
    if args.pids and args.action != "read":
        _fail(f"PID arguments are only for `read`, not `{args.action}`")
        return 2
    return asyncio.run(_main(args))
