"""The session manager: the policy applied to a storage.

`_ManagerCore` holds everything that is not I/O: options, ids, argument
checks, the judgement of a read, the renewal bookkeeping, the errors. The
public `UserSessionManager` (and the async twin in `async_manager`) only
sequence the storage calls around it, so no rule is written twice.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from ._build import mypyc_attr
from .clock import Clock, check_clock, system_clock
from .errors import (
    ErrorCode,
    InvalidOptionsError,
    InvalidTypeError,
    SessionDeviceMismatchError,
    SessionExpiredError,
    SessionLimitError,
    SessionNotFoundError,
    SessionStorageError,
)
from .ids import IdGenerator, session_handle
from .options import (
    Timeouts,
    check_context,
    check_handle,
    check_new_subject,
    check_session_id,
    check_subject,
    check_ttl,
    validate_options,
)
from .policy import (
    Verdict,
    grace_end,
    is_active,
    new_metadata,
    read_verdict,
    renewed_metadata,
)
from .session import SessionContext, SessionMetadata
from .storage.protocol import (
    AsyncSessionStorage,
    DeleteReason,
    ReadRules,
    SessionStorage,
    storage_kind,
)

_log = logging.getLogger("usersession")

ReadHook = Callable[[str, str, SessionContext, SessionMetadata], None]
"""`read_hook(subject, session_id, context, metadata)`: raise to refuse a read."""


@dataclass(frozen=True, slots=True)
class RenewHooks:
    """The renewal callbacks of `@thermopylae/lib.user-session`; each receives
    the old session id.

    - `on_already_renewed_here`: a read found the session already renewed by
      this manager (another request of this process won, or the client is
      still using the old id inside its grace);
    - `on_already_renewed_elsewhere`: the same, renewed by another manager
      sharing the storage (another process or machine);
    - `on_old_session_delete_failure`: the storage failed while superseding the
      old session; also receives the exception, which is then raised. (Our
      storages end the grace themselves, so this is the only failure left.)
    """

    on_already_renewed_here: Callable[[str], None] | None = None
    on_already_renewed_elsewhere: Callable[[str], None] | None = None
    on_old_session_delete_failure: Callable[[str, Exception], None] | None = None

    def __post_init__(self) -> None:
        for name in (
            "on_already_renewed_here",
            "on_already_renewed_elsewhere",
            "on_old_session_delete_failure",
        ):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise InvalidTypeError(
                    ErrorCode.INVALID_OPTION, f"{name} must be callable or None."
                )

    def __reduce__(self) -> tuple[type[RenewHooks], tuple[object, ...]]:
        # Rebuilt through __init__: the compiled (mypyc) class cannot be
        # restored field by field as a frozen dataclass otherwise is.
        return (
            RenewHooks,
            (
                self.on_already_renewed_here,
                self.on_already_renewed_elsewhere,
                self.on_old_session_delete_failure,
            ),
        )


def check_same_device(
    subject: str, session_id: str, context: SessionContext, metadata: SessionMetadata
) -> None:
    """The default read hook: a session created with a device is bound to it.

    A read from a context naming another device (name or type differ), or
    naming no device at all, is refused with `SessionDeviceMismatchError`:
    the binding fails closed. A session created without a device accepts any
    context. (`check_same_device_if_known` is the lenient rule of
    `@thermopylae/lib.user-session`.)
    """
    stored = metadata._device
    if stored is None:
        return
    device = context.device
    # Fields compared directly: the dataclass __eq__ is one more Python call per read.
    if device is not stored and (
        device is None or device.name != stored.name or device.type != stored.type
    ):
        raise _device_mismatch(subject, session_id)


def check_same_device_if_known(
    subject: str, session_id: str, context: SessionContext, metadata: SessionMetadata
) -> None:
    """The read hook of `@thermopylae/lib.user-session`: devices are compared
    only when both the session and the context name one, so a context
    without a device reads any session. Pass it as `read_hook=` to keep that
    rule; the default, `check_same_device`, fails closed."""
    stored = metadata._device
    device = context.device
    if (
        device is not None
        and stored is not None
        and device is not stored
        and (device.name != stored.name or device.type != stored.type)
    ):
        raise _device_mismatch(subject, session_id)


def _device_mismatch(subject: str, session_id: str) -> SessionDeviceMismatchError:
    return SessionDeviceMismatchError(
        ErrorCode.FORBIDDEN_ACCESS_TO_USER_SESSION_FROM_DIFFERENT_DEVICE,
        f"Session '{session_handle(session_id)}' was created from another device.",
        subject=subject,
    )


StorageT = TypeVar("StorageT")

_process_token = secrets.token_hex(4)
"""Half of every manager's token, drawn again in a forked child: a forked
worker is another manager, its renewals are not its parent's. (Re-tokening
each manager would need a registry of weak references, which compiled
(mypyc) classes do not support.)"""


def _new_process_token_after_fork() -> None:
    global _process_token
    _process_token = secrets.token_hex(4)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_process_token_after_fork)


class _ManagerToken:
    """A manager's own half of its token. A copy or an unpickled manager is
    another manager, so it draws its own (`__reduce__`) rather than tell the
    original's renewals for its own."""

    def __init__(self) -> None:
        self.value = secrets.token_hex(4)

    def __reduce__(self) -> tuple[type[_ManagerToken], tuple[()]]:
        return (_ManagerToken, ())


# Compiled, it can still be subclassed by interpreted classes (the async
# manager is one), as the pure class can.
@mypyc_attr(allow_interpreted_subclasses=True)
class _ManagerCore(Generic[StorageT]):
    """State and decisions shared by the sync and the async manager."""

    def __init__(
        self,
        storage: SessionStorage | AsyncSessionStorage,
        *,
        session_ttl: int,
        id_bytes: int = 24,
        timeouts: Timeouts | None = None,
        read_hook: ReadHook | None = None,
        renew_hooks: RenewHooks | None = None,
        clock: Clock | None = None,
    ) -> None:
        options = validate_options(session_ttl, id_bytes, timeouts)
        # Refused here, before anything can be stored through it.
        self._storage: StorageT = self._adopt(storage)
        self._given_storage = storage
        self._session_ttl = options.session_ttl
        self._idle = options.idle
        self._renewal = options.renewal
        self._renewal_grace = options.renewal_grace
        self._absolute = options.absolute
        self._read_hook = check_same_device if read_hook is None else read_hook
        self._renew_hooks = RenewHooks() if renew_hooks is None else renew_hooks
        if not callable(self._read_hook):
            raise InvalidTypeError(ErrorCode.INVALID_OPTION, "read_hook must be callable.")
        if not isinstance(self._renew_hooks, RenewHooks):
            raise InvalidTypeError(ErrorCode.INVALID_OPTION, "renew_hooks must be a RenewHooks.")
        # A storage that judges reads where the data is (Redis: one round
        # trip) gets the rules once; the default hook it may apply itself.
        self._rules = ReadRules(self._renewal, self._absolute, self._read_hook is check_same_device)
        judged = getattr(self._storage, "read_judged", None)
        self._judged: Any = judged if callable(judged) else None
        if clock is None:
            clock = getattr(storage, "clock", None) or system_clock
        self._clock: Clock = check_clock(clock)
        self._ids = IdGenerator(options.id_bytes)
        # A renewal is claimed as "<token>:<random>": the token tells renewals
        # made here from those made elsewhere, the random part tells this call
        # from every other (a counter would repeat in a forked child).
        self._own_token = _ManagerToken()

    def _adopt(self, storage: object) -> StorageT:
        """The storage the shell will call, or `InvalidTypeError` for one it
        cannot drive (each shell says which it can)."""
        raise NotImplementedError

    @staticmethod
    def hash(session_id: str) -> str:
        """The session's handle (`ids.session_handle`), safe to log and to show."""
        return session_handle(session_id)

    @property
    def _token(self) -> str:
        """This manager in this process: the process's half and its own."""
        return _process_token + self._own_token.value

    @property
    def timeouts(self) -> Timeouts:
        """The timeouts in force."""
        return Timeouts(self._idle, self._renewal, self._renewal_grace, self._absolute)

    @property
    def session_ttl(self) -> int:
        """The default lifetime of a new session, in seconds."""
        return self._session_ttl

    # -- create ----------------------------------------------------------------

    def _new_session(
        self, subject: str, context: SessionContext, ttl: int | None
    ) -> tuple[str, SessionMetadata]:
        """A new id and the metadata of a new login (its `subject` is the
        subject as storages must keep it: an exact str)."""
        # The cheap test covers every good call with an ASCII subject (isascii
        # reads a flag); the checks name the bad one.
        if (
            type(subject) is not str
            or not subject.isascii()
            or not subject
            or type(context) is not SessionContext
        ):
            subject = check_new_subject(subject)
            check_context(context)
        ttl = self._session_ttl if ttl is None else check_ttl(ttl)
        metadata = new_metadata(subject, context, self._clock(), ttl, self._idle, self._absolute)
        return self._ids.new_id(), metadata

    # -- read ------------------------------------------------------------------

    @staticmethod
    def _check_read(subject: str, session_id: object, context: object) -> str:
        """The subject as storages keep it, after checking the arguments."""
        # The cheap test covers every good call; the checks name the bad one.
        if (
            type(subject) is not str
            or not subject
            or type(session_id) is not str
            or type(context) is not SessionContext
        ):
            subject = check_subject(subject)
            check_session_id(session_id)
            check_context(context)
        return subject

    @classmethod
    def _check_renew(
        cls, subject: str, session_id: object, metadata: object, context: object
    ) -> str:
        subject = cls._check_read(subject, session_id, context)
        if not isinstance(metadata, SessionMetadata):
            raise InvalidTypeError(
                ErrorCode.INVALID_OPTION,
                f"metadata must be the SessionMetadata a read returned, "
                f"not {type(metadata).__name__}.",
            )
        return subject

    def _judge(
        self,
        subject: str,
        session_id: str,
        context: SessionContext,
        metadata: SessionMetadata,
        now: int,
        renew_now: bool = False,
    ) -> Verdict:
        """Steps 1-3 of a read of a stored session: gone, the read hook, the
        grace. Raises or returns what the shell must do next (GRACE, IDLE,
        RENEW or TOUCH)."""
        verdict = read_verdict(metadata, now, self._renewal, self._absolute)
        if renew_now and verdict is Verdict.TOUCH:
            # An explicit renew() renews whatever the age (even one that
            # another host's clock makes look a second younger than 0).
            verdict = Verdict.RENEW
        if verdict is Verdict.GONE:
            raise self._not_found(session_id, subject)
        self._read_hook(subject, session_id, context, metadata)
        if verdict is Verdict.GRACE:
            self._already_renewed(session_id, metadata._renewed_by)
        return verdict

    def _settle(
        self,
        subject: str,
        session_id: str,
        context: SessionContext,
        metadata: SessionMetadata | None,
        verdict: Verdict,
    ) -> SessionMetadata:
        """Steps 1-3 of a read that a `JudgingStorage` judged: raise for
        GONE and WRONG_DEVICE, run a custom read hook (the storage applied
        the default one), tell the renew hooks of a GRACE. Returns the
        session; the verdict stands."""
        if verdict is Verdict.WRONG_DEVICE:
            raise _device_mismatch(subject, session_id)
        if verdict is Verdict.GONE or metadata is None:
            raise self._not_found(session_id, subject)
        if not self._rules.checks_device:
            self._read_hook(subject, session_id, context, metadata)
        if verdict is Verdict.GRACE:
            self._already_renewed(session_id, metadata._renewed_by)
        return metadata

    def _expired(self, session_id: str, subject: str) -> SessionExpiredError:
        handle = session_handle(session_id)
        _log.debug("usersession: session '%s' expired for being idle", handle)
        return SessionExpiredError(
            ErrorCode.USER_SESSION_EXPIRED,
            f"Session '{handle}' expired for being idle.",
            subject=subject,
        )

    @staticmethod
    def _not_found(session_id: str, subject: str) -> SessionNotFoundError:
        return SessionNotFoundError(
            ErrorCode.USER_SESSION_NOT_FOUND,
            f"Session '{session_handle(session_id)}' doesn't exist.",
            subject=subject,
        )

    def _listed(self, listed: dict[str, SessionMetadata], now: int) -> dict[str, SessionMetadata]:
        """`read_all`'s answer from what the storage listed (a new dict,
        returned as it is): the storage judged each session by itself; the
        absolute timeout is this manager's."""
        absolute = self._absolute
        if absolute is None:
            return listed
        return {handle: meta for handle, meta in listed.items() if is_active(meta, now, absolute)}

    # -- renew -----------------------------------------------------------------

    def _successor(
        self, session_id: str, metadata: SessionMetadata, context: SessionContext, now: int
    ) -> tuple[str, SessionMetadata, int, str]:
        """The new id, the new metadata, the old session's grace end and this
        call's claim on the renewal."""
        if self._renewal_grace is None:
            raise InvalidOptionsError(
                ErrorCode.OLD_SESSION_AVAILABILITY_TIMEOUT_AFTER_RENEWAL_REQUIRED,
                "Renewing needs Timeouts.renewal and renewal_grace.",
            )
        grace_ends_at = grace_end(now, self._renewal_grace)
        # The random part is cut from an id drawn from the pool (and so never
        # handed out): the same randomness as secrets.token_hex, without a
        # system call per renewal (0.68 us of one, timeit).
        claim = f"{self._token}:{self._ids.new_id()[:16]}"
        handle = metadata._handle
        if handle is None:
            handle = session_handle(session_id)
        successor = renewed_metadata(metadata, handle, context, now, self._absolute)
        return self._ids.new_id(), successor, grace_ends_at, claim

    def _renewal_outcome(
        self, session_id: str, claim: str, renewed_by: str | None, new_id: str
    ) -> str | None:
        """The new id if this call's claim won the renewal; else tell the
        hooks and return None."""
        if renewed_by == claim:
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug(
                    "usersession: session '%s' renewed as '%s'",
                    session_handle(session_id),
                    session_handle(new_id),
                )
            return new_id
        if renewed_by is not None:
            self._already_renewed(session_id, renewed_by)
        return None

    def _already_renewed(self, session_id: str, renewed_by: str | None) -> None:
        hooks = self._renew_hooks
        here = renewed_by is not None and renewed_by.partition(":")[0] == self._token
        hook = hooks.on_already_renewed_here if here else hooks.on_already_renewed_elsewhere
        if hook is not None:
            hook(session_id)

    def _renewal_failed(self, session_id: str, error: SessionStorageError) -> None:
        hook = self._renew_hooks.on_old_session_delete_failure
        if hook is not None:
            hook(session_id, error)

    @staticmethod
    def _renewal_refused(session_id: str) -> None:
        # A read stays a read: the session is valid, only its successor did
        # not fit. The storage counted the refusal; the next read retries.
        _log.debug(
            "usersession: renewal of session '%s' refused by a storage limit",
            session_handle(session_id),
        )

    # -- logins ----------------------------------------------------------------

    @staticmethod
    def _check_delete(subject: str, session_id: object) -> str:
        subject = check_subject(subject)
        check_session_id(session_id)
        return subject

    @staticmethod
    def _check_revoke(subject: str, handle: object) -> str:
        subject = check_subject(subject)
        check_handle(handle)
        return subject

    def _kept(self, removed: int | None, keep: str, subject: str) -> int:
        """`delete_all(keep=)`'s answer: the count, or not found if the
        storage found `keep` dead (and removed nothing)."""
        if removed is None:
            raise self._not_found(keep, subject)
        return removed


@mypyc_attr(allow_interpreted_subclasses=True)
class UserSessionManager(_ManagerCore[SessionStorage]):
    """Creates, reads, renews and ends the sessions of subjects (user ids).

    >>> from usersession import InMemorySessionStorage, SessionContext
    >>> manager = UserSessionManager(InMemorySessionStorage(), session_ttl=3600)
    >>> session_id = manager.create("uid1", SessionContext(ip="127.0.0.1"))
    >>> metadata, renewed_id = manager.read("uid1", session_id, SessionContext(ip="127.0.0.1"))

    Options are checked here (`InvalidOptionsError`): `session_ttl > 0`,
    `0 < idle, renewal, renewal_grace < session_ttl`, `renewal_grace` required
    with `renewal`, `absolute > 0`, every duration at most 100 years,
    `id_bytes >= 16`. A storage this manager cannot drive (an async one, or
    anything that is not a `SessionStorage`) raises `InvalidTypeError`. The
    clock defaults to the storage's. Every method costs O(1) storage
    operations; `read_all`, `delete_all`, `revoke` and the `logout` of a
    renewed login cost O(sessions of the subject).
    """

    def _adopt(self, storage: object) -> SessionStorage:
        kind = storage_kind(storage)
        if kind == "sync":
            return cast(SessionStorage, storage)
        if kind == "async":
            raise InvalidTypeError(
                ErrorCode.INVALID_OPTION,
                f"{type(storage).__name__} is an async storage: use it with "
                f"AsyncUserSessionManager.",
            )
        raise InvalidTypeError(ErrorCode.INVALID_OPTION, f"{kind}.")

    @property
    def storage(self) -> SessionStorage:
        """The storage this manager works on."""
        return self._storage

    def create(self, subject: str, context: SessionContext, ttl: int | None = None) -> str:
        """Start a login for `subject`; return its first session's id.

        `ttl` (seconds, > 0) overrides `session_ttl` for this session and may
        exceed it (`Timeouts.absolute` still caps it). Bad arguments raise
        `InvalidOptionsError` and store nothing.
        """
        session_id, metadata = self._new_session(subject, context, ttl)
        self._storage.insert(metadata._subject, session_id, metadata)
        return session_id

    def read(
        self, subject: str, session_id: str, context: SessionContext
    ) -> tuple[SessionMetadata, str | None]:
        """Read a session on behalf of `context`: `(metadata, renewed_id)`.

        `renewed_id` is the new session id when this read renewed the session
        (send it to the client: the old id works only for the grace period),
        else None. Raises `SessionNotFoundError` (unknown, deleted, expired,
        past the login's absolute timeout, or another subject's),
        `SessionDeviceMismatchError` (default read hook), `SessionExpiredError`
        (idle; the session is deleted). A renewal that a storage limit refuses
        does not fail the read: the session is touched and returned, and a
        later read tries again.
        """
        return self._read(subject, session_id, context, renew_now=False)

    def renew(
        self, subject: str, session_id: str, metadata: SessionMetadata, context: SessionContext
    ) -> str | None:
        """Replace a session by a new one now, whatever its age; return the new
        id, or None if it was renewed already (by anyone). The old session
        stays readable for `renewal_grace` seconds.

        The session is judged as a read judges it (not found, read hook, idle:
        the same errors), and the successor is built from the stored session;
        `metadata` is checked but only kept for the original's signature. A
        storage limit that refuses the successor raises `SessionLimitError`.
        """
        subject = self._check_renew(subject, session_id, metadata, context)
        return self._read(subject, session_id, context, renew_now=True)[1]

    def _read(
        self, subject: str, session_id: str, context: SessionContext, *, renew_now: bool
    ) -> tuple[SessionMetadata, str | None]:
        subject = self._check_read(subject, session_id, context)
        now = self._clock()
        storage = self._storage
        judged = self._judged
        if judged is None:
            metadata = storage.read(subject, session_id, now)
            if metadata is None:
                raise self._not_found(session_id, subject)
            verdict = self._judge(subject, session_id, context, metadata, now, renew_now)
            if verdict is Verdict.TOUCH:
                storage.touch(subject, session_id, metadata, now)
                return metadata, None
            applied = False
        else:
            # One round trip: the storage judged, and applied what it could.
            verdict, found = judged(
                subject, session_id, now, self._rules, context.device, renew_now
            )
            metadata = self._settle(subject, session_id, context, found, verdict)
            applied = self._rules.checks_device
            if verdict is Verdict.TOUCH:
                if not applied:
                    storage.touch(subject, session_id, metadata, now)
                return metadata, None
        if verdict is Verdict.GRACE:
            return metadata, None
        if verdict is Verdict.IDLE:
            if not applied:
                storage.delete(subject, session_id, DeleteReason.IDLE)
            raise self._expired(session_id, subject)
        try:
            return metadata, self._renew(subject, session_id, metadata, context, now)
        except SessionLimitError:
            if renew_now:
                raise
            self._renewal_refused(session_id)
            storage.touch(subject, session_id, metadata, now)
            return metadata, None

    def _renew(
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
            renewed_by = self._storage.renew(
                subject, session_id, grace_ends_at, claim, new_id, successor
            )
        except SessionStorageError as error:
            self._renewal_failed(session_id, error)
            raise
        return self._renewal_outcome(session_id, claim, renewed_by, new_id)

    def read_all(self, subject: str) -> Mapping[str, SessionMetadata]:
        """The subject's active sessions, keyed by handle (not by id: a
        devices page must never hold another device's credential). One per
        login: a session superseded by a renewal is not listed."""
        subject = check_subject(subject)
        now = self._clock()
        return self._listed(self._storage.read_all(subject, now), now)

    def delete(self, subject: str, session_id: str) -> None:
        """End one session (not its login: see `logout`). Unknown, foreign or
        already deleted ids: no-op."""
        subject = self._check_delete(subject, session_id)
        self._storage.delete(subject, session_id)

    def logout(self, subject: str, session_id: str) -> int:
        """End the login `session_id` belongs to: every stored session of it
        (a predecessor inside its renewal grace, the session, its successor),
        each with reason `DELETED`. Returns how many were removed; unknown or
        foreign ids remove nothing and return 0."""
        subject = self._check_delete(subject, session_id)
        return self._storage.delete_login(subject, session_id)

    def revoke(self, subject: str, handle: str) -> bool:
        """End the login of the session of `subject` that `handle` names ("log
        out that device"), its other ids included; return whether anything
        was removed."""
        subject = self._check_revoke(subject, handle)
        return self._storage.delete_login_by_handle(subject, handle) > 0

    def delete_all(self, subject: str, *, keep: str | None = None) -> int:
        """End every session of `subject` (superseded ones included); return
        how many were removed.

        With `keep` (a session id), end every *other* login and keep the login
        of `keep` ("sign out of all other sessions", after a password change).
        A `keep` that is not a live session of `subject` raises
        `SessionNotFoundError` and removes nothing.
        """
        subject = check_subject(subject)
        if keep is None:
            return self._storage.delete_all(subject)
        check_session_id(keep)
        removed = self._storage.delete_other_logins(subject, keep, self._clock())
        return self._kept(removed, keep, subject)
