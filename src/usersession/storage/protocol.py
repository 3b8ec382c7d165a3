"""What a manager needs from a storage, and what a storage tells its listeners.

A storage keeps sessions by (subject, session id) and carries out the
manager's decisions; it decides nothing about idle or renewal itself (the
policy module does). Each method is one atomic step, so a storage shared by
threads, processes or machines never shows a half-done operation.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Literal, Protocol

from ..session import Device, SessionMetadata

if TYPE_CHECKING:
    from ..policy import Verdict


class DeleteReason(Enum):
    """Why a session left the storage; each removal emits exactly one."""

    DELETED = "deleted"
    """`delete`, `logout`, `revoke` or `delete_all`."""
    EXPIRED = "expired"
    """Its absolute `expires_at` passed."""
    IDLE = "idle"
    """Unread for the idle timeout (found by a read or by a sweep)."""
    RENEWED = "renewed"
    """A renewal superseded it and its grace is over."""
    EVICTED = "evicted"
    """A capacity limit made room for a newer session."""

    # Members are singletons, so identity hashing is correct; Enum's own
    # __hash__ is Python code, and every removal counts its reason in a dict.
    __hash__ = object.__hash__


Listener = Callable[[str, str, SessionMetadata, DeleteReason], None]
"""Called as `listener(subject, session_id, metadata, reason)` once per removal.

A storage that keeps only hashed ids (Redis) passes the session's handle as
the second argument: it has no id to give. A listener that logs must log
`UserSessionManager.hash(session_id)`, never the id itself."""


class SessionStorage(Protocol):
    """The synchronous storage contract (`InMemorySessionStorage`, `RedisSessionStorage`).

    Times are Unix seconds from the manager's clock; a storage must not judge
    a session by a clock of its own, so that one `ManualClock` drives both.
    """

    def insert(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        """Store a new session. The storage takes ownership of `metadata`.
        An id that is already stored is refused with `SessionStorageError`."""

    def read(self, subject: str, session_id: str, now: int) -> SessionMetadata | None:
        """The session stored under `subject` and `session_id`, or None.

        It may return a session whose time is up: the manager judges that
        (`policy.read_verdict`). It never returns one of another subject."""

    def touch(self, subject: str, session_id: str, metadata: SessionMetadata, now: int) -> None:
        """Record a read at `now` (`accessed_at`) on `metadata`, which `read`
        returned, and in the storage. A session deleted or superseded since
        `read` must not come back or be extended."""

    def renew(
        self,
        subject: str,
        session_id: str,
        grace_ends_at: int,
        renewed_by: str,
        new_session_id: str,
        new_metadata: SessionMetadata,
    ) -> str | None:
        """Atomically supersede a session and insert its successor.

        If the session is stored and not yet superseded: mark it superseded
        until `grace_ends_at` (never past its `expires_at`) by `renewed_by`,
        make it a member of the successor's login (its login key becomes
        `new_metadata._login`, see `policy.login_key`), insert `new_metadata`
        under `new_session_id`, and return `renewed_by`. If it was superseded
        already, change nothing and return the `renewed_by` on record, so
        that exactly one caller ever wins. If it is gone, return None."""

    def read_all(self, subject: str, now: int) -> dict[str, SessionMetadata]:
        """The subject's active sessions at `now` (`policy.is_active`: not
        expired, not idle, not superseded), keyed by handle: a new dict the
        caller may keep (the manager returns it as it is)."""

    def delete(
        self, subject: str, session_id: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> bool:
        """Remove one session; False if it was not stored (a no-op)."""

    def delete_login(self, subject: str, session_id: str) -> int:
        """Remove every stored session of the login `session_id` belongs to
        (`policy.login_key`: a predecessor inside its grace, the session, its
        successor), reason DELETED; return how many. 0 if the session is not
        stored under `subject`."""

    def delete_login_by_handle(self, subject: str, handle: str) -> int:
        """`delete_login` of the subject's session whose handle is `handle`."""

    def delete_all(self, subject: str) -> int:
        """Remove every session of `subject`, superseded ones included; return
        how many were removed."""

    def delete_other_logins(self, subject: str, keep: str, now: int) -> int | None:
        """Remove every session of `subject` except those of the login `keep`
        (a session id) belongs to, reason DELETED; return how many. If `keep`
        is not stored under `subject` with a deadline (`policy.deadline`)
        after `now`, remove nothing and return None."""


class AsyncSessionStorage(Protocol):
    """`SessionStorage` with every method awaited (`AsyncRedisSessionStorage`)."""

    def insert(
        self, subject: str, session_id: str, metadata: SessionMetadata
    ) -> Awaitable[None]: ...

    def read(
        self, subject: str, session_id: str, now: int
    ) -> Awaitable[SessionMetadata | None]: ...

    def touch(
        self, subject: str, session_id: str, metadata: SessionMetadata, now: int
    ) -> Awaitable[None]: ...

    def renew(
        self,
        subject: str,
        session_id: str,
        grace_ends_at: int,
        renewed_by: str,
        new_session_id: str,
        new_metadata: SessionMetadata,
    ) -> Awaitable[str | None]: ...

    def read_all(self, subject: str, now: int) -> Awaitable[dict[str, SessionMetadata]]: ...

    def delete(
        self, subject: str, session_id: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> Awaitable[bool]: ...

    def delete_login(self, subject: str, session_id: str) -> Awaitable[int]: ...

    def delete_login_by_handle(self, subject: str, handle: str) -> Awaitable[int]: ...

    def delete_all(self, subject: str) -> Awaitable[int]: ...

    def delete_other_logins(self, subject: str, keep: str, now: int) -> Awaitable[int | None]: ...


@dataclass(frozen=True, slots=True)
class ReadRules:
    """What a manager tells a `JudgingStorage` about how to judge its reads:
    its renewal age and absolute timeout (`policy.read_verdict`), and
    whether its read hook is the default `check_same_device`. Only then may
    the storage apply the verdict itself (touch, or delete an idle session);
    under a custom hook it judges and writes nothing, and the manager
    finishes the read once its hook has passed."""

    renewal: int | None
    absolute: int | None
    checks_device: bool


class JudgingStorage(Protocol):
    """An optional capability: a storage that judges a read where the data
    is, in one round trip (`RedisSessionStorage`, whose read script mirrors
    `policy.read_verdict`). A manager uses `read_judged` instead of `read`
    when its storage has it; the in-memory storage does not (a read there
    is a dict lookup, and the manager judges)."""

    def read_judged(
        self,
        subject: str,
        session_id: str,
        now: int,
        rules: ReadRules,
        device: Device | None,
        renew_now: bool,
    ) -> tuple[Verdict, SessionMetadata | None]:
        """The verdict of a read at `now` (`policy.read_verdict`, with
        `renew_now` turning TOUCH into RENEW) and the session, or
        `(GONE, None)`. With `rules.checks_device`, `check_same_device`
        against `device` comes second in the read order (WRONG_DEVICE,
        None), and the verdict is carried out: TOUCH touched, IDLE deleted
        (listeners hear IDLE). Otherwise nothing is written."""
        ...


STORAGE_METHODS = (
    "insert",
    "read",
    "touch",
    "renew",
    "read_all",
    "delete",
    "delete_login",
    "delete_login_by_handle",
    "delete_all",
    "delete_other_logins",
)
"""The methods of both storage protocols."""


def storage_kind(storage: object) -> Literal["sync", "async"] | str:
    """ "sync" or "async" when `storage` has every method of `SessionStorage`
    or of `AsyncSessionStorage`, else why it has neither (for the error).

    A storage is async when its methods are coroutine functions. A sync
    storage that sets `never_blocks = True` (the in-memory one: no I/O, a
    lock held for microseconds) may also serve an async manager."""
    missing = [name for name in STORAGE_METHODS if not callable(getattr(storage, name, None))]
    if missing:
        return f"{type(storage).__name__} is not a session storage (no {', '.join(missing)})"
    coroutines = [inspect.iscoroutinefunction(getattr(storage, name)) for name in STORAGE_METHODS]
    if all(coroutines):
        return "async"
    if not any(coroutines):
        return "sync"
    return f"{type(storage).__name__} mixes sync and async methods"
