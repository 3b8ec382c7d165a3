"""Where time comes from: Unix seconds from an injected callable.

Every decision in this package is a function of "now", and "now" is whatever
the clock returns. Production uses `system_clock`; tests and game loops use
`ManualClock`, which only moves when told to, so every run is deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import ErrorCode, InvalidOptionsError, InvalidTypeError

Clock = Callable[[], int]
"""A clock: takes nothing, returns the current Unix time in whole seconds."""


def system_clock() -> int:
    """The wall clock, in whole Unix seconds. O(1)."""
    return int(time.time())


def check_clock(clock: object) -> Clock:
    """A clock must be callable and return whole seconds (an int: a float
    clock such as `time.time` would leak fractions into every timestamp).
    Calls it once."""
    if not callable(clock):
        raise InvalidTypeError(
            ErrorCode.INVALID_CLOCK, f"clock must be callable, not {type(clock).__name__}."
        )
    now = clock()
    if type(now) is not int:
        raise InvalidTypeError(
            ErrorCode.INVALID_CLOCK,
            f"clock must return an int of Unix seconds, not {type(now).__name__} "
            "(wrap it: lambda: int(time.time())).",
        )
    return clock


class ManualClock:
    """A clock that stands still until `advance` moves it.

    >>> clock = ManualClock(100)
    >>> clock.advance(5)
    105
    >>> clock()
    105
    """

    __slots__ = ("_now",)

    def __init__(self, now: int = 0) -> None:
        self._now = _whole_seconds(now, "now")

    def __call__(self) -> int:
        return self._now

    @property
    def now(self) -> int:
        """The time this clock reports, in Unix seconds."""
        return self._now

    def advance(self, seconds: int) -> int:
        """Move time forward by `seconds` (>= 0) and return the new time.

        Time never goes backwards on a `ManualClock` (a test that needs a
        clock stepping back, as NTP may step the system clock, passes its own
        callable: the storages keep sweeping whichever way time moves).
        """
        self._now += _whole_seconds(seconds, "seconds")
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now})"


def _whole_seconds(value: object, name: str) -> int:
    if type(value) is not int:
        raise InvalidTypeError(
            ErrorCode.INVALID_CLOCK,
            f"{name} must be an int of seconds, not {type(value).__name__}.",
        )
    if value < 0:
        raise InvalidOptionsError(ErrorCode.INVALID_CLOCK, f"{name} must be >= 0, got {value}.")
    return value
