"""`carhub-bridge revoke VEHICLE_ID_OR_SERIAL`: revoke a car's certificate(s).

A vehicle id revokes every certificate of that car; a hex serial (as
``carhub-bridge ca show`` prints it) revokes one. The CRL (``crl.pem``) is
rewritten at once. A running ``carhub-bridge serve`` on the same ``--ca-dir``
picks it up by itself: it checks ``crl.pem`` every ``--crl-check`` seconds
(10 by default) and at once on SIGHUP (``kill -HUP <pid of serve>``); it then
reloads the CRL into its TLS context (the car's next handshake fails) and
closes the car's live link (close code 4003, "certificate revoked"). Other
hubs (the Home Assistant integration) use ``HubServer.revoke()`` or
``HubServer.refresh_revocations()``.
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
    parser = subparsers.add_parser(
        "revoke",
        help="revoke a car's certificate",
        description=(
            "Revoke every certificate of a vehicle id, or one by hex serial. A running "
            "'carhub-bridge serve' using the same CA directory applies it within its "
            "--crl-check interval, or at once on SIGHUP: it refuses the car's next "
            "handshake and closes its live link."
        ),
    )
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
    if now:
        print(
            "a running 'carhub-bridge serve' applies this within its --crl-check interval "
            "(send it SIGHUP to apply it now)"
        )
    return 0
