"""`carhub-bridge serve`: a standalone hub that prints what paired cars send.

Every durable message a car sends is printed as one JSON line on stdout and
acked after it was printed::

    {"vehicle_id": "car-1a2b", "type": "state", "seq": 42, "ts": 1732200000.1, "body": {...},
     "id": "9f3c...:42", "redelivered": false}

``id`` is the message's stable id (the car's stream id and the seq). Each
message is printed once, also across a crash of ``serve``: the id of every
printed message is recorded in ``--state-dir``/printed.db right after the line
is written (same event-loop step), and a resent message already recorded is
not printed again. Only a SIGKILL between writing a line and that commit can
print it a second time, then with the same ``id`` and ``"redelivered": true``
(deduplicate by ``id`` where that matters). If printing
fails, the message is not acked; after 3 failures it is stored as a dead
letter and reported::

    {"event": "dead_letter", "vehicle_id": "car-1a2b", "id": "...", "seq": 7, "type": "event",
     "body": {...}, "reason": "...", "attempts": 3, "dead_at": 1732200001.2}

``carhub-bridge serve --dead-letters`` prints the stored dead letters (one JSON
line each, with their payload) and exits.

Connection changes are printed as lines with an ``event`` key instead of
``type``::

    {"event": "connected", "vehicle_id": "car-1a2b", "remote": "192.0.2.7", "hello": {...}}
    {"event": "disconnected", "vehicle_id": "car-1a2b"}

Certificates: cars renew their certificate over the link; every renewal
(or refusal) the hub performs is printed, and so is every revocation it
enforces (the car's live link is closed, its next handshake fails)::

    {"event": "renewed", "vehicle_id": "car-1a2b", "serial": "5f...", "not_after": "2026-...", ...}
    {"event": "renewal_refused", "vehicle_id": "car-1a2b", "detail": "...", ...}
    {"event": "revoked", "vehicle_id": "car-1a2b", "serials": ["5f..."], "disconnected": true}
    {"event": "crl_reloaded", "trigger": "SIGHUP"|"stdin"}

Revocations made by ``carhub-bridge revoke`` (another process) are picked up
when ``crl.pem`` changes (checked every ``--crl-check`` seconds) and at once on
SIGHUP (``kill -HUP <pid>``).

Messages to cars: ``--notify VEHICLE_ID MESSAGE`` (repeatable) queues a
notification at start; while running, each stdin line is a command:

    notify VEHICLE_ID MESSAGE...
    command VEHICLE_ID snapshot|clear_dtcs|renew_certificate
    revoke VEHICLE_ID_OR_SERIAL                                 (revoke and disconnect)
    reload-crl                                                  (like SIGHUP)
    {"vehicle_id": "...", "type": "notify", "body": {...}}     (any durable type)

Queued messages are durable (the hub's per-car outbox under --state-dir) and
delivered when the car connects; notify and command get ``expires_at`` from
``--ttl``. Results of stdin commands are printed as ``{"event": "queued", ...}``
or ``{"event": "error", ...}`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import orjson

from bridge.deadletter import DeadLetter, read_dead_letters
from bridge.dedup import DedupRecord
from bridge.errors import BridgeError
from bridge.pki import CAR_CERT_DAYS, MAX_CAR_CERT_DAYS, HomeCA
from bridge.protocol import DURABLE_TYPES, Envelope, MessageType
from bridge.renewal import RenewalEvent, RevocationEvent
from bridge.server import HubServer, PeerInfo, ServerLimits

DEFAULT_CA_DIR = Path("certs")
DEFAULT_STATE_DIR = Path("hub-state")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``serve`` sub-command."""
    parser = subparsers.add_parser(
        "serve",
        help="run a standalone hub: print every car message as a JSON line",
        description=(
            "Accept paired cars over mutual TLS, print each message they send as one "
            "JSON line on stdout (then ack it), and send them notifications. "
            "Stdin commands: 'notify VEHICLE_ID MESSAGE', 'command VEHICLE_ID NAME', "
            'or a JSON object {"vehicle_id", "type", "body"}.'
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--ca-dir", type=Path, default=DEFAULT_CA_DIR, help="home CA directory")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="hub state: ledger of received seqs and per-car outboxes",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")  # noqa: S104
    parser.add_argument("--port", type=int, default=8766, help="port to listen on (0: any)")
    parser.add_argument(
        "--notify",
        nargs=2,
        action="append",
        default=[],
        metavar=("VEHICLE_ID", "MESSAGE"),
        help="queue a notification for a car at start (repeatable)",
    )
    parser.add_argument(
        "--ttl", type=float, default=3600.0, help="seconds before a notify/command expires"
    )
    parser.add_argument("--no-stdin", action="store_true", help="do not read commands from stdin")
    parser.add_argument(
        "--dead-letters",
        action="store_true",
        help="print the stored dead letters (messages given up on) as JSON lines and exit",
    )
    parser.add_argument("--max-msgs-per-s", type=float, default=2000.0, help="per-car rate limit")
    parser.add_argument("--burst", type=int, default=4000, help="per-car burst allowance")
    parser.add_argument(
        "--max-connections", type=int, default=64, help="concurrent car connections"
    )
    parser.add_argument(
        "--renewal-days",
        type=int,
        default=CAR_CERT_DAYS,
        help=f"validity of renewed car certificates (1..{MAX_CAR_CERT_DAYS})",
    )
    parser.add_argument(
        "--no-renewals", action="store_true", help="refuse to handle certificate renewals"
    )
    parser.add_argument(
        "--crl-check",
        type=float,
        default=10.0,
        help="seconds between checks of crl.pem for revocations made by "
        "'carhub-bridge revoke' (0: only on SIGHUP)",
    )
    parser.set_defaults(func=run)


class _Printer:
    """The HubHandler of ``serve``: one JSON line per message or connection change."""

    def __init__(self, out: TextIO, printed: DedupRecord | None = None) -> None:
        self._out = out
        self._printed = printed

    def line(self, obj: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(obj).decode() + "\n")
        self._out.flush()

    async def on_connect(self, peer: PeerInfo, hello: Envelope) -> None:
        self.line(
            {
                "event": "connected",
                "vehicle_id": peer.vehicle_id,
                "remote": peer.remote,
                "hello": hello.body,
            }
        )

    async def on_message(self, peer: PeerInfo, env: Envelope) -> None:
        printed = self._printed
        if printed is not None and printed.seen(peer.vehicle_id, env.stream, env.seq):
            return  # printed by an earlier run that died before recording it in the ledger
        self.line(
            {
                "vehicle_id": peer.vehicle_id,
                "type": str(env.type),
                "seq": env.seq,
                "ts": env.ts,
                "body": env.body,
                "id": env.message_id,
                "redelivered": env.redelivered,
            }
        )
        if printed is not None:
            # No await since the line was written: nothing else runs before this commits.
            printed.record(peer.vehicle_id, env.stream, env.seq)

    async def on_disconnect(self, peer: PeerInfo) -> None:
        self.line({"event": "disconnected", "vehicle_id": peer.vehicle_id})

    def renewal(self, event: RenewalEvent) -> None:
        self.line({"event": "renewed" if event.ok else "renewal_refused", **event.to_json()})

    def revocation(self, event: RevocationEvent) -> None:
        self.line({"event": "revoked", **event.to_json()})

    def dead_letter(self, letter: DeadLetter) -> None:
        self.line({"event": "dead_letter", **letter.to_json()})


def parse_command(line: str, ttl: float) -> tuple[str, MessageType, dict[str, Any]]:
    """Turn one stdin line into (vehicle id, type, body); ``ValueError`` if it is not one."""
    text = line.strip()
    if text.startswith("{"):
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as err:
            raise ValueError(f"not JSON: {err}") from err
        if not isinstance(obj, dict):
            raise ValueError("expected a JSON object")
        vehicle_id, type_, body = obj.get("vehicle_id"), obj.get("type"), obj.get("body")
        if not isinstance(vehicle_id, str) or not isinstance(body, dict):
            raise ValueError('a JSON command needs "vehicle_id" (string) and "body" (object)')
        if type_ not in DURABLE_TYPES:
            raise ValueError(f"type must be one of {sorted(DURABLE_TYPES)}")
        if type_ in (MessageType.NOTIFY, MessageType.COMMAND):
            body.setdefault("expires_at", time.time() + ttl)
        return vehicle_id, MessageType(type_), body
    parts = text.split(maxsplit=2)
    if len(parts) == 3 and parts[0] == "notify":
        body = {"message": parts[2], "priority": "normal", "expires_at": time.time() + ttl}
        return parts[1], MessageType.NOTIFY, body
    if len(parts) == 3 and parts[0] == "command":
        body = {"command": parts[2].strip(), "args": {}, "expires_at": time.time() + ttl}
        return parts[1], MessageType.COMMAND, body
    raise ValueError("expected 'notify VEHICLE_ID MESSAGE', 'command VEHICLE_ID NAME' or JSON")


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Read stdin in a daemon thread (a blocked read must not hold up shutdown)."""

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="serve-stdin", daemon=True).start()


async def _reload_crl(hub: HubServer, printer: _Printer, trigger: str) -> None:
    try:
        await hub.refresh_revocations()
    except (BridgeError, OSError) as err:
        printer.line({"event": "error", "error": f"cannot reload the CRL: {err}"})
        return
    printer.line({"event": "crl_reloaded", "trigger": trigger})


async def _read_stdin(hub: HubServer, printer: _Printer, ttl: float) -> None:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    _stdin_lines(asyncio.get_running_loop(), queue)
    while True:
        line = await queue.get()
        if line is None:
            return  # EOF: keep serving, stop reading
        if not line.strip():
            continue
        words = line.split()
        if words[0] == "reload-crl" and len(words) == 1:
            await _reload_crl(hub, printer, "stdin")
            continue
        if words[0] == "revoke" and len(words) == 2:
            try:
                await hub.revoke(words[1])  # the revocation hook prints what happened
            except BridgeError as err:
                printer.line({"event": "error", "error": str(err), "line": line.rstrip("\n")})
            continue
        try:
            vehicle_id, type_, body = parse_command(line, ttl)
            seq = await hub.send(vehicle_id, type_, body)
        except (ValueError, BridgeError) as err:
            printer.line({"event": "error", "error": str(err), "line": line.rstrip("\n")})
            continue
        printer.line({"event": "queued", "vehicle_id": vehicle_id, "type": type_, "seq": seq})


def _print_dead_letters(state_dir: Path) -> int:
    try:
        letters = read_dead_letters(state_dir / "dead-letters.db")
    except BridgeError as err:
        print(f"carhub-bridge serve: {err}", file=sys.stderr)
        return 1
    for letter in letters:
        sys.stdout.write(orjson.dumps(letter.to_json()).decode() + "\n")
    return 0


async def _serve(args: argparse.Namespace) -> int:
    printed = DedupRecord(args.state_dir / "printed.db")
    try:
        printed.open()
    except BridgeError as err:
        print(f"carhub-bridge serve: {err}", file=sys.stderr)
        return 1
    try:
        return await _serve_with(args, _Printer(sys.stdout, printed))
    finally:
        printed.close()


async def _serve_with(args: argparse.Namespace, printer: _Printer) -> int:
    loop = asyncio.get_running_loop()
    try:
        ca = await loop.run_in_executor(None, HomeCA.load, args.ca_dir)
    except BridgeError as err:
        print(
            f"carhub-bridge serve: {err} (create it with 'carhub-bridge ca init')", file=sys.stderr
        )
        return 2
    limits = ServerLimits(
        max_msgs_per_s=args.max_msgs_per_s, burst=args.burst, max_connections=args.max_connections
    )
    if not 1 <= args.renewal_days <= MAX_CAR_CERT_DAYS:
        print(
            f"carhub-bridge serve: --renewal-days must be 1..{MAX_CAR_CERT_DAYS}", file=sys.stderr
        )
        return 2
    hub = HubServer(
        ca=ca,
        state_dir=args.state_dir,
        handler=printer,
        host=args.host,
        port=args.port,
        limits=limits,
        handle_renewals=not args.no_renewals,
        renewal_days=args.renewal_days,
        on_renewal=printer.renewal,
        on_revocation=printer.revocation,
        on_dead_letter=printer.dead_letter,
        crl_watch_s=args.crl_check if args.crl_check > 0 else None,
    )
    try:
        await hub.start()
    except (BridgeError, OSError) as err:
        print(f"carhub-bridge serve: cannot start: {err}", file=sys.stderr)
        return 1
    printer.line({"event": "listening", "host": args.host, "port": hub.port, "hub_id": hub.hub_id})
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        task = asyncio.create_task(_reload_crl(hub, printer, "SIGHUP"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    for vehicle_id, message in args.notify:
        body = {"message": message, "priority": "normal", "expires_at": time.time() + args.ttl}
        try:
            seq = await hub.send(vehicle_id, MessageType.NOTIFY, body)
        except BridgeError as err:
            printer.line({"event": "error", "error": str(err)})
        else:
            printer.line(
                {"event": "queued", "vehicle_id": vehicle_id, "type": "notify", "seq": seq}
            )
    reader = None if args.no_stdin else asyncio.create_task(_read_stdin(hub, printer, args.ttl))
    try:
        await stop.wait()
    finally:
        if reader is not None:
            reader.cancel()
        for task in list(reloads):
            task.cancel()
        await hub.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the hub until SIGINT/SIGTERM (or, with ``--dead-letters``, list them)."""
    if args.dead_letters:
        return _print_dead_letters(args.state_dir)
    return asyncio.run(_serve(args))
