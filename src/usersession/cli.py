"""The `usersession` command (also `python -m usersession`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import __version__, demo


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="usersession", description="Stateful, server-side user sessions."
    )
    parser.add_argument("--version", action="version", version=f"usersession {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("demo", help="walk through a session's life on the in-memory storage")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo.run()
        return 0
    parser.print_help()
    return 2
