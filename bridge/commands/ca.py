"""`carhub-bridge ca init|show`: create and inspect the home CA (default ``./certs``)."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from bridge.discovery import local_addresses
from bridge.errors import CertificateError
from bridge.pki import CA_CERT_FILE, CA_KEY_FILE, HomeCA

DEFAULT_CA_DIR = Path("certs")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``ca`` sub-command."""
    parser = subparsers.add_parser("ca", help="create or show the home CA")
    sub = parser.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    init = sub.add_parser(
        "init",
        help="create the CA (or reissue the server certificate of an existing one)",
        description=(
            "Create the home CA, its revocation list and the hub's server certificate. "
            "List every host name and IP address cars will dial (--hostname, --ip); "
            "without any, the certificate names localhost, this host name, loopback "
            "and this machine's LAN addresses. On an existing CA, --hostname/--ip "
            "reissue the server certificate."
        ),
    )
    init.add_argument("--dir", type=Path, default=DEFAULT_CA_DIR, help="CA directory")
    init.add_argument("--name", default="CarHub Home CA", help="CA common name")
    init.add_argument("--hostname", action="append", default=[], help="server DNS name (repeat)")
    init.add_argument("--ip", action="append", default=[], help="server IP address (repeat)")
    init.set_defaults(func=run_init)
    show = sub.add_parser("show", help="print the CA, server certificate and issued certificates")
    show.add_argument("--dir", type=Path, default=DEFAULT_CA_DIR, help="CA directory")
    show.set_defaults(func=run_show)


def _default_names() -> tuple[list[str], list[str]]:
    hostnames = ["localhost"]
    host = socket.gethostname()
    if host and host != "localhost":
        hostnames.append(host)
    return hostnames, ["127.0.0.1", "::1", *local_addresses()]


def run_init(args: argparse.Namespace) -> int:
    """Create the CA, or reissue the server certificate of an existing one."""
    directory: Path = args.dir
    hostnames: list[str] = args.hostname
    ips: list[str] = args.ip
    exists = (directory / CA_CERT_FILE).exists() or (directory / CA_KEY_FILE).exists()
    try:
        if exists:
            ca = HomeCA.load(directory)
            print(f"CA already exists in {directory} (hub id {ca.hub_id})")
            if not hostnames and not ips:
                return 0
        else:
            ca = HomeCA.create(directory, name=args.name)
            print(f"created CA in {directory} (hub id {ca.hub_id})")
            if not hostnames and not ips:
                hostnames, ips = _default_names()
        ca.issue_server_certificate(hostnames=hostnames, ips=ips)
    except CertificateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"server certificate for: {', '.join([*hostnames, *ips])}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print what the CA directory holds."""
    try:
        ca = HomeCA.load(args.dir)
        crl = ca.load_crl()
        server = ca.server_certificate()
        issued = ca.issued_certificates()
    except CertificateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    cert = ca.ca_certificate
    print(f"hub id:       {ca.hub_id}")
    print(f"CA:           {cert.subject.rfc4514_string()}")
    print(f"CA sha256:    {cert.fingerprint(hashes.SHA256()).hex()}")
    print(f"CA expires:   {cert.not_valid_after_utc.isoformat()}")
    if server is None:
        print("server cert:  none (run `carhub-bridge ca init --hostname ... --ip ...`)")
    else:
        san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        print(f"server cert:  {', '.join(names)}")
        print(f"  expires:    {server.not_valid_after_utc.isoformat()}")
    next_update = crl.next_update_utc.isoformat() if crl.next_update_utc else "-"
    print(f"CRL:          {len(crl)} revoked, next update {next_update}")
    print(f"issued:       {len(issued)} car certificate(s)")
    for record in issued:
        state = f"revoked {record.revoked_at.isoformat()}" if record.revoked_at else "valid"
        print(
            f"  {record.vehicle_id:<24} serial {record.serial_hex:<40} "
            f"expires {record.not_after.date().isoformat()}  {state}"
        )
    return 0
