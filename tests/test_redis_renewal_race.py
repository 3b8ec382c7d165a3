"""Renewal is exactly-once across OS processes and across coroutines:
however many readers race on a renewal-due session, one new id comes out."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.synchronize import Barrier

import redis
import redis.asyncio

from tests.redis_server import RedisServer, unique_prefix
from usersession import (
    AsyncUserSessionManager,
    ManualClock,
    SessionContext,
    Timeouts,
    UserSessionManager,
)
from usersession.storage.redis import AsyncRedisSessionStorage, RedisSessionStorage

START = 1_700_000_000
RENEWING = Timeouts(renewal=600, renewal_grace=30)
CONTEXT = SessionContext("10.0.0.1")
PROCESSES = 8
SESSIONS = 5


def race_in_a_process(
    port: int, prefix: str, session_ids: list[str], barrier: Barrier, results: multiprocessing.Queue
) -> None:
    """Read each session once, right when every other process does."""
    client = redis.Redis(port=port)
    client.ping()  # connect before the race, not during it
    storage = RedisSessionStorage(client, key_prefix=prefix)
    manager = UserSessionManager(
        storage, session_ttl=3600, timeouts=RENEWING, clock=ManualClock(START + 600)
    )
    outcomes = []
    for session_id in session_ids:
        barrier.wait(timeout=60)
        try:
            outcomes.append(manager.read("uid1", session_id, CONTEXT)[1])
        except Exception as error:  # reported to the test, which fails on it
            outcomes.append(f"error: {error!r}")
    results.put(outcomes)
    client.close()


def test_processes_racing_on_a_renewal_due_session_get_one_new_id(
    redis_server: RedisServer,
) -> None:
    prefix = unique_prefix()
    client = redis_server.client()
    creator = UserSessionManager(
        RedisSessionStorage(client, key_prefix=prefix),
        session_ttl=3600,
        timeouts=RENEWING,
        clock=ManualClock(START),
    )
    session_ids = [creator.create("uid1", CONTEXT) for _ in range(SESSIONS)]

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(
            target=race_in_a_process,
            args=(redis_server.port, prefix, session_ids, barrier, results),
        )
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    for index in range(SESSIONS):
        per_session = [outcome[index] for outcome in outcomes]
        assert not [o for o in per_session if isinstance(o, str) and o.startswith("error")]
        new_ids = [o for o in per_session if o is not None]
        assert len(new_ids) == 1, per_session
    # In Redis: each old session (superseded) and its one successor, nothing more.
    assert client.zcard(f"{prefix}:{{uid1}}:index") == 2 * SESSIONS
    client.close()


def test_coroutines_racing_on_a_renewal_due_session_get_one_new_id(
    redis_server: RedisServer,
) -> None:
    async def race() -> list[str | None]:
        client = redis.asyncio.Redis(port=redis_server.port)
        clock = ManualClock(START)
        manager = AsyncUserSessionManager(
            AsyncRedisSessionStorage(client, key_prefix=unique_prefix()),
            session_ttl=3600,
            timeouts=RENEWING,
            clock=clock,
        )
        others = [
            AsyncUserSessionManager(
                manager.storage, session_ttl=3600, timeouts=RENEWING, clock=clock
            )
            for _ in range(3)
        ]
        session_id = await manager.create("uid1", CONTEXT)
        clock.advance(600)
        readers = [manager, *others] * 10
        results = await asyncio.gather(*(m.read("uid1", session_id, CONTEXT) for m in readers))
        listed = await manager.read_all("uid1")
        await client.aclose()
        assert len(listed) == 1
        return [renewed for _, renewed in results]

    renewed = asyncio.run(race())
    assert sum(new_id is not None for new_id in renewed) == 1
