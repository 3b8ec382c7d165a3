"""The `usersession` command (also `python -m usersession`)."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, compiled, demo
from ._build import compiled_modules


def build_name() -> str:
    """Which build is running: "compiled (mypyc)" or "pure Python"."""
    return "compiled (mypyc)" if compiled else "pure Python"


def version() -> str:
    """One line: the version, the build, the Python and the platform."""
    return (
        f"usersession {__version__}, {build_name()}, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.platform()}"
    )


def info() -> list[str]:
    """What `usersession info` prints: the version line, where the package
    is, and for each module mypyc compiles whether it is the compiled one."""
    lines = [
        version(),
        f"package: {Path(__file__).resolve().parent}",
        f"python: {sys.executable}",
        "modules compiled by mypyc in the compiled build:",
    ]
    for name, is_compiled in compiled_modules().items():
        lines.append(f"  {name:<32} {'compiled' if is_compiled else 'pure Python'}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="usersession",
        description="Stateful, server-side user sessions.",
        # Keeps the --version line whole instead of wrapping it.
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("demo", help="walk through a session's life on the in-memory storage")
    commands.add_parser("info", help="say which build is running (compiled or pure), and where")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo.run()
        return 0
    if args.command == "info":
        print("\n".join(info()))
        return 0
    parser.print_help()
    return 2
