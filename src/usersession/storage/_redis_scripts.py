"""The Lua scripts of the Redis storages, one file per operation in `lua/`.

Each script is `lua/common.lua` (shared helpers) followed by its own file,
read once at import with `importlib.resources`, so it works from a wheel,
an editable install or a zip alike (the `.lua` files ship as package data).
Every key a script touches is declared in its KEYS: Redis Cluster routes by
them, and servers such as Dragonfly refuse undeclared keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Generic, TypeVar

# A literal package name, not __package__: a module compiled by mypyc
# may not set it the way the interpreter does.
_LUA = resources.files("usersession.storage") / "lua"


def script_source(name: str) -> str:
    """The full source of the script `lua/<name>.lua`, helpers included."""
    common = (_LUA / "common.lua").read_text(encoding="utf-8")
    return common + "\n" + (_LUA / f"{name}.lua").read_text(encoding="utf-8")


SCRIPT_NAMES = (
    "insert",
    "read",
    "touch",
    "renew",
    "delete",
    "logout",
    "delete_sessions",
    "read_sessions",
)
"""The scripts, by file name."""

SOURCES = {name: script_source(name) for name in SCRIPT_NAMES}

ScriptT = TypeVar("ScriptT")


@dataclass(frozen=True, slots=True)
class Scripts(Generic[ScriptT]):
    """The scripts, registered on one client (sync or asyncio)."""

    insert: ScriptT
    read: ScriptT
    touch: ScriptT
    renew: ScriptT
    delete: ScriptT
    logout: ScriptT
    delete_sessions: ScriptT
    read_sessions: ScriptT


def register_scripts(register: Callable[[str], ScriptT]) -> Scripts[ScriptT]:
    """Register every script with `register` (a client's `register_script`)."""
    return Scripts(*(register(SOURCES[name]) for name in SCRIPT_NAMES))
