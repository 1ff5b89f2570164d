"""`carhub-bridge` command line: a thin dispatcher over `bridge.commands`.

See :mod:`bridge.cli_support` for how sub-commands are discovered.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bridge import __version__, commands
from bridge.cli_support import build_dispatch_parser, run_dispatch


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every sub-command registered."""
    return build_dispatch_parser(
        prog="carhub-bridge",
        description="CarHub bridge: the home side of the car link (CA, pairing, hub server).",
        version=__version__,
        commands=commands,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `carhub-bridge` script."""
    return run_dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
