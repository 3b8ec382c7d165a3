"""The session manager for asyncio: `UserSessionManager` with every method awaited.

A thin shell over `manager._ManagerCore`, like the sync manager: it only
sequences the awaited storage calls; every check, verdict, error and hook
comes from the core and `policy`, so the two managers cannot drift apart.

It drives an `AsyncSessionStorage` (`AsyncRedisSessionStorage`), or a sync
storage whose operations never block (`InMemorySessionStorage`), seen
through `_AwaitedStorage`: an async app starts in memory and moves to Redis
by changing the storage line only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from .errors import ErrorCode, InvalidTypeError, SessionLimitError, SessionStorageError
from .manager import _ManagerCore
from .options import check_session_id, check_subject
from .policy import Verdict
from .session import SessionContext, SessionMetadata
from .storage.protocol import AsyncSessionStorage, DeleteReason, SessionStorage, storage_kind


class AsyncUserSessionManager(_ManagerCore[AsyncSessionStorage]):
    """Creates, reads, renews and ends sessions over an `AsyncSessionStorage`
    (`AsyncRedisSessionStorage`) or over `InMemorySessionStorage`. Same
    options, methods, errors and costs as `UserSessionManager`; each method
    is a coroutine.

    A sync storage that blocks on I/O (`RedisSessionStorage`) would stall
    the event loop: it is refused with `InvalidTypeError`, as is anything
    that is not a storage. Hooks (`read_hook`, `renew_hooks`) stay plain
    functions: they decide, they do no I/O.
    """

    def _adopt(self, storage: object) -> AsyncSessionStorage:
        kind = storage_kind(storage)
        if kind == "async":
            return cast(AsyncSessionStorage, storage)
        if kind == "sync":
            if getattr(storage, "never_blocks", False) is True:
                return _AwaitedStorage(cast(SessionStorage, storage))
            raise InvalidTypeError(
                ErrorCode.INVALID_OPTION,
                f"{type(storage).__name__} blocks on I/O, which would stall the event "
                f"loop: use its async twin, or UserSessionManager.",
            )
        raise InvalidTypeError(ErrorCode.INVALID_OPTION, f"{kind}.")

    @property
    def storage(self) -> AsyncSessionStorage | SessionStorage:
        """The storage this manager works on, as it was given."""
        return self._given_storage

    async def create(self, subject: str, context: SessionContext, ttl: int | None = None) -> str:
        """See `UserSessionManager.create`."""
        session_id, metadata = self._new_session(subject, context, ttl)
        await self._storage.insert(metadata._subject, session_id, metadata)
        return session_id

    async def read(
        self, subject: str, session_id: str, context: SessionContext
    ) -> tuple[SessionMetadata, str | None]:
        """See `UserSessionManager.read`."""
        return await self._read(subject, session_id, context, renew_now=False)

    async def renew(
        self, subject: str, session_id: str, metadata: SessionMetadata, context: SessionContext
    ) -> str | None:
        """See `UserSessionManager.renew`."""
        subject = self._check_renew(subject, session_id, metadata, context)
        return (await self._read(subject, session_id, context, renew_now=True))[1]

    async def _read(
        self, subject: str, session_id: str, context: SessionContext, *, renew_now: bool
    ) -> tuple[SessionMetadata, str | None]:
        subject = self._check_read(subject, session_id, context)
        now = self._clock()
        storage = self._storage
        judged = self._judged
        if judged is None:
            metadata = await storage.read(subject, session_id, now)
            if metadata is None:
                raise self._not_found(session_id, subject)
            verdict = self._judge(subject, session_id, context, metadata, now, renew_now)
            if verdict is Verdict.TOUCH:
                await storage.touch(subject, session_id, metadata, now)
                return metadata, None
            applied = False
        else:
            # One round trip: the storage judged, and applied what it could.
            verdict, found = await judged(
                subject, session_id, now, self._rules, context.device, renew_now
            )
            metadata = self._settle(subject, session_id, context, found, verdict)
            applied = self._rules.checks_device
            if verdict is Verdict.TOUCH:
                if not applied:
                    await storage.touch(subject, session_id, metadata, now)
                return metadata, None
        if verdict is Verdict.GRACE:
            return metadata, None
        if verdict is Verdict.IDLE:
            if not applied:
                await storage.delete(subject, session_id, DeleteReason.IDLE)
            raise self._expired(session_id, subject)
        try:
            return metadata, await self._renew(subject, session_id, metadata, context, now)
        except SessionLimitError:
            if renew_now:
                raise
            self._renewal_refused(session_id)
            await storage.touch(subject, session_id, metadata, now)
            return metadata, None

    async def _renew(
        self,
        subject: str,
        session_id: str,
        metadata: SessionMetadata,
        context: SessionContext,
        now: int,
    ) -> str | None:
        new_id, successor, grace_ends_at, claim = self._successor(
            session_id, metadata, context, now
        )
        try:
            renewed_by = await self._storage.renew(
                subject, session_id, grace_ends_at, claim, new_id, successor
            )
        except SessionStorageError as error:
            self._renewal_failed(session_id, error)
            raise
        return self._renewal_outcome(session_id, claim, renewed_by, new_id)

    async def read_all(self, subject: str) -> Mapping[str, SessionMetadata]:
        """See `UserSessionManager.read_all`."""
        subject = check_subject(subject)
        now = self._clock()
        return self._listed(await self._storage.read_all(subject, now), now)

    async def delete(self, subject: str, session_id: str) -> None:
        """See `UserSessionManager.delete`."""
        subject = self._check_delete(subject, session_id)
        await self._storage.delete(subject, session_id)

    async def logout(self, subject: str, session_id: str) -> int:
        """See `UserSessionManager.logout`."""
        subject = self._check_delete(subject, session_id)
        return await self._storage.delete_login(subject, session_id)

    async def revoke(self, subject: str, handle: str) -> bool:
        """See `UserSessionManager.revoke`."""
        subject = self._check_revoke(subject, handle)
        return await self._storage.delete_login_by_handle(subject, handle) > 0

    async def delete_all(self, subject: str, *, keep: str | None = None) -> int:
        """See `UserSessionManager.delete_all`."""
        subject = check_subject(subject)
        if keep is None:
            return await self._storage.delete_all(subject)
        check_session_id(keep)
        removed = await self._storage.delete_other_logins(subject, keep, self._clock())
        return self._kept(removed, keep, subject)


class _AwaitedStorage:
    """A sync storage that never blocks, seen as an `AsyncSessionStorage`:
    each method calls the sync one and returns its result from a coroutine."""

    __slots__ = ("_storage",)

    def __init__(self, storage: SessionStorage) -> None:
        self._storage = storage

    async def insert(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        self._storage.insert(subject, session_id, metadata)

    async def read(self, subject: str, session_id: str, now: int) -> SessionMetadata | None:
        return self._storage.read(subject, session_id, now)

    async def touch(
        self, subject: str, session_id: str, metadata: SessionMetadata, now: int
    ) -> None:
        self._storage.touch(subject, session_id, metadata, now)

    async def renew(
        self,
        subject: str,
        session_id: str,
        grace_ends_at: int,
        renewed_by: str,
        new_session_id: str,
        new_metadata: SessionMetadata,
    ) -> str | None:
        return self._storage.renew(
            subject, session_id, grace_ends_at, renewed_by, new_session_id, new_metadata
        )

    async def read_all(self, subject: str, now: int) -> dict[str, SessionMetadata]:
        return self._storage.read_all(subject, now)

    async def delete(
        self, subject: str, session_id: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> bool:
        return self._storage.delete(subject, session_id, reason)

    async def delete_login(self, subject: str, session_id: str) -> int:
        return self._storage.delete_login(subject, session_id)

    async def delete_login_by_handle(self, subject: str, handle: str) -> int:
        return self._storage.delete_login_by_handle(subject, handle)

    async def delete_all(self, subject: str) -> int:
        return self._storage.delete_all(subject)

    async def delete_other_logins(self, subject: str, keep: str, now: int) -> int | None:
        return self._storage.delete_other_logins(subject, keep, now)
