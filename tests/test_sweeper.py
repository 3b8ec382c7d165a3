"""Background sweeping and autosaving: the sweeper thread and the asyncio
task call `collect()` on their own, stop promptly when told to, and never
keep the storage alive. The waits here are short and bounded: a thread is
the subject under test."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import pytest

from usersession import (
    Autosaver,
    ErrorCode,
    InMemorySessionStorage,
    InvalidOptionsError,
    InvalidTypeError,
    ManualClock,
    SessionContext,
    Sweeper,
    UserSessionManager,
    start_sweeping,
    sweep_periodically,
)

CONTEXT = SessionContext(ip="10.0.0.1")
PATIENCE = 5.0
"""The longest any test here waits for a thread (seconds); normally milliseconds."""


def _wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def _expired_storage(clock: ManualClock, count: int = 10) -> InMemorySessionStorage:
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(storage, session_ttl=60)
    for index in range(count):
        manager.create(f"user{index}", CONTEXT)
    clock.advance(60)  # all due, none swept: nothing touches the storage
    assert len(storage) == count
    return storage


class _CountingStorage:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls = 0
        self.fail_first = fail_first

    def collect(self) -> int:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise RuntimeError("collect failed")
        return 0


def test_a_sweeper_collects_a_quiet_storage(clock: ManualClock) -> None:
    storage = _expired_storage(clock)
    with Sweeper(storage, interval=0.01) as sweeper:
        assert sweeper.running
        assert _wait_until(lambda: len(storage) == 0)
    assert not sweeper.running
    assert storage.stats().expired == 10


def test_a_sweeper_stops_promptly_however_long_its_interval() -> None:
    sweeper = Sweeper(_CountingStorage(), interval=3600).start()
    started = time.monotonic()
    sweeper.stop()
    assert time.monotonic() - started < 1.0
    assert not sweeper.running
    sweeper.stop()  # idempotent


def test_a_sweeper_thread_is_a_daemon() -> None:
    with Sweeper(_CountingStorage(), interval=3600) as sweeper:
        assert sweeper._thread is not None and sweeper._thread.daemon


def test_a_sweeper_does_not_keep_its_storage_alive_and_ends_with_it(clock: ManualClock) -> None:
    storage = _expired_storage(clock)
    sweeper = Sweeper(storage, interval=3600).start()
    del storage
    gc.collect()
    assert _wait_until(lambda: not sweeper.running)


def test_a_failing_collect_is_logged_and_the_sweeper_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = _CountingStorage(fail_first=2)
    with caplog.at_level(logging.ERROR, logger="usersession"), Sweeper(storage, interval=0.005):
        assert _wait_until(lambda: storage.calls >= 4)
    assert caplog.text.count("RuntimeError: collect failed") == 2


def test_a_sweeper_starts_once() -> None:
    with Sweeper(_CountingStorage(), interval=3600) as sweeper, pytest.raises(InvalidOptionsError):
        sweeper.start()


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf"), "1", None, True])
def test_a_bad_interval_is_refused(interval: object) -> None:
    with pytest.raises(InvalidOptionsError) as raised:
        Sweeper(_CountingStorage(), interval=interval)  # type: ignore[arg-type]
    assert raised.value.code is ErrorCode.INVALID_OPTION


def test_the_asyncio_sweeper_collects_and_is_cancelled(clock: ManualClock) -> None:
    storage = _expired_storage(clock)

    async def scenario() -> None:
        task = start_sweeping(storage, interval=0.005)
        for _ in range(int(PATIENCE / 0.005)):
            if len(storage) == 0:
                break
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert len(storage) == 0


def test_the_asyncio_sweeper_ends_when_the_storage_is_gone(clock: ManualClock) -> None:
    storage = _expired_storage(clock)

    async def scenario() -> None:
        nonlocal storage
        task = asyncio.ensure_future(sweep_periodically(storage, 0.005))
        await asyncio.sleep(0.02)
        del storage
        gc.collect()
        await asyncio.wait_for(task, PATIENCE)

    asyncio.run(scenario())


def test_the_asyncio_sweeper_refuses_a_bad_interval() -> None:
    with pytest.raises(InvalidOptionsError):
        asyncio.run(sweep_periodically(_CountingStorage(), 0))


@pytest.mark.parametrize(
    "interval", [threading.TIMEOUT_MAX * 2, 10**400], ids=["above-TIMEOUT_MAX", "10**400"]
)
def test_an_interval_longer_than_a_thread_can_wait_is_refused_at_construction(
    interval: float,
) -> None:
    # A thread waiting longer than threading.TIMEOUT_MAX dies at once, silently.
    for build in (
        lambda: Sweeper(_CountingStorage(), interval=interval),
        lambda: Autosaver(InMemorySessionStorage(), "sessions.snapshot", interval=interval),
        lambda: asyncio.run(sweep_periodically(_CountingStorage(), interval)),
    ):
        with pytest.raises(InvalidOptionsError) as raised:
            build()
        assert raised.value.code is ErrorCode.INVALID_OPTION


def test_the_longest_interval_a_thread_can_wait_keeps_the_sweeper_running() -> None:
    storage = _CountingStorage()
    with Sweeper(storage, interval=threading.TIMEOUT_MAX) as sweeper:
        time.sleep(0.05)
        assert sweeper.running


def test_an_autosaver_saves_on_close(clock: ManualClock, tmp_path: Path) -> None:
    path = tmp_path / "sessions.snapshot"
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(storage, session_ttl=600)
    with Autosaver(storage, path) as autosaver:
        session_id = manager.create("alice", CONTEXT)
        assert not autosaver.running  # no interval: no thread
        assert not path.exists()
    restored = InMemorySessionStorage(clock=clock)
    assert restored.load(path) == 1
    assert session_id in restored._sessions


def test_an_autosaver_saves_periodically(clock: ManualClock, tmp_path: Path) -> None:
    path = tmp_path / "sessions.snapshot"
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(storage, session_ttl=600)
    manager.create("alice", CONTEXT)
    autosaver = Autosaver(storage, path, interval=0.01).start()
    try:
        assert _wait_until(path.exists)
        assert InMemorySessionStorage(clock=clock).load(path) == 1
    finally:
        autosaver.close()
    assert not autosaver.running


@pytest.mark.parametrize("storage", [5, None, "storage"])
def test_a_sweeper_refuses_what_cannot_be_swept(storage: object) -> None:
    with pytest.raises(InvalidTypeError):
        Sweeper(storage, interval=1)  # type: ignore[arg-type]


def test_an_autosaver_refuses_a_path_that_is_not_one() -> None:
    with pytest.raises(InvalidTypeError):
        Autosaver(InMemorySessionStorage(), 123)  # type: ignore[arg-type]


class _BytesPath:
    def __fspath__(self) -> bytes:
        return b"sessions.snapshot"


@pytest.mark.parametrize(
    "path",
    ["", "a\x00b", "\ud800", b"sessions.snapshot", _BytesPath()],
    ids=["empty", "nul", "lone-surrogate", "bytes", "pathlike-of-bytes"],
)
def test_an_autosaver_refuses_at_construction_a_path_that_save_refuses(
    path: object, tmp_path: Path
) -> None:
    storage = InMemorySessionStorage()
    with pytest.raises(InvalidOptionsError) as at_construction:
        Autosaver(storage, path)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionsError) as at_save:
        storage.save(path)  # type: ignore[arg-type]
    assert at_construction.value.code is at_save.value.code is ErrorCode.INVALID_OPTION
    assert type(at_construction.value) is type(at_save.value)


def test_a_str_subclass_path_is_used_as_its_plain_value_by_save_and_autosaver(
    clock: ManualClock, tmp_path: Path
) -> None:
    class Paths(StrEnum):
        SNAPSHOT = str(tmp_path / "sessions.snapshot")

    storage = InMemorySessionStorage(clock=clock)
    UserSessionManager(storage, session_ttl=600).create("alice", CONTEXT)
    assert storage.save(Paths.SNAPSHOT) == 1
    (tmp_path / "sessions.snapshot").unlink()
    with Autosaver(storage, Paths.SNAPSHOT) as autosaver:
        assert type(autosaver.path) is str
    assert InMemorySessionStorage(clock=clock).load(Paths.SNAPSHOT) == 1
