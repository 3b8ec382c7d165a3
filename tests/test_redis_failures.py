"""Redis going away mid-run: a typed `SessionStorageError` (never a raw
Redis exception, never a session id in it), then normal service once Redis
is back, and an index that still matches the session keys.

Each test runs its own server, so stopping it disturbs nobody else. Clients
are built without retries, so every failure reaches the storage.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.redis_server import RedisServer, start_server, unique_prefix
from usersession import (
    AsyncUserSessionManager,
    ErrorCode,
    RenewHooks,
    SessionContext,
    SessionNotFoundError,
    SessionStorageError,
    Timeouts,
    UserSessionManager,
)
from usersession.storage.redis import AsyncRedisSessionStorage, RedisSessionStorage

CONTEXT = SessionContext("10.0.0.1")
NO_RETRY = {"retry": Retry(NoBackoff(), 0), "socket_timeout": 2, "socket_connect_timeout": 2}


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    yield from start_server()


def assert_index_matches_keys(client: redis.Redis, prefix: str) -> None:
    """Every index member has its session key, every session key its member."""
    members = set()
    for index in client.scan_iter(match=f"{prefix}:*:index"):
        tag = index[: -len(b":index")]
        members |= {tag + b":session:" + handle for handle in client.zrange(index, 0, -1)}
    sessions = set(client.scan_iter(match=f"{prefix}:*:session:*"))
    assert members == sessions


def assert_typed(error: SessionStorageError, secrets: list[str]) -> None:
    assert error.code is ErrorCode.STORAGE_FAILURE
    assert str(error).startswith("Redis failed to ")
    text = []
    seen: BaseException | None = error
    while seen is not None:
        text.append(f"{seen!r} {seen}")
        seen = seen.__cause__ or seen.__context__
    for secret in secrets:
        assert secret not in "\n".join(text)


def test_a_restart_fails_each_operation_typed_then_service_resumes(
    own_server: RedisServer,
) -> None:
    client = own_server.client(**NO_RETRY)
    prefix = unique_prefix()
    manager = UserSessionManager(
        RedisSessionStorage(client, key_prefix=prefix),
        session_ttl=3600,
        timeouts=Timeouts(renewal=600, renewal_grace=30),
    )
    session_id = manager.create("uid1", CONTEXT)
    own_server.stop()

    operations: list[Callable[[], object]] = [
        lambda: manager.create("uid1", CONTEXT),
        lambda: manager.read("uid1", session_id, CONTEXT),
        lambda: manager.read_all("uid1"),
        lambda: manager.delete("uid1", session_id),
        lambda: manager.revoke("uid1", manager.hash(session_id)),
        lambda: manager.delete_all("uid1"),
    ]
    for operation in operations:
        with pytest.raises(SessionStorageError) as raised:
            operation()
        assert_typed(raised.value, [session_id])

    own_server.start()  # same port, empty: the old session is gone with it
    with pytest.raises(SessionNotFoundError):
        manager.read("uid1", session_id, CONTEXT)
    fresh = manager.create("uid1", CONTEXT)
    assert manager.read("uid1", fresh, CONTEXT)[1] is None
    assert list(manager.read_all("uid1")) == [manager.hash(fresh)]
    assert_index_matches_keys(client, prefix)
    client.close()


def test_a_failed_renewal_is_typed_and_tells_the_hook(own_server: RedisServer) -> None:
    failures: list[tuple[str, Exception]] = []
    client = own_server.client(**NO_RETRY)
    clock_now = [1_700_000_000]
    manager = UserSessionManager(
        RedisSessionStorage(client, key_prefix=unique_prefix()),
        session_ttl=3600,
        timeouts=Timeouts(renewal=600, renewal_grace=30),
        renew_hooks=RenewHooks(on_old_session_delete_failure=lambda *f: failures.append(f)),
        clock=lambda: clock_now[0],
    )
    session_id = manager.create("uid1", CONTEXT)
    storage = manager.storage
    renew = storage.renew

    def renew_after_the_server_died(*args: Any) -> str | None:
        # The read before it succeeded; the server goes away in between.
        own_server.stop()
        return renew(*args)

    storage.renew = renew_after_the_server_died  # type: ignore[method-assign]
    clock_now[0] += 600
    with pytest.raises(SessionStorageError) as raised:
        manager.read("uid1", session_id, CONTEXT)
    assert_typed(raised.value, [session_id])
    assert failures == [(session_id, raised.value)]
    client.close()


def test_connections_killed_mid_run_leave_no_orphans(own_server: RedisServer) -> None:
    """Four threads create, read, list and delete while another kills their
    connections again and again: every failure is a `SessionStorageError`,
    the index still matches the keys, and once the killing stops every
    operation succeeds."""
    client = own_server.client(**NO_RETRY, max_connections=16)
    prefix = unique_prefix()
    manager = UserSessionManager(RedisSessionStorage(client, key_prefix=prefix), session_ttl=3600)
    admin = own_server.client()
    stop = threading.Event()
    failures: list[BaseException] = []
    typed = 0
    lock = threading.Lock()

    def work(subject: str) -> None:
        nonlocal typed
        while not stop.is_set():
            try:
                session_id = manager.create(subject, CONTEXT)
                manager.read(subject, session_id, CONTEXT)
                manager.read_all(subject)
                manager.delete(subject, session_id)
                manager.create(subject, CONTEXT)
            except SessionStorageError as error:
                with lock:
                    typed += 1
                assert_typed(error, [])
            except BaseException as error:  # anything else fails the test
                failures.append(error)
                return

    threads = [threading.Thread(target=work, args=(f"uid{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        admin.client_kill_filter(_type="normal", skipme=True)
        time.sleep(0.005)
        with lock:
            if typed >= 20 and time.monotonic() > deadline - 9:
                break
    stop.set()
    for thread in threads:
        thread.join()

    assert failures == []
    assert typed > 0
    print(f"{typed} operations failed typed")
    assert_index_matches_keys(admin, prefix)
    for n in range(4):
        session_id = manager.create(f"uid{n}", CONTEXT)
        assert manager.read(f"uid{n}", session_id, CONTEXT)[1] is None
        assert manager.delete_all(f"uid{n}") >= 1
    assert_index_matches_keys(admin, prefix)
    admin.close()
    client.close()


def test_the_async_storage_fails_typed_and_recovers_too(own_server: RedisServer) -> None:
    async def scenario() -> None:
        client = own_server.async_client(**NO_RETRY)
        manager = AsyncUserSessionManager(
            AsyncRedisSessionStorage(client, key_prefix=unique_prefix()), session_ttl=3600
        )
        session_id = await manager.create("uid1", CONTEXT)
        own_server.stop()
        with pytest.raises(SessionStorageError) as raised:
            await manager.read("uid1", session_id, CONTEXT)
        assert_typed(raised.value, [session_id])
        with pytest.raises(SessionStorageError):
            await manager.create("uid1", CONTEXT)
        own_server.start()
        fresh = await manager.create("uid1", CONTEXT)
        assert (await manager.read("uid1", fresh, CONTEXT))[1] is None
        assert await manager.delete_all("uid1") == 1
        await client.aclose()

    asyncio.run(scenario())
