"""Lost replies: the server ran a script, its reply never arrived, and
redis-py ran it again on a new connection (its default `Retry` resends on
`ConnectionError`). Every operation must report what the first run did, and
listeners must hear each removal exactly once.

A loopback proxy (`LossyProxy`) sits between the client and the server and
drops the reply of one chosen EVALSHA, closing the connection after the
server has run it. Each test runs on the sync and on the async storage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from tests.redis_server import (
    EventLoopThread,
    LossyProxy,
    RedisServer,
    SyncFacade,
    unique_prefix,
)
from usersession import (
    AsyncUserSessionManager,
    DeleteReason,
    ManualClock,
    SessionContext,
    SessionExpiredError,
    SessionMetadata,
    SessionNotFoundError,
    Timeouts,
    UserSessionManager,
)
from usersession.storage._redis_scripts import SOURCES
from usersession.storage.redis import AsyncRedisSessionStorage, RedisSessionStorage

from .conftest import START

CONTEXT = SessionContext("10.0.0.1")
RENEWING = Timeouts(renewal=600, renewal_grace=30)


class Rig:
    """A manager whose every call goes through the lossy proxy, the events
    its storage's listener heard, and the test's clock."""

    def __init__(self, manager: Any, proxy: LossyProxy, clock: ManualClock) -> None:
        self.manager = manager
        self.proxy = proxy
        self.clock = clock
        self.events: list[tuple[str, DeleteReason]] = []

        def record(
            subject: str, handle: str, metadata: SessionMetadata, reason: DeleteReason
        ) -> None:
            self.events.append((handle, reason))

        manager.storage.add_listener(record)

    def lose_the_reply_of_the_next_script(self, skip: int = 0) -> None:
        self.proxy.lose_reply(b"EVALSHA", skip)


@pytest.fixture(params=["sync", "async"])
def make_rig(
    request: pytest.FixtureRequest, redis_server: RedisServer, clock: ManualClock
) -> Iterator[Callable[..., Rig]]:
    proxy = LossyProxy(redis_server.port)
    admin = redis_server.client()
    for source in SOURCES.values():  # loaded: the lost reply is the script's own
        admin.script_load(source)
    admin.close()
    if request.param == "sync":
        client = redis.Redis(port=proxy.port, retry=Retry(ConstantBackoff(0.01), 3))

        def make(**options: Any) -> Rig:
            storage = RedisSessionStorage(client, key_prefix=unique_prefix(), clock=clock)
            manager = UserSessionManager(storage, session_ttl=3600, **options)
            return Rig(manager, proxy, clock)

        yield make
        client.close()
    else:
        loop = EventLoopThread()
        async_client = redis.asyncio.Redis(
            port=proxy.port, retry=AsyncRetry(ConstantBackoff(0.01), 3)
        )

        def make_async(**options: Any) -> Rig:
            storage = AsyncRedisSessionStorage(
                async_client, key_prefix=unique_prefix(), clock=clock
            )
            manager = AsyncUserSessionManager(storage, session_ttl=3600, **options)
            return Rig(SyncFacade(manager, loop), proxy, clock)

        yield make_async
        loop.run(async_client.aclose())
        loop.close()
    proxy.close()


def test_a_create_whose_reply_was_lost_reports_success_and_stores_one_session(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    rig.lose_the_reply_of_the_next_script()
    session_id = rig.manager.create("uid1", CONTEXT)
    assert rig.proxy.lost == 1
    assert rig.manager.read("uid1", session_id, CONTEXT)[1] is None
    assert list(rig.manager.read_all("uid1")) == [rig.manager.hash(session_id)]


def test_a_read_that_found_a_session_idle_reports_it_idle_when_its_reply_was_lost(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(timeouts=Timeouts(idle=100))
    session_id = rig.manager.create("uid1", CONTEXT)
    rig.clock.advance(100)
    rig.lose_the_reply_of_the_next_script()
    with pytest.raises(SessionExpiredError):
        rig.manager.read("uid1", session_id, CONTEXT)
    assert rig.proxy.lost == 1
    assert rig.events == [(rig.manager.hash(session_id), DeleteReason.IDLE)]


def test_a_read_that_touched_reports_the_touch_when_its_reply_was_lost(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(timeouts=Timeouts(idle=100))
    session_id = rig.manager.create("uid1", CONTEXT)
    rig.clock.advance(50)
    rig.lose_the_reply_of_the_next_script()
    metadata, renewed = rig.manager.read("uid1", session_id, CONTEXT)
    assert (metadata.accessed_at, renewed) == (START + 50, None)
    rig.clock.advance(99)  # idle counts from the touch the lost reply reported
    assert rig.manager.read("uid1", session_id, CONTEXT)[0].accessed_at == START + 149


def test_a_delete_whose_reply_was_lost_tells_the_listeners_once(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    session_id = rig.manager.create("uid1", CONTEXT)
    rig.lose_the_reply_of_the_next_script()
    assert rig.manager.storage.delete("uid1", session_id) is True
    assert rig.proxy.lost == 1
    assert rig.events == [(rig.manager.hash(session_id), DeleteReason.DELETED)]
    with pytest.raises(SessionNotFoundError):
        rig.manager.read("uid1", session_id, CONTEXT)


def test_a_logout_whose_reply_was_lost_reports_the_session_it_ended(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    session_id = rig.manager.create("uid1", CONTEXT)
    rig.lose_the_reply_of_the_next_script()
    assert rig.manager.logout("uid1", session_id) == 1
    assert rig.events == [(rig.manager.hash(session_id), DeleteReason.DELETED)]


def test_a_logout_of_a_renewed_login_whose_reply_was_lost_reports_both_sessions(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(timeouts=RENEWING)
    old = rig.manager.create("uid1", CONTEXT)
    rig.clock.advance(600)
    new = rig.manager.read("uid1", old, CONTEXT)[1]
    assert new is not None
    rig.lose_the_reply_of_the_next_script(skip=1)  # the second script: the delete
    assert rig.manager.logout("uid1", new) == 2
    assert rig.proxy.lost == 1
    assert sorted(rig.events) == sorted(
        [
            (rig.manager.hash(old), DeleteReason.DELETED),
            (rig.manager.hash(new), DeleteReason.DELETED),
        ]
    )


def test_a_revoke_whose_reply_was_lost_reports_that_it_removed_the_login(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    session_id = rig.manager.create("uid1", CONTEXT)
    rig.lose_the_reply_of_the_next_script()
    assert rig.manager.revoke("uid1", rig.manager.hash(session_id)) is True
    assert len(rig.events) == 1


def test_a_delete_all_whose_reply_was_lost_reports_every_session_it_removed(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    session_ids = [rig.manager.create("uid1", CONTEXT) for _ in range(3)]
    rig.lose_the_reply_of_the_next_script()
    assert rig.manager.delete_all("uid1") == 3
    assert rig.proxy.lost == 1
    assert sorted(handle for handle, _ in rig.events) == sorted(
        rig.manager.hash(session_id) for session_id in session_ids
    )
    assert rig.manager.read_all("uid1") == {}


def test_a_delete_all_but_one_login_whose_reply_was_lost_reports_what_it_removed(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    keep = rig.manager.create("uid1", CONTEXT)
    others = [rig.manager.create("uid1", CONTEXT) for _ in range(2)]
    rig.lose_the_reply_of_the_next_script()
    assert rig.manager.delete_all("uid1", keep=keep) == 2
    assert sorted(handle for handle, _ in rig.events) == sorted(
        rig.manager.hash(session_id) for session_id in others
    )
    assert list(rig.manager.read_all("uid1")) == [rig.manager.hash(keep)]


def test_a_renewal_whose_reply_was_lost_still_hands_out_the_one_new_id(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(timeouts=RENEWING)
    old = rig.manager.create("uid1", CONTEXT)
    rig.clock.advance(600)
    rig.lose_the_reply_of_the_next_script(skip=1)  # the read, then the renew script
    new = rig.manager.read("uid1", old, CONTEXT)[1]
    assert rig.proxy.lost == 1
    assert new is not None
    assert list(rig.manager.read_all("uid1")) == [rig.manager.hash(new)]
    assert rig.manager.read("uid1", new, CONTEXT)[1] is None
