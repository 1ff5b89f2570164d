"""`vehicle-agent` command line: a thin dispatcher over `vehicle_agent.commands`.

See :mod:`bridge.cli_support` for how sub-commands are discovered.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bridge.cli_support import build_dispatch_parser, run_dispatch
from vehicle_agent import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every sub-command registered."""
    return build_dispatch_parser(
        prog="vehicle-agent",
        description="CarHub vehicle agent: reads the car and links it to Home Assistant.",
        version=__version__,
        commands=commands,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vehicle-agent` script."""
    return run_dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
