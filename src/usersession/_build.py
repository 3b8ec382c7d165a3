"""The two builds: which modules mypyc compiles, and which build is running.

The same source files are installed either as pure Python or with the modules
in `COMPILED_MODULES` compiled by mypyc into C extensions (see setup.py and
README, "Two builds"). This module is never compiled: setup.py reads the list
from it before anything is built, and the compiled modules import from it
what they need to behave as the pure ones do.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["COMPILED_MODULES", "compiled_modules", "mypyc_attr"]

COMPILED_MODULES = (
    "usersession.clock",
    "usersession.garbage_collector",
    "usersession.ids",
    "usersession.manager",
    "usersession.options",
    "usersession.policy",
    "usersession.session",
    "usersession.storage.limits",
    "usersession.storage.memory",
)
"""The hot path, compiled by mypyc when a wheel is built. Left out on
purpose: `errors` (exception classes that inherit built-in exceptions stay
interpreted), `_build` (read before the build), the Redis storages, snapshots,
the sweeper, the async manager, the command line and the demo (I/O bound or
cold: compiling them buys nothing and costs build time)."""

if TYPE_CHECKING:
    # mypyc reads these decorator arguments at compile time; in the pure build
    # (and at run time of the compiled one) the decorator does nothing.
    from mypy_extensions import mypyc_attr
else:
    _T = TypeVar("_T")

    def mypyc_attr(*_flags: str, **_options: Any) -> Callable[[_T], _T]:
        return lambda decorated: decorated


def compiled_modules() -> dict[str, bool]:
    """Each module of `COMPILED_MODULES` (imported if it is not yet), and
    whether the one imported is a compiled extension."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    state = {}
    for name in COMPILED_MODULES:
        module = sys.modules.get(name) or importlib.import_module(name)
        state[name] = str(getattr(module, "__file__", "") or "").endswith(suffixes)
    return state
