"""`carhub-bridge pair`: the home side of pairing, given the car's host, port and code.

Prints the paired vehicle as one JSON object on stdout. Exit codes: 0 paired,
2 wrong code (the car's window stays open: run again), 3 the car's pairing
window is closed, 1 anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from bridge.errors import CertificateError, PairingClosedError, PairingCodeError, PairingError
from bridge.pairing import DEFAULT_PAIRING_PORT, HubInfo, pair_with_car
from bridge.pki import HomeCA
from bridge.server import WS_PATH

DEFAULT_CA_DIR = Path("certs")
DEFAULT_HUB_PORT = 8766


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``pair`` sub-command."""
    parser = subparsers.add_parser(
        "pair",
        help="pair a car that shows a pairing code",
        description=(
            "Connect to a car in pairing mode, prove the code with SPAKE2, send it the "
            "home CA and hub URLs, and sign its certificate request. Without --hub-url, "
            f"the URLs are wss://ADDRESS:{DEFAULT_HUB_PORT}{WS_PATH} for every non-loopback "
            "address in the server certificate."
        ),
    )
    parser.add_argument("--host", required=True, help="the car's address")
    parser.add_argument("--port", type=int, default=DEFAULT_PAIRING_PORT, help="pairing port")
    parser.add_argument("--code", required=True, help="the code the car shows")
    parser.add_argument("--ca-dir", type=Path, default=DEFAULT_CA_DIR, help="CA directory")
    parser.add_argument(
        "--hub-url", action="append", default=[], help="LAN URL of the hub (repeat)"
    )
    parser.add_argument("--external-url", default=None, help="URL of the hub from outside")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.set_defaults(func=run)


def _san_hosts(cert: x509.Certificate | None) -> list[str]:
    if cert is None:
        return []
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [
        *san.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
    ]


def _default_urls(hosts: list[str]) -> list[str]:
    urls = []
    for host in hosts:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if host != "localhost" and not host.startswith("*"):
                urls.append(f"wss://{host}:{DEFAULT_HUB_PORT}{WS_PATH}")
            continue
        if not address.is_loopback and not address.is_link_local:
            shown = f"[{address}]" if address.version == 6 else str(address)
            urls.append(f"wss://{shown}:{DEFAULT_HUB_PORT}{WS_PATH}")
    return urls


def run(args: argparse.Namespace) -> int:
    """Pair with the car; print the vehicle as JSON."""
    try:
        ca = HomeCA.load(args.ca_dir)
        sans = _san_hosts(ca.server_certificate())
    except CertificateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    urls: list[str] = args.hub_url or _default_urls(sans)
    if not urls and not args.external_url:
        print("error: no hub URL: give --hub-url (or add addresses to the CA)", file=sys.stderr)
        return 1
    for url in [*urls, *([args.external_url] if args.external_url else [])]:
        host = urlsplit(url).hostname
        if host is not None and host not in sans:
            print(
                f"warning: {host} is not in the hub's server certificate; the car will "
                f"refuse it (reissue with `carhub-bridge ca init --hostname/--ip`)",
                file=sys.stderr,
            )
    hub = HubInfo(hub_id=ca.hub_id, lan_urls=urls, external_url=args.external_url)
    try:
        result = asyncio.run(
            pair_with_car(
                host=args.host,
                port=args.port,
                code=args.code,
                ca=ca,
                hub=hub,
                timeout=args.timeout,
            )
        )
    except PairingCodeError as err:
        print(f"error: wrong code: {err}", file=sys.stderr)
        return 2
    except PairingClosedError as err:
        print(f"error: pairing window closed: {err}", file=sys.stderr)
        return 3
    except PairingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    cert = x509.load_pem_x509_certificate(result.certificate_pem)
    vehicle = result.vehicle
    print(
        json.dumps(
            {
                "vehicle_id": vehicle.vehicle_id,
                "vin": vehicle.vin,
                "make": vehicle.make,
                "model": vehicle.model,
                "agent_version": vehicle.agent_version,
                "serial": format(cert.serial_number, "x"),
                "expires": cert.not_valid_after_utc.isoformat(),
                "hub_id": hub.hub_id,
            }
        )
    )
    return 0
