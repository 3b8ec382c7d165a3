"""Sessions in Redis, for several processes or machines (the `redis` extra).

`RedisSessionStorage` (on `redis.Redis`, `redis.cluster.RedisCluster`, or a
Sentinel's `master_for` client) and `AsyncRedisSessionStorage` (their
`redis.asyncio` twins) share their key layout and serialisation
(`_redis_records`), their Lua scripts (`lua/`, `_redis_scripts`) and the
handling of every call and reply (`_redis_core`). Redis expires the
sessions itself: every session key carries a TTL equal to its remaining life
(`policy.deadline` at the manager's `now`), a touch with an idle timeout
moves it to the idle deadline (never past `expires_at`), and the end of a
renewal grace is a TTL too. No timers, no sweeper.

One round trip per read. A read is judged where the data is: the read
script finds the session, judges it (gone, the default device check, grace,
idle, renewal due) and touches it or deletes it idle, in one call. The rules
themselves are Python's (`policy.read_verdict`, `policy.deadline`,
`manager.check_same_device`); lua/read.lua mirrors them line by line, and
tests/test_redis_judgement.py runs random sessions, clocks and timeouts
through both and requires the same verdict, the same touch and the same new
deadline, so the mirror cannot drift. Why judge in Lua rather than in
Python around compare-and-set steps: Python can only judge what it has read,
so every read would be two round trips (read, then write), which is what
this design removes; and the script writes nothing when nothing is due (a
session touched already this second, a grace, a refusal). With a custom
`read_hook` the script judges but writes nothing, the hook runs in Python,
and a second call touches or deletes: two round trips. A renewal is the
read plus the renew script (its successor's metadata is serialised in
Python from the stored session): two, once per renewal period.

Retries and lost replies: every script is safe to run twice (see
`_redis_core`), so redis-py's retry of a command whose reply was lost
reports what the first run did. A failed call raises `SessionStorageError`
and has written nothing: each script checks before its first write.

Cluster: every key a script touches is in its KEYS, all in the subject's
hash slot. `read_all` and the subject-wide deletes list the index first
and pass every session key; the delete script rechecks the index and the
storage lists again if it changed meanwhile (so a renewal racing a logout
cannot leave a successor behind).

Fail closed: a session its subject's index no longer lists (an index
evicted under `maxmemory`) reads as not found and is not listed.

Times: every TTL is relative to the `now` the manager passes (its clock), so
processes sharing a server should agree on the time to within a second; a
key outlives its deadline by less than a second (whole-second clocks), and
the manager judges anything that is still there.

Costs: `insert`, `read`, `touch`, `renew`, `delete` are one round trip,
O(log n) in Redis (n the subject's sessions); `logout`/`revoke` of a login
never renewed one round trip, O(log n); `read_all`, `delete_all`,
`delete_other_logins` and the logout of a renewed login two round trips
(list the index, then the script), O(n).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..clock import Clock
from ..ids import session_handle
from ..policy import Verdict
from ..session import Device, SessionMetadata
from ._redis_core import LIST_ATTEMPTS, RedisStorageCore, index_changed, redis_errors
from ._redis_records import JsonSerializer, KeyLayout, Serializer, Value
from ._redis_scripts import register_scripts
from .protocol import DeleteReason, ReadRules

__all__ = [
    "AsyncRedisSessionStorage",
    "JsonSerializer",
    "KeyLayout",
    "RedisSessionStorage",
    "Serializer",
]

SyncClient = Any
"""`redis.Redis`, `redis.cluster.RedisCluster`, or a Sentinel's `master_for`
client (typed loosely: redis-py's stubs give them no common base)."""

AsyncClient = Any
"""`redis.asyncio.Redis` or `redis.asyncio.cluster.RedisCluster`."""


class RedisSessionStorage(RedisStorageCore):
    """`SessionStorage` on a synchronous Redis client; safe to share between
    threads, processes and machines.

    - `client`: a `redis.Redis`, a `redis.cluster.RedisCluster`, or
      `redis.sentinel.Sentinel(...).master_for(name)` (README, "Redis");
    - `key_prefix`: the first part of every key (no braces), so that several
      apps can share one server;
    - `serializer`: turns metadata into bytes and back (default
      `JsonSerializer`; with `decode_responses=True` on the client it must
      produce UTF-8);
    - `clock`: the default clock of a manager built on this storage.

    Any client failure surfaces as `SessionStorageError` (code `STORAGE_FAILURE`).
    """

    def __init__(
        self,
        client: SyncClient,
        *,
        key_prefix: str = "usersession",
        serializer: Serializer | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(key_prefix=key_prefix, serializer=serializer, clock=clock)
        self._client = client
        self._scripts = register_scripts(client.register_script)

    @property
    def client(self) -> SyncClient:
        """The Redis client this storage uses."""
        return self._client

    def insert(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        """Store a new session with its TTL and index entry. One script."""
        handle = session_handle(session_id)
        keys, args = self._insert_call(subject, handle, metadata)
        with redis_errors("store", subject, handle):
            stored = self._scripts.insert(keys, args)
        self._after_insert(subject, handle, stored)

    def read(self, subject: str, session_id: str, now: int) -> SessionMetadata | None:
        """The stored session if its index lists it (a fresh object), or
        None. Judges nothing, writes nothing. One script."""
        handle = session_handle(session_id)
        keys, args = self._read_call(subject, handle, now, None, None, False)
        with redis_errors("read", subject, handle):
            reply = self._scripts.read(keys, args)
        return self._after_peek(subject, handle, reply)

    def read_judged(
        self,
        subject: str,
        session_id: str,
        now: int,
        rules: ReadRules,
        device: Device | None,
        renew_now: bool,
    ) -> tuple[Verdict, SessionMetadata | None]:
        """See `JudgingStorage.read_judged`. One script."""
        handle = session_handle(session_id)
        keys, args = self._read_call(subject, handle, now, rules, device, renew_now)
        with redis_errors("read", subject, handle):
            reply = self._scripts.read(keys, args)
        return self._after_read(subject, handle, reply, rules.checks_device)

    def touch(self, subject: str, session_id: str, metadata: SessionMetadata, now: int) -> None:
        """Set `accessed_at` (and, with an idle timeout, the TTL and index
        score to the new deadline), unless the session was deleted or
        superseded meanwhile. One script."""
        handle = session_handle(session_id)
        keys, args = self._touch_call(subject, handle, metadata, now)
        with redis_errors("touch", subject, handle):
            self._scripts.touch(keys, args)

    def renew(
        self,
        subject: str,
        session_id: str,
        grace_ends_at: int,
        renewed_by: str,
        new_session_id: str,
        new_metadata: SessionMetadata,
    ) -> str | None:
        """Supersede a session (TTL: its grace) and insert its successor, or
        report the earlier winner; exactly once across processes. One script."""
        handle = session_handle(session_id)
        new_handle = session_handle(new_session_id)
        keys, args = self._renew_call(
            subject, handle, grace_ends_at, renewed_by, new_handle, new_metadata
        )
        with redis_errors("renew", subject, handle):
            reply = self._scripts.renew(keys, args)
        return self._after_renew(subject, handle, new_handle, reply)

    def read_all(self, subject: str, now: int) -> dict[str, SessionMetadata]:
        """The subject's active sessions with their handles. Two round trips
        (the index's live members, then their sessions), O(sessions of the
        subject). A record that cannot be read back is logged and left out."""
        index = self._layout.index_key(subject)
        with redis_errors("list", subject):
            handles = self._client.zrangebyscore(index, f"({now}", "+inf")
            if not handles:
                return {}
            reply = self._scripts.read_sessions(self._read_sessions_call(subject, handles))
        return self._after_read_all(subject, reply, now)

    def delete(
        self, subject: str, session_id: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> bool:
        """Remove one session and its index entry; False if it was not stored."""
        return self.delete_by_handle(subject, session_handle(session_id), reason)

    def delete_by_handle(
        self, subject: str, handle: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> bool:
        """Remove the session with this handle. One script, O(log n):
        sessions are keyed by handle."""
        keys, args = self._delete_call(subject, handle)
        with redis_errors("delete", subject, handle):
            reply = self._scripts.delete(keys, args)
        return self._after_delete(subject, handle, reply, reason)

    def delete_login(self, subject: str, session_id: str) -> int:
        """Remove every session of the login `session_id` belongs to; return
        how many. One script for a login never renewed, else three round
        trips and O(sessions of the subject)."""
        return self.delete_login_by_handle(subject, session_handle(session_id))

    def delete_login_by_handle(self, subject: str, handle: str) -> int:
        """`delete_login` of the session with this handle."""
        token = self._token()
        keys, args = self._logout_call(subject, handle, token)
        with redis_errors("log out", subject, handle):
            reply = self._scripts.logout(keys, args)
        login = self._login_to_list(reply)
        if login is not None:
            reply = self._delete_listed(subject, "login", login, 0, token)
        return self._after_delete_all(subject, reply)

    def delete_all(self, subject: str) -> int:
        """Remove every session of `subject` and its index; return the count.
        Two round trips, O(sessions of the subject)."""
        return self._after_delete_all(subject, self._delete_listed(subject, "all", "", 0))

    def delete_other_logins(self, subject: str, keep: str, now: int) -> int | None:
        """Remove the subject's sessions outside the login of `keep`; None if
        `keep` is not live at `now`. Two round trips, O(sessions of the subject)."""
        reply = self._delete_listed(subject, "others", session_handle(keep), now)
        removed = self._after_delete_all(subject, reply)
        return None if removed < 0 else removed

    def _delete_listed(
        self, subject: str, mode: str, target: str, now: int, token: str | None = None
    ) -> Sequence[Value]:
        """List the index, then run DELETE_SESSIONS on what it listed; again
        if the index changed in between."""
        token = self._token() if token is None else token
        index = self._layout.index_key(subject)
        with redis_errors("delete", subject):
            for _ in range(LIST_ATTEMPTS):
                handles = self._client.zrange(index, 0, -1)
                if not handles:
                    return [-1 if mode == "others" else 0]
                keys, args = self._delete_sessions_call(subject, mode, target, now, handles, token)
                reply: Sequence[Value] = self._scripts.delete_sessions(keys, args)
                if not self._index_changed(reply):
                    return reply
        raise index_changed(subject)


class AsyncRedisSessionStorage(RedisStorageCore):
    """`AsyncSessionStorage` on an asyncio Redis client
    (`redis.asyncio.Redis`, `redis.asyncio.cluster.RedisCluster`, or a
    Sentinel's `master_for`): the same keys, scripts and behaviour as
    `RedisSessionStorage`, awaited. The two can share one server and one
    key prefix."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        key_prefix: str = "usersession",
        serializer: Serializer | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(key_prefix=key_prefix, serializer=serializer, clock=clock)
        self._client = client
        self._scripts = register_scripts(client.register_script)

    @property
    def client(self) -> AsyncClient:
        """The Redis client this storage uses."""
        return self._client

    async def insert(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        """See `RedisSessionStorage.insert`."""
        handle = session_handle(session_id)
        keys, args = self._insert_call(subject, handle, metadata)
        with redis_errors("store", subject, handle):
            stored = await self._scripts.insert(keys, args)
        self._after_insert(subject, handle, stored)

    async def read(self, subject: str, session_id: str, now: int) -> SessionMetadata | None:
        """See `RedisSessionStorage.read`."""
        handle = session_handle(session_id)
        keys, args = self._read_call(subject, handle, now, None, None, False)
        with redis_errors("read", subject, handle):
            reply = await self._scripts.read(keys, args)
        return self._after_peek(subject, handle, reply)

    async def read_judged(
        self,
        subject: str,
        session_id: str,
        now: int,
        rules: ReadRules,
        device: Device | None,
        renew_now: bool,
    ) -> tuple[Verdict, SessionMetadata | None]:
        """See `RedisSessionStorage.read_judged`."""
        handle = session_handle(session_id)
        keys, args = self._read_call(subject, handle, now, rules, device, renew_now)
        with redis_errors("read", subject, handle):
            reply = await self._scripts.read(keys, args)
        return self._after_read(subject, handle, reply, rules.checks_device)

    async def touch(
        self, subject: str, session_id: str, metadata: SessionMetadata, now: int
    ) -> None:
        """See `RedisSessionStorage.touch`."""
        handle = session_handle(session_id)
        keys, args = self._touch_call(subject, handle, metadata, now)
        with redis_errors("touch", subject, handle):
            await self._scripts.touch(keys, args)

    async def renew(
        self,
        subject: str,
        session_id: str,
        grace_ends_at: int,
        renewed_by: str,
        new_session_id: str,
        new_metadata: SessionMetadata,
    ) -> str | None:
        """See `RedisSessionStorage.renew`."""
        handle = session_handle(session_id)
        new_handle = session_handle(new_session_id)
        keys, args = self._renew_call(
            subject, handle, grace_ends_at, renewed_by, new_handle, new_metadata
        )
        with redis_errors("renew", subject, handle):
            reply = await self._scripts.renew(keys, args)
        return self._after_renew(subject, handle, new_handle, reply)

    async def read_all(self, subject: str, now: int) -> dict[str, SessionMetadata]:
        """See `RedisSessionStorage.read_all`."""
        index = self._layout.index_key(subject)
        with redis_errors("list", subject):
            handles = await self._client.zrangebyscore(index, f"({now}", "+inf")
            if not handles:
                return {}
            keys = self._read_sessions_call(subject, handles)
            reply = await self._scripts.read_sessions(keys)
        return self._after_read_all(subject, reply, now)

    async def delete(
        self, subject: str, session_id: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> bool:
        """See `RedisSessionStorage.delete`."""
        return await self.delete_by_handle(subject, session_handle(session_id), reason)

    async def delete_by_handle(
        self, subject: str, handle: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> bool:
        """See `RedisSessionStorage.delete_by_handle`."""
        keys, args = self._delete_call(subject, handle)
        with redis_errors("delete", subject, handle):
            reply = await self._scripts.delete(keys, args)
        return self._after_delete(subject, handle, reply, reason)

    async def delete_login(self, subject: str, session_id: str) -> int:
        """See `RedisSessionStorage.delete_login`."""
        return await self.delete_login_by_handle(subject, session_handle(session_id))

    async def delete_login_by_handle(self, subject: str, handle: str) -> int:
        """See `RedisSessionStorage.delete_login_by_handle`."""
        token = self._token()
        keys, args = self._logout_call(subject, handle, token)
        with redis_errors("log out", subject, handle):
            reply = await self._scripts.logout(keys, args)
        login = self._login_to_list(reply)
        if login is not None:
            reply = await self._delete_listed(subject, "login", login, 0, token)
        return self._after_delete_all(subject, reply)

    async def delete_all(self, subject: str) -> int:
        """See `RedisSessionStorage.delete_all`."""
        return self._after_delete_all(subject, await self._delete_listed(subject, "all", "", 0))

    async def delete_other_logins(self, subject: str, keep: str, now: int) -> int | None:
        """See `RedisSessionStorage.delete_other_logins`."""
        reply = await self._delete_listed(subject, "others", session_handle(keep), now)
        removed = self._after_delete_all(subject, reply)
        return None if removed < 0 else removed

    async def _delete_listed(
        self, subject: str, mode: str, target: str, now: int, token: str | None = None
    ) -> Sequence[Value]:
        """See `RedisSessionStorage._delete_listed`."""
        token = self._token() if token is None else token
        index = self._layout.index_key(subject)
        with redis_errors("delete", subject):
            for _ in range(LIST_ATTEMPTS):
                handles = await self._client.zrange(index, 0, -1)
                if not handles:
                    return [-1 if mode == "others" else 0]
                keys, args = self._delete_sessions_call(subject, mode, target, now, handles, token)
                reply: Sequence[Value] = await self._scripts.delete_sessions(keys, args)
                if not self._index_changed(reply):
                    return reply
        raise index_changed(subject)
