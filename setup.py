"""Build usersession: the hot modules compiled by mypyc, or pure Python.

Everything but the compiled extensions is declared in pyproject.toml. A wheel
build (`pip install .`, `pip wheel .`, `python -m build`) compiles the modules
listed in `src/usersession/_build.py` (`COMPILED_MODULES`) with mypyc, from
the same source files that are installed beside them. The result is pure
Python instead, and the build still succeeds, when:

- `USERSESSION_PURE_PYTHON=1` is set;
- the install is editable (`pip install -e .`): an edited `.py` file must
  never be shadowed by a stale compiled module;
- mypyc is not importable or refuses the code;
- no C compiler is found, or compiling fails (the wheel is then tagged pure).

Each fallback prints why on stderr (`pip install -v .` shows it).
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
PURE_VARIABLE = "USERSESSION_PURE_PYTHON"

# The setup.py commands that build what a wheel installs; every other one
# (egg_info, dist_info, sdist, editable_wheel, ...) gets the pure package.
BUILDING_COMMANDS = frozenset({"bdist_wheel", "build", "build_ext"})


def say(message: str) -> None:
    """Tell whoever runs the build (pip shows it with -v)."""
    print(f"usersession build: {message}", file=sys.stderr)


def module_paths() -> list[str]:
    """The source files of `COMPILED_MODULES`, relative to this directory."""
    build_info = runpy.run_path(str(HERE / "src" / "usersession" / "_build.py"))
    return [
        str(Path("src", *name.split(".")).with_suffix(".py"))
        for name in build_info["COMPILED_MODULES"]
    ]


def compiled_extensions() -> list[Extension]:
    """mypyc's extensions for the hot modules, or none (pure Python), saying why."""
    if os.environ.get(PURE_VARIABLE) == "1":
        say(f"{PURE_VARIABLE}=1: building pure Python")
        return []
    if not BUILDING_COMMANDS.intersection(sys.argv[1:]):
        return []
    try:
        from mypyc.build import mypycify  # noqa: PLC0415  (only when compiling)
    except ImportError as error:
        say(f"mypyc is not available ({error}): building pure Python")
        return []
    os.chdir(HERE)  # mypyc takes paths, and mypy its config, from here
    try:
        # Type errors in modules that are only imported (the Redis storages,
        # whose `redis` package the build does not install) are not the
        # build's business: `mypy --strict src` checks them in CI.
        extensions: list[Extension] = mypycify(
            ["--follow-imports=silent", *module_paths()], opt_level="3", group_name="usersession"
        )
    except (Exception, SystemExit) as error:  # mypyc exits on a type error
        say(f"mypyc could not compile the modules ({error!r}): building pure Python")
        return []
    return extensions


class BuildExtOrPure(build_ext):
    """`build_ext` that falls back to the pure package when compiling fails."""

    def run(self) -> None:
        # Compile every time: an extension that an earlier build left in
        # build/ would otherwise be taken as up to date, and a wheel built
        # without a working compiler would ship it.
        self.force = True
        try:
            super().run()
        except Exception as error:  # no compiler, a compiler error, a missing header
            say(f"compiling failed ({error!r}): building pure Python")
            self._fall_back()

    def _fall_back(self) -> None:
        # Half a compiled build is worse than none: a module whose shared
        # library is missing cannot be imported at all.
        for output in self.get_outputs():
            Path(output).unlink(missing_ok=True)
        self.extensions: list[Extension] = []
        self.distribution.ext_modules = []
        wheel: Any = self.distribution.command_obj.get("bdist_wheel")
        if wheel is not None:
            wheel.root_is_pure = True


setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": BuildExtOrPure})
