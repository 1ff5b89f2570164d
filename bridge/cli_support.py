"""Shared plumbing of CarHub's command lines (`carhub-bridge`, `vehicle-agent`).

Each command line is a thin dispatcher over a package of sub-command modules.
Every module in that package defines ``register(subparsers)``, which adds one
sub-command and sets ``func`` (``Callable[[argparse.Namespace], int]``) as its
default. Discovering them keeps each command in its own small module.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
from collections.abc import Callable, Sequence
from types import ModuleType

__all__ = ["build_dispatch_parser", "run_dispatch"]


def build_dispatch_parser(
    *, prog: str, description: str, version: str, commands: ModuleType
) -> argparse.ArgumentParser:
    """Return a parser with every sub-command module of *commands* registered."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def run_dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse *argv*, set up logging from ``-v`` and run the chosen sub-command."""
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
