"""L2 under races: a logout racing renewals of the same login, by threads on
the in-memory storage and by OS processes on Redis. Once `logout` has
returned, no session of that login is readable by anyone (not the old id,
not a successor a racing reader just made), and the subject's other logins
are untouched."""

from __future__ import annotations

import multiprocessing
import random
import sys
import threading
import time
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier, Event

import pytest
import redis

from tests.redis_server import RedisServer, unique_prefix
from usersession import (
    InMemorySessionStorage,
    ManualClock,
    SessionContext,
    SessionNotFoundError,
    Timeouts,
    UserSessionManager,
)
from usersession.storage.redis import RedisSessionStorage

from .conftest import START

CONTEXT = SessionContext("10.0.0.1")
RENEWING = Timeouts(renewal=1, renewal_grace=30)
READERS = 4


def _still_readable(manager: UserSessionManager, session_ids: list[str]) -> list[str]:
    readable = []
    for session_id in session_ids:
        try:
            manager.read("uid1", session_id, CONTEXT)
        except SessionNotFoundError:
            continue
        readable.append(manager.hash(session_id))
    return readable


def _race_a_logout_against_renewals(
    manager: UserSessionManager, clock: ManualClock, delay: int
) -> tuple[list[str], list[str]]:
    """Readers follow one login through its renewals while a ticker moves
    the clock and another thread logs the login out after `delay` spins.
    Returns the ids the login had and the violations seen."""
    first = manager.create("uid1", CONTEXT)
    seen = [first]
    violations: list[str] = []
    logged_out = threading.Event()
    start = threading.Barrier(READERS + 2)

    def reader() -> None:
        current = first
        start.wait()
        for _ in range(300):
            after_logout = logged_out.is_set()
            try:
                _, renewed = manager.read("uid1", current, CONTEXT)
            except SessionNotFoundError:
                return
            if after_logout:
                violations.append("a read succeeded after logout returned")
            if renewed is not None:
                seen.append(renewed)
                current = renewed

    def ticker() -> None:
        start.wait()
        for _ in range(30):
            clock.advance(1)

    def logout() -> None:
        start.wait()
        for _ in range(delay):
            pass
        manager.logout("uid1", first)
        logged_out.set()

    threads = [threading.Thread(target=reader) for _ in range(READERS)]
    threads += [threading.Thread(target=ticker), threading.Thread(target=logout)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    return seen, violations


def test_threads_renewing_a_login_while_it_is_logged_out_leave_nothing_of_it(
    clock: ManualClock,
) -> None:
    storage = InMemorySessionStorage(clock=clock)
    # Renewal after one second: with the clock ticking, readers renew all the time.
    manager = UserSessionManager(storage, session_ttl=3600, timeouts=RENEWING)
    rng = random.Random(7)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    renewals = 0
    try:
        for _ in range(40):
            bystander = manager.create("uid1", CONTEXT)
            seen, violations = _race_a_logout_against_renewals(
                manager, clock, rng.randint(0, 20_000)
            )
            renewals += len(seen) - 1
            assert violations == []
            assert _still_readable(manager, seen) == []
            assert manager.read("uid1", bystander, CONTEXT) is not None
            manager.delete_all("uid1")
    finally:
        sys.setswitchinterval(switch_interval)
    assert renewals > 0, "no renewal raced the logouts"


def read_in_a_process(
    port: int,
    prefix: str,
    first: str,
    now: Synchronized[int],
    barrier: Barrier,
    logged_out: Event,
    results: multiprocessing.Queue,
) -> None:
    """Read the login (following renewals) until it is gone; report the ids
    seen and how many reads succeeded after the logout was announced."""
    client = redis.Redis(port=port)
    client.ping()
    storage = RedisSessionStorage(client, key_prefix=prefix)
    # The test's clock, shared by every process (hosts agree on the time).
    manager = UserSessionManager(
        storage, session_ttl=3600, timeouts=RENEWING, clock=lambda: int(now.value)
    )
    seen, late = [first], 0
    current = first
    barrier.wait(timeout=60)
    for _ in range(300):
        after_logout = logged_out.is_set()
        try:
            _, renewed = manager.read("uid1", current, CONTEXT)
        except SessionNotFoundError:
            break
        late += after_logout
        if renewed is not None:
            seen.append(renewed)
            current = renewed
    results.put((seen, late))
    client.close()


@pytest.mark.parametrize("trial", range(3))
def test_processes_renewing_a_login_while_it_is_logged_out_leave_nothing_of_it(
    redis_server: RedisServer, trial: int
) -> None:
    context = multiprocessing.get_context("spawn")
    now = context.Value("q", START)
    prefix = unique_prefix()
    client = redis_server.client()
    manager = UserSessionManager(
        RedisSessionStorage(client, key_prefix=prefix),
        session_ttl=3600,
        timeouts=RENEWING,
        clock=lambda: int(now.value),
    )
    bystander = manager.create("uid1", CONTEXT)
    first = manager.create("uid1", CONTEXT)

    barrier = context.Barrier(READERS + 1)
    logged_out = context.Event()
    results = context.Queue()
    processes = [
        context.Process(
            target=read_in_a_process,
            args=(redis_server.port, prefix, first, now, barrier, logged_out, results),
        )
        for _ in range(READERS)
    ]
    for process in processes:
        process.start()
    barrier.wait(timeout=60)
    # The clock ticks while the readers renew; then the login is logged out.
    for _ in range(random.Random(trial).randint(1, 20)):
        time.sleep(0.002)
        with now.get_lock():
            now.value += 1
    manager.logout("uid1", first)
    logged_out.set()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    seen = sorted({session_id for ids, _ in outcomes for session_id in ids})
    assert sum(late for _, late in outcomes) == 0
    assert _still_readable(manager, seen) == []
    assert manager.read("uid1", bystander, CONTEXT) is not None
    client.close()
