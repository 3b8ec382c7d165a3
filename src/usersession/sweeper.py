"""Background sweeping and autosaving, for apps with quiet periods.

Storages sweep opportunistically: each operation evicts what came due since
the last one. An app that goes quiet keeps its expired sessions in memory
until the next request; a `Sweeper` (a thread) or `sweep_periodically` (an
asyncio task) calls `storage.collect()` every `interval` seconds instead.
An `Autosaver` writes a snapshot every `interval` seconds and once more when
it is closed.

None of them keeps the storage alive: they hold a weak reference, and stop
by themselves once the storage is gone. Threads are daemons and stop
promptly (within one `collect()` or save) when told to.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, TypeVar, cast

from .errors import ErrorCode, InvalidOptionsError, InvalidTypeError
from .storage.snapshot import check_snapshot_path

if TYPE_CHECKING:
    from .storage.memory import InMemorySessionStorage

_log = logging.getLogger("usersession")

T = TypeVar("T")


class Collectable(Protocol):
    """A storage that can evict what is due: `collect() -> int`."""

    def collect(self) -> int: ...


def _check_interval(interval: object) -> float:
    """The one rule for an interval, which the threads and the asyncio task
    both apply: an int or float of seconds (not a bool), > 0 and at most
    `threading.TIMEOUT_MAX` (about 292 years: a thread told to wait longer
    dies at once with `OverflowError`)."""
    if not isinstance(interval, int | float) or isinstance(interval, bool):
        raise InvalidTypeError(
            ErrorCode.INVALID_OPTION,
            f"interval must be a number of seconds, not {type(interval).__name__}.",
        )
    # Compared before float(): float() of a huge int raises OverflowError,
    # while an int compares with a float exactly. NaN fails the comparison.
    if not 0 < interval <= threading.TIMEOUT_MAX:
        raise InvalidOptionsError(
            ErrorCode.INVALID_OPTION,
            f"interval must be > 0 and at most threading.TIMEOUT_MAX "
            f"({threading.TIMEOUT_MAX:.0f}) seconds.",
        )
    return float(interval)


class _Lifeline:
    """Stands in for a storage that cannot be weakly referenced: a compiled
    (mypyc) `InMemorySessionStorage`. The storage holds its lifeline and the
    lifeline holds the storage, so the two die together and a weak reference
    to the lifeline is one to the storage. Being a cycle, they are reclaimed
    by the garbage collector's next pass rather than at once."""

    __slots__ = ("__weakref__", "target")

    def __init__(self, target: object) -> None:
        self.target = target


def _weak_reference(target: T) -> tuple[Callable[[], T | None], object]:
    """A callable that returns `target` while it lives (then None), and the
    object whose collection means that `target` is gone."""
    try:
        return weakref.ref(target), target
    except TypeError:
        if not hasattr(target, "_lifeline"):
            raise
    lifeline = getattr(target, "_lifeline", None)
    if not isinstance(lifeline, _Lifeline):
        lifeline = _Lifeline(target)
        setattr(target, "_lifeline", lifeline)  # noqa: B010 - not part of Collectable
    reference = weakref.ref(lifeline)

    def dereference() -> T | None:
        alive = reference()
        return None if alive is None else cast(T, alive.target)

    return dereference, lifeline


class _Periodic:
    """A daemon thread calling `action(target)` every `interval` seconds
    while `target` lives, until stopped."""

    def __init__(self, target: object, action: Callable[[object], object], interval: float) -> None:
        self.interval = _check_interval(interval)
        self._target, watched = _weak_reference(target)
        self._action = action
        self._stopping = threading.Event()
        # Wake the thread as soon as the target is collected.
        self._finalizer = weakref.finalize(watched, self._stopping.set)
        del watched
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Start the thread (once); return self. O(1)."""
        if self._thread is not None:
            raise InvalidOptionsError(ErrorCode.INVALID_OPTION, f"{self!r} was started already.")
        self._thread = threading.Thread(
            target=self._run, name=f"usersession-{type(self).__name__.lower()}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Ask the thread to stop and wait up to `timeout` seconds for it
        (it finishes the run in progress, if any). Idempotent."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            target = self._target()
            if target is None:
                return
            try:
                self._action(target)
            except Exception:
                # The storages name sessions by handle only in their errors.
                _log.exception("usersession: %s run failed", type(self).__name__)
            del target

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(interval={self.interval}, running={self.running})"


def _collect(storage: object) -> object:
    return storage.collect()  # type: ignore[attr-defined]


class Sweeper(_Periodic):
    """Calls `storage.collect()` every `interval` seconds on a daemon thread.

    >>> from usersession import InMemorySessionStorage
    >>> storage = InMemorySessionStorage()
    >>> with Sweeper(storage, interval=30):
    ...     pass  # serve requests

    The first sweep runs one interval after `start()`. The sweeper holds only
    a weak reference to the storage and ends when the storage is collected.
    An exception from `collect()` is logged (logger "usersession") and the
    sweeper carries on.
    """

    def __init__(self, storage: Collectable, interval: float = 1.0) -> None:
        if not callable(getattr(storage, "collect", None)):
            raise InvalidTypeError(
                ErrorCode.INVALID_OPTION,
                f"Sweeper needs a storage with collect(), not {type(storage).__name__}.",
            )
        super().__init__(storage, _collect, interval)


class Autosaver(_Periodic):
    """Saves `storage` to a snapshot at `path` every `interval` seconds (if
    `interval` is not None) and once more on `close()` / leaving a `with`
    block, so a clean shutdown loses nothing.

    >>> from usersession import InMemorySessionStorage
    >>> storage = InMemorySessionStorage()
    >>> with Autosaver(storage, "sessions.snapshot", interval=60):  # doctest: +SKIP
    ...     pass  # serve requests

    Saving is atomic (see `usersession.storage.snapshot`); a failed periodic
    save is logged and retried next interval, a failed final save raises.
    `path` is checked here by the rule `save` applies
    (`snapshot.check_snapshot_path`), so a path `save` would refuse never
    gets as far as a periodic save.
    """

    def __init__(
        self,
        storage: InMemorySessionStorage,
        path: str | os.PathLike[str],
        interval: float | None = None,
    ) -> None:
        # The rule save() applies, so a path save() would refuse fails here.
        self.path: str = check_snapshot_path(path)
        if not callable(getattr(storage, "save", None)):
            raise InvalidTypeError(
                ErrorCode.INVALID_OPTION,
                f"Autosaver needs a storage with save(), not {type(storage).__name__}.",
            )
        super().__init__(storage, self._save, 1.0 if interval is None else interval)
        self._periodic = interval is not None

    def _save(self, storage: object) -> object:
        return storage.save(self.path)  # type: ignore[attr-defined]

    def start(self) -> Self:
        """Start saving every `interval` seconds (nothing to start without one)."""
        if self._periodic:
            return super().start()
        return self

    def close(self) -> None:
        """Stop the periodic saves and save once more (if the storage still
        exists). Idempotent in effect; each call saves."""
        self.stop()
        storage = self._target()
        if storage is not None:
            self._save(storage)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


async def sweep_periodically(storage: Collectable, interval: float = 1.0) -> None:
    """Call `storage.collect()` every `interval` seconds until cancelled or
    until the storage is gone (only a weak reference is kept between sweeps).

    `collect()` runs on the event loop: it costs O(sessions due), which is
    what a request would have paid. An exception from it is logged and the
    loop carries on.
    """
    seconds = _check_interval(interval)
    reference = _weak_reference(storage)[0]
    del storage
    while True:
        await asyncio.sleep(seconds)
        target = reference()
        if target is None:
            return
        try:
            target.collect()
        except Exception:
            _log.exception("usersession: sweep failed")
        del target


def start_sweeping(storage: Collectable, interval: float = 1.0) -> asyncio.Task[None]:
    """`sweep_periodically` as a task of the running loop; cancel it to stop."""
    return asyncio.get_running_loop().create_task(
        sweep_periodically(storage, interval), name="usersession-sweeper"
    )
