"""`carhub-bridge revoke VEHICLE_ID_OR_SERIAL`: revoke a car's certificate(s).

A vehicle id revokes every certificate of that car; a hex serial (as
``carhub-bridge ca show`` prints it) revokes one. The CRL is rewritten at
once; a running hub applies it to new handshakes when it reloads the CRL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge.errors import CertificateError
from bridge.pki import HomeCA

DEFAULT_CA_DIR = Path("certs")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``revoke`` sub-command."""
    parser = subparsers.add_parser("revoke", help="revoke a car's certificate")
    parser.add_argument("target", metavar="VEHICLE_ID_OR_SERIAL", help="vehicle id or hex serial")
    parser.add_argument("--ca-dir", type=Path, default=DEFAULT_CA_DIR, help="CA directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Revoke and print the serials now revoked."""
    try:
        ca = HomeCA.load(args.ca_dir)
        before = {r.serial for r in ca.issued_certificates() if r.revoked_at}
        ca.revoke(args.target)
        now = [r for r in ca.issued_certificates() if r.revoked_at and r.serial not in before]
    except CertificateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not now:
        print(f"{args.target}: already revoked")
    for record in now:
        print(f"revoked {record.vehicle_id} serial {record.serial_hex}")
    return 0
