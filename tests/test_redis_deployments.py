"""Deployments beyond one server: Redis Cluster and Sentinel, on loopback.

The behaviour suite runs on the cluster too (the "cluster" and
"cluster-async" kinds of `make_manager`, with scripts that refuse undeclared
keys); this file covers what only a deployment has: subjects spread over
the slots, a client that cannot reach its cluster, and a failover.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
import redis.asyncio.cluster
import redis.sentinel
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from tests.redis_cluster import RedisClusterOnLoopback, SentinelOnLoopback
from tests.redis_server import free_port, server_binary, unique_prefix
from usersession import (
    AsyncUserSessionManager,
    ErrorCode,
    SessionContext,
    SessionStorageError,
    Timeouts,
    UserSessionManager,
)
from usersession.storage.redis import AsyncRedisSessionStorage, RedisSessionStorage

CONTEXT = SessionContext("10.0.0.1")
SUBJECTS = ["uid1", "{", "}", "}{", "{uid}", "%7B", "a:b", "üñí日本", "x" * 2000, "tab\there"]


def test_subjects_spread_over_the_cluster_keep_each_their_sessions_in_one_slot(
    redis_cluster: RedisClusterOnLoopback,
) -> None:
    client = redis_cluster.client()
    manager = UserSessionManager(
        RedisSessionStorage(client, key_prefix=unique_prefix()),
        session_ttl=3600,
        timeouts=Timeouts(renewal=600, renewal_grace=30),
    )
    created = {
        subject: [manager.create(subject, CONTEXT) for _ in range(3)] for subject in SUBJECTS
    }
    for subject, session_ids in created.items():
        for session_id in session_ids:
            assert manager.read(subject, session_id, CONTEXT)[1] is None
        assert set(manager.read_all(subject)) == {manager.hash(i) for i in session_ids}
        assert manager.logout(subject, session_ids[0]) == 1
        assert manager.delete_all(subject, keep=session_ids[1]) == 1
        assert manager.delete_all(subject) == 1
    client.close()


def test_an_async_cluster_client_that_cannot_reach_its_nodes_fails_typed() -> None:
    """An asyncio RedisCluster initialises on its first command; when no
    node answers, redis-py raises from half-built internals. The storage
    reports it as `SessionStorageError`, like any other client failure."""

    async def scenario() -> None:
        client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=free_port())
        manager = AsyncUserSessionManager(
            AsyncRedisSessionStorage(client, key_prefix=unique_prefix()), session_ttl=3600
        )
        operations: list[Callable[[], Awaitable[object]]] = [
            lambda: manager.create("uid1", CONTEXT),
            lambda: manager.read("uid1", "an-id", CONTEXT),
            lambda: manager.read_all("uid1"),
            lambda: manager.logout("uid1", "an-id"),
            lambda: manager.delete_all("uid1"),
            lambda: manager.create("uid1", CONTEXT),
        ]
        for operation in operations:
            with pytest.raises(SessionStorageError) as raised:
                await operation()
            assert raised.value.code is ErrorCode.STORAGE_FAILURE
        await client.aclose()

    asyncio.run(scenario())


@pytest.fixture
def sentinel_setup() -> Iterator[SentinelOnLoopback]:
    setup = SentinelOnLoopback(server_binary())
    setup.start()
    try:
        yield setup
    finally:
        setup.stop()


def test_a_primary_killed_under_sentinel_fails_over_with_every_session_intact(
    sentinel_setup: SentinelOnLoopback,
) -> None:
    """SIGKILL the primary: the sentinel promotes the replica, a client from
    `Sentinel.master_for` follows it, and every session written (and
    acknowledged by the replica) before the crash reads as before."""
    sentinel = redis.sentinel.Sentinel(sentinel_setup.sentinels(), socket_timeout=0.5)
    client = sentinel.master_for(
        SentinelOnLoopback.NAME,
        socket_timeout=0.5,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 20),
    )
    manager = UserSessionManager(
        RedisSessionStorage(client, key_prefix=unique_prefix()), session_ttl=3600
    )
    session_ids = [manager.create(f"uid{n % 5}", CONTEXT) for n in range(50)]
    assert client.wait(1, 2000) == 1  # the replica has them

    killed_at = time.monotonic()
    sentinel_setup.primary.kill()
    deadline = killed_at + 20
    while True:
        try:
            assert manager.read("uid0", session_ids[0], CONTEXT)[1] is None
            break
        except SessionStorageError:
            assert time.monotonic() < deadline, "no failover within 20 s"
    print(f"failover: service back {time.monotonic() - killed_at:.1f} s after the kill")

    promoted = sentinel.discover_master(SentinelOnLoopback.NAME)
    assert promoted == ("127.0.0.1", sentinel_setup.replica.port)
    for n, session_id in enumerate(session_ids):
        assert manager.read(f"uid{n % 5}", session_id, CONTEXT)[1] is None
    assert sum(len(manager.read_all(f"uid{n}")) for n in range(5)) == 50
    assert manager.create("uid0", CONTEXT)
    client.close()
