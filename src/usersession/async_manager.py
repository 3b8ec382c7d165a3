"""The session manager for asyncio: `UserSessionManager` with every method awaited.

A thin shell over `manager._ManagerCore`, like the sync manager: it only
sequences the awaited storage calls; every check, verdict, error and hook
comes from the core and `policy`, so the two managers cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import SessionStorageError
from .manager import _ManagerCore
from .options import check_handle, check_session_id, check_subject
from .policy import Verdict
from .session import SessionContext, SessionMetadata
from .storage.protocol import AsyncSessionStorage, DeleteReason


class AsyncUserSessionManager(_ManagerCore[AsyncSessionStorage]):
    """Creates, reads, renews and deletes sessions over an `AsyncSessionStorage`
    (`AsyncRedisSessionStorage`). Same options, methods, errors and costs as
    `UserSessionManager`; each method is a coroutine.

    Hooks (`read_hook`, `renew_hooks`) stay plain functions: they decide, they
    do no I/O.
    """

    async def create(self, subject: str, context: SessionContext, ttl: int | None = None) -> str:
        """See `UserSessionManager.create`."""
        session_id, metadata = self._new_session(subject, context, ttl)
        await self._storage.insert(subject, session_id, metadata)
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
        self._check_renew(subject, session_id, metadata, context)
        return (await self._read(subject, session_id, context, renew_now=True))[1]

    async def _read(
        self, subject: str, session_id: str, context: SessionContext, *, renew_now: bool
    ) -> tuple[SessionMetadata, str | None]:
        self._check_read(subject, session_id, context)
        now = self._clock()
        storage = self._storage
        metadata = await storage.read(subject, session_id, now)
        if metadata is None:
            raise self._not_found(session_id)
        verdict = self._judge(subject, session_id, context, metadata, now, renew_now)
        if verdict is Verdict.TOUCH:
            await storage.touch(subject, session_id, metadata, now)
            return metadata, None
        if verdict is Verdict.GRACE:
            return metadata, None
        if verdict is Verdict.IDLE:
            await storage.delete(subject, session_id, DeleteReason.IDLE)
            raise self._expired(session_id)
        return metadata, await self._renew(subject, session_id, metadata, context, now)

    async def _renew(
        self,
        subject: str,
        session_id: str,
        metadata: SessionMetadata,
        context: SessionContext,
        now: int,
    ) -> str | None:
        new_id, new_metadata, grace_ends_at, claim = self._successor(metadata, context, now)
        try:
            renewed_by = await self._storage.renew(
                subject, session_id, grace_ends_at, claim, new_id, new_metadata
            )
        except SessionStorageError as error:
            self._renewal_failed(session_id, error)
            raise
        return self._renewal_outcome(session_id, claim, renewed_by, new_id)

    async def read_all(self, subject: str) -> Mapping[str, SessionMetadata]:
        """See `UserSessionManager.read_all`."""
        check_subject(subject)
        return dict(await self._storage.read_all(subject, self._clock()))

    async def delete(self, subject: str, session_id: str) -> None:
        """See `UserSessionManager.delete`."""
        check_subject(subject)
        check_session_id(session_id)
        await self._storage.delete(subject, session_id)

    async def revoke(self, subject: str, handle: str) -> bool:
        """See `UserSessionManager.revoke`."""
        check_subject(subject)
        check_handle(handle)
        return await self._storage.delete_by_handle(subject, handle)

    async def delete_all(self, subject: str) -> int:
        """See `UserSessionManager.delete_all`."""
        check_subject(subject)
        return await self._storage.delete_all(subject)
