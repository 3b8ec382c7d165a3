"""Sessions in Redis, for several processes or machines (the `redis` extra).

`RedisSessionStorage` (on `redis.Redis`) and `AsyncRedisSessionStorage` (on
`redis.asyncio.Redis`) share their key layout, serialisation and Lua scripts
(`_redis_common`); each operation is one round trip: a single HMGET for
`read`, one atomic Lua script for everything else. Redis expires the
sessions itself: every session key carries a TTL equal to its remaining life
(`policy.deadline` at the manager's `now`), a touch with an idle timeout moves
it to the idle deadline (never past `expires_at`), and the end of a renewal
grace is a TTL too. No timers, no sweeper.

What the storage cannot do: Redis has no reliable expiry callbacks, so a
session that Redis expires (absolute expiry, idle deadline, end of a grace)
leaves without a delete event; see `add_listener`. A failed round trip (a
lost connection, a Redis error) raises `SessionStorageError` and has written
nothing: each script checks before its first write.

Times: every TTL is relative to the `now` the manager passes (its clock), so
processes sharing a server should agree on the time to within a second; a
key outlives its deadline by less than a second (whole-second clocks), and
the manager judges anything that is still there. On Redis Cluster all keys of
a subject share one hash slot; the trimming and `delete_all` scripts also
reach session keys named by the index rather than passed as KEYS (same slot).

Costs: `insert`, `read`, `touch`, `renew`, `delete` are O(1) round trips and
O(log n + dead) in Redis (n the subject's sessions, dead the members dropped
from the index); `read_all`, `delete_all`, `delete_other_logins` and the
`delete_login` of a renewed login O(n).
"""

from __future__ import annotations

from typing import cast

import redis
import redis.asyncio

from ..clock import Clock
from ..ids import session_handle
from ..session import SessionMetadata
from ._redis_common import (
    READ_FIELDS,
    JsonSerializer,
    KeyLayout,
    RedisStorageCore,
    Serializer,
    Value,
    redis_errors,
    register_scripts,
    taken,
)
from .protocol import DeleteReason

__all__ = [
    "AsyncRedisSessionStorage",
    "JsonSerializer",
    "KeyLayout",
    "RedisSessionStorage",
    "Serializer",
]


class RedisSessionStorage(RedisStorageCore):
    """`SessionStorage` on a `redis.Redis` client; safe to share between
    threads, processes and machines.

    - `key_prefix`: the first part of every key (no braces), so that several
      apps can share one server;
    - `serializer`: turns metadata into bytes and back (default
      `JsonSerializer`; with `decode_responses=True` on the client it must
      produce UTF-8);
    - `clock`: the default clock of a manager built on this storage.

    Any Redis error surfaces as `SessionStorageError` (code `STORAGE_FAILURE`).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        key_prefix: str = "usersession",
        serializer: Serializer | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(key_prefix=key_prefix, serializer=serializer, clock=clock)
        self._client = client
        self._scripts = register_scripts(client.register_script)

    @property
    def client(self) -> redis.Redis:
        """The Redis client this storage uses."""
        return self._client

    def insert(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        """Store a new session with its TTL and index entry. One script."""
        handle = session_handle(session_id)
        keys, args = self._insert_call(subject, handle, metadata)
        with redis_errors("store", subject, handle):
            stored = self._scripts.insert(keys, args)
        if not stored:
            raise taken(handle)

    def read(self, subject: str, session_id: str, now: int) -> SessionMetadata | None:
        """The stored session (a fresh object), or None. One HMGET."""
        handle = session_handle(session_id)
        key = self._layout.session_key(subject, handle)
        with redis_errors("read", subject, handle):
            fields = cast(list[Value], self._client.hmget(key, READ_FIELDS))
        return self._after_read(subject, handle, fields)

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
        return self._after_renew(handle, new_handle, reply)

    def read_all(self, subject: str, now: int) -> list[tuple[str, SessionMetadata]]:
        """The subject's sessions with their handles, after dropping dead
        index members. One script, O(sessions of the subject)."""
        keys = [self._layout.index_key(subject)]
        with redis_errors("list", subject):
            prefix = self._layout.session_key_prefix(subject)
            reply = self._scripts.read_all(keys, [prefix, now])
        return self._after_read_all(subject, reply, now)

    def delete(
        self, subject: str, session_id: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> bool:
        """Remove one session and its index entry; False if it was not stored."""
        return self.delete_by_handle(subject, session_handle(session_id), reason)

    def delete_by_handle(
        self, subject: str, handle: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> bool:
        """Remove the session with this handle. One script, O(1): sessions are
        keyed by handle."""
        keys, args = self._delete_call(subject, handle)
        with redis_errors("delete", subject, handle):
            reply = self._scripts.delete(keys, args)
        return self._after_delete(subject, handle, reply, reason)

    def delete_login(self, subject: str, session_id: str) -> int:
        """Remove every session of the login `session_id` belongs to; return
        how many. One script, O(1) for a login never renewed, else
        O(sessions of the subject)."""
        return self.delete_login_by_handle(subject, session_handle(session_id))

    def delete_login_by_handle(self, subject: str, handle: str) -> int:
        """`delete_login` of the session with this handle. One script."""
        keys, args = self._delete_login_call(subject, handle)
        with redis_errors("log out", subject, handle):
            reply = self._scripts.delete_login(keys, args)
        return self._after_delete_all(subject, reply)

    def delete_all(self, subject: str) -> int:
        """Remove every session of `subject` and its index; return the count.
        One script, O(sessions of the subject)."""
        keys, args = self._delete_all_call(subject)
        with redis_errors("delete", subject):
            reply = self._scripts.delete_all(keys, args)
        return self._after_delete_all(subject, reply)

    def delete_other_logins(self, subject: str, keep: str, now: int) -> int | None:
        """Remove the subject's sessions outside the login of `keep`; None if
        `keep` is not live at `now`. One script, O(sessions of the subject)."""
        keys, args = self._delete_other_logins_call(subject, session_handle(keep), now)
        with redis_errors("delete", subject):
            reply = self._scripts.delete_other_logins(keys, args)
        removed = self._after_delete_all(subject, reply)
        return None if removed < 0 else removed


class AsyncRedisSessionStorage(RedisStorageCore):
    """`AsyncSessionStorage` on a `redis.asyncio.Redis` client: the same keys,
    scripts and behaviour as `RedisSessionStorage`, awaited. The two can
    share one server and one key prefix."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        key_prefix: str = "usersession",
        serializer: Serializer | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(key_prefix=key_prefix, serializer=serializer, clock=clock)
        self._client = client
        self._scripts = register_scripts(client.register_script)

    @property
    def client(self) -> redis.asyncio.Redis:
        """The Redis client this storage uses."""
        return self._client

    async def insert(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        """See `RedisSessionStorage.insert`."""
        handle = session_handle(session_id)
        keys, args = self._insert_call(subject, handle, metadata)
        with redis_errors("store", subject, handle):
            stored = await self._scripts.insert(keys, args)
        if not stored:
            raise taken(handle)

    async def read(self, subject: str, session_id: str, now: int) -> SessionMetadata | None:
        """See `RedisSessionStorage.read`."""
        handle = session_handle(session_id)
        key = self._layout.session_key(subject, handle)
        with redis_errors("read", subject, handle):
            fields = cast(list[Value], await self._client.hmget(key, READ_FIELDS))
        return self._after_read(subject, handle, fields)

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
        return self._after_renew(handle, new_handle, reply)

    async def read_all(self, subject: str, now: int) -> list[tuple[str, SessionMetadata]]:
        """See `RedisSessionStorage.read_all`."""
        keys = [self._layout.index_key(subject)]
        with redis_errors("list", subject):
            reply = await self._scripts.read_all(
                keys, [self._layout.session_key_prefix(subject), now]
            )
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
        keys, args = self._delete_login_call(subject, handle)
        with redis_errors("log out", subject, handle):
            reply = await self._scripts.delete_login(keys, args)
        return self._after_delete_all(subject, reply)

    async def delete_all(self, subject: str) -> int:
        """See `RedisSessionStorage.delete_all`."""
        keys, args = self._delete_all_call(subject)
        with redis_errors("delete", subject):
            reply = await self._scripts.delete_all(keys, args)
        return self._after_delete_all(subject, reply)

    async def delete_other_logins(self, subject: str, keep: str, now: int) -> int | None:
        """See `RedisSessionStorage.delete_other_logins`."""
        keys, args = self._delete_other_logins_call(subject, session_handle(keep), now)
        with redis_errors("delete", subject):
            reply = await self._scripts.delete_other_logins(keys, args)
        removed = self._after_delete_all(subject, reply)
        return None if removed < 0 else removed
