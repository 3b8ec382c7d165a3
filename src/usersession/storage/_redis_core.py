"""The half of the Redis storages that does no I/O: options, listeners, call
tokens, the arguments of each script call, and the translation of replies.

`RedisSessionStorage` and `AsyncRedisSessionStorage` each send what a
`_*_call` method builds and hand the reply to the matching `_after_*`
method, so the two cannot disagree about a key, a field or a reply.

Retries. redis-py resends a command whose reply was lost (by default 10
times, with backoff, on `ConnectionError` and `TimeoutError`), and the
server may already have run it. Every script is safe to run twice with the
same arguments: an insert finds its own call token on the session and
reports success; a read that deleted an idle session, `delete`, `logout`,
`revoke` and `delete_all` leave their reply under a per-call marker key
(`KeyLayout.call_key`, 15 s) that a second run returns instead of finding
nothing; `renew` finds its own claim; a touch never moves backwards.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from redis.exceptions import RedisClusterException, RedisError

from ..clock import Clock, check_clock, system_clock
from ..errors import ErrorCode, InvalidTypeError, SessionError, SessionStorageError
from ..policy import Verdict, deadline, is_active
from ..session import Device, SessionMetadata
from ._redis_records import (
    JsonSerializer,
    KeyLayout,
    Serializer,
    Value,
    as_str,
    corrupt,
    decode,
    decode_listed,
    device_key,
    static_field,
)
from .protocol import DeleteReason, Listener, ReadRules

_log = logging.getLogger("usersession")

WANT = ("0", "1")
"""Script flag: whether to return what a delete removed (only for listeners)."""

LIST_ATTEMPTS = 8
"""How often a subject-wide delete lists the index again when it changed
between the listing and the script (a session inserted or renewed meanwhile)."""

# The read script's verdict codes (lua/read.lua), by position.
_VERDICTS = (
    Verdict.GONE,
    Verdict.GRACE,
    Verdict.IDLE,
    Verdict.RENEW,
    Verdict.TOUCH,
    Verdict.WRONG_DEVICE,
)
_CORRUPT = 6
_PEEKED = 7
_NEEDS_INDEX = -3
_INDEX_CHANGED = -2

_cores: weakref.WeakSet[RedisStorageCore] = weakref.WeakSet()


def _new_tokens_after_fork() -> None:
    # A forked worker must not reuse its parent's call tokens: a marker of
    # the parent's would answer the child's call.
    for core in list(_cores):
        core._reseed()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_tokens_after_fork)


@contextmanager
def redis_errors(operation: str, subject: str, handle: str | None = None) -> Iterator[None]:
    """Turn any failure of the client into `SessionStorageError` naming the
    operation and the session by handle; the subject is its `subject`
    attribute, never in the message. (Nothing sent to Redis contains a raw
    session id, so neither can the chained error.)

    Besides `RedisError` this catches what clients raise outside it:
    `RedisClusterException` (not a `RedisError`: a cluster that cannot be
    reached), an `OSError` from a socket, and the `AttributeError`,
    `IndexError`, `KeyError` or `TypeError` an asyncio `RedisCluster` raises
    from half-initialised internals after a failed first connection."""
    try:
        yield
    except SessionError:
        raise
    except (
        RedisError,
        RedisClusterException,
        OSError,
        AttributeError,
        IndexError,
        KeyError,
        TypeError,
    ) as error:
        session = " a subject's sessions" if handle is None else f" session '{handle}'"
        raise SessionStorageError(
            ErrorCode.STORAGE_FAILURE,
            f"Redis failed to {operation}{session}: {type(error).__name__}: {error}",
            subject=subject,
        ) from error


def taken(subject: str, handle: str) -> SessionStorageError:
    """The error for an insert of a session that is stored already."""
    return SessionStorageError(
        ErrorCode.STORAGE_FAILURE, f"Session '{handle}' is already stored.", subject=subject
    )


def index_changed(subject: str) -> SessionStorageError:
    """The error for a subject-wide delete whose index never held still."""
    return SessionStorageError(
        ErrorCode.STORAGE_FAILURE,
        f"Redis failed to delete a subject's sessions: its index changed "
        f"{LIST_ATTEMPTS} times while they were being deleted.",
        subject=subject,
    )


class RedisStorageCore:
    """Options, listeners, call tokens and the reply handling of both Redis
    storages. Subclasses send what the `_*_call` methods build and pass the
    replies to the `_after_*` methods; everything else lives here."""

    __weakref__: object

    def __init__(
        self,
        *,
        key_prefix: str = "usersession",
        serializer: Serializer | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._layout = KeyLayout(key_prefix)
        self._serializer: Serializer = JsonSerializer() if serializer is None else serializer
        self.clock: Clock = system_clock if clock is None else check_clock(clock)
        self._listeners: list[Listener] = []
        self._reseed()
        _cores.add(self)

    def _reseed(self) -> None:
        # Tokens are "<random>.<counter>": unique per call within this
        # process, and across processes by the random part (redrawn after a
        # fork). A counter costs far less per call than a random draw.
        self._token_prefix = secrets.token_hex(8) + "."
        self._counter = itertools.count()

    def _token(self) -> str:
        """A token no other call carries (thread-safe: `next` on a count is atomic)."""
        return f"{self._token_prefix}{next(self._counter):x}"

    @property
    def key_prefix(self) -> str:
        """The prefix of every key this storage writes."""
        return self._layout.prefix

    @property
    def layout(self) -> KeyLayout:
        """The key names (for operators and tests)."""
        return self._layout

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(subject, handle, metadata, reason)` after each removal
        this storage carries out itself: `delete` (reason as the manager gives
        it: DELETED, or IDLE for an idle session found by a read), and
        `delete_login` (`logout`, `revoke`), `delete_all` and
        `delete_other_logins` (DELETED). The second argument is the
        session's handle, not its id: Redis keeps no raw ids. Sessions that
        Redis expires on its own (absolute expiry, idle deadline, end of a
        renewal grace), and dead index members a script drops, are removed
        silently: no event. An exception a listener raises is logged and
        swallowed."""
        if not callable(listener):
            raise InvalidTypeError(ErrorCode.INVALID_OPTION, "A listener must be callable.")
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling `listener`. ValueError if it was not added."""
        self._listeners.remove(listener)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_prefix={self._layout.prefix!r})"

    # -- calls -------------------------------------------------------------------

    def _insert_call(
        self, subject: str, handle: str, metadata: SessionMetadata
    ) -> tuple[list[str], list[bytes | str | int]]:
        """INSERT: the session is stored as of its `accessed_at` (a new
        session's `created_at`: the manager's `now`)."""
        tag = self._layout.subject_tag(subject)
        metadata._subject = subject
        # Few arguments: redis-py's asyncio client packs each in Python.
        args: list[bytes | str | int] = [
            metadata._accessed_at,
            deadline(metadata)[0],
            self._token(),
            self._serializer.dumps(metadata),
            static_field(metadata),
        ]
        if metadata._login is not None:
            args.append(metadata._login)
        return [f"{tag}:session:{handle}", tag + ":index"], args

    def _read_call(
        self,
        subject: str,
        handle: str,
        now: int,
        rules: ReadRules | None,
        device: Device | None,
        renew_now: bool,
    ) -> tuple[list[str], list[bytes | str | int]]:
        """READ: `rules` None peeks (`read`); else the verdict, applied in
        the script when `rules.checks_device`."""
        tag = self._layout.subject_tag(subject)
        keys = [f"{tag}:session:{handle}", tag + ":index", f"{tag}:call:{self._token()}"]
        if rules is None:
            return keys, [now, "p - - 0"]
        renewal, absolute, checks = rules.renewal, rules.absolute, rules.checks_device
        # Few arguments: redis-py's asyncio client packs each in Python.
        flags = (
            f"{'a' if checks else 'j'} {'-' if renewal is None else renewal} "
            f"{'-' if absolute is None else absolute} {WANT[renew_now]}"
        )
        return keys, [now, flags, device_key(device) if checks else b""]

    def _touch_call(
        self, subject: str, handle: str, metadata: SessionMetadata, now: int
    ) -> tuple[list[str], list[str | int]]:
        """TOUCH: sets `accessed_at` on `metadata` too."""
        tag = self._layout.subject_tag(subject)
        metadata._accessed_at = max(metadata._accessed_at, now)
        new_deadline = "" if metadata._idle is None else str(deadline(metadata)[0])
        return [f"{tag}:session:{handle}", tag + ":index"], [now, new_deadline]

    def _renew_call(
        self,
        subject: str,
        handle: str,
        grace_ends_at: int,
        renewed_by: str,
        new_handle: str,
        new_metadata: SessionMetadata,
    ) -> tuple[list[str], list[bytes | str | int]]:
        tag = self._layout.subject_tag(subject)
        keys = [f"{tag}:session:{handle}", f"{tag}:session:{new_handle}", tag + ":index"]
        new_metadata._subject = subject
        login = new_metadata._login
        args: list[bytes | str | int] = [
            grace_ends_at,
            renewed_by,
            new_metadata._created_at,  # the manager's `now`
            deadline(new_metadata)[0],
            handle if login is None else login,
            self._serializer.dumps(new_metadata),
            static_field(new_metadata),
        ]
        return keys, args

    def _delete_call(self, subject: str, handle: str) -> tuple[list[str], list[str]]:
        tag = self._layout.subject_tag(subject)
        keys = [f"{tag}:session:{handle}", tag + ":index", f"{tag}:call:{self._token()}"]
        return keys, [WANT[bool(self._listeners)]]

    def _logout_call(self, subject: str, handle: str, token: str) -> tuple[list[str], list[str]]:
        tag = self._layout.subject_tag(subject)
        keys = [f"{tag}:session:{handle}", tag + ":index", f"{tag}:call:{token}"]
        return keys, [WANT[bool(self._listeners)]]

    def _delete_sessions_call(
        self,
        subject: str,
        mode: str,
        target: str,
        now: int,
        handles: Sequence[bytes | str],
        token: str,
    ) -> tuple[list[str], list[str | int]]:
        """DELETE_SESSIONS over `handles`, as just listed from the index."""
        tag = self._layout.subject_tag(subject)
        prefix = tag + ":session:"
        keys = [tag + ":index", f"{tag}:call:{token}"]
        keys += [prefix + as_str(handle) for handle in handles]
        return keys, [mode, WANT[bool(self._listeners)], target, now]

    def _read_sessions_call(self, subject: str, handles: Sequence[bytes | str]) -> list[str]:
        prefix = self._layout.session_key_prefix(subject)
        return [prefix + as_str(handle) for handle in handles]

    # -- replies -----------------------------------------------------------------

    def _after_insert(self, subject: str, handle: str, stored: object) -> None:
        if not stored:
            raise taken(subject, handle)

    def _after_peek(
        self, subject: str, handle: str, reply: Sequence[Value]
    ) -> SessionMetadata | None:
        if reply[0] != _PEEKED:
            return None
        return decode(self._serializer, subject, handle, reply[1:])

    def _after_read(
        self, subject: str, handle: str, reply: Sequence[Value], applied: bool
    ) -> tuple[Verdict, SessionMetadata | None]:
        code = reply[0]
        if not isinstance(code, int) or not 0 <= code < _CORRUPT:
            raise corrupt(subject, handle, "a time field is not a number")
        verdict = _VERDICTS[code]
        if len(reply) == 1:
            return verdict, None
        metadata = decode(self._serializer, subject, handle, reply[1:])
        if verdict is Verdict.IDLE and applied and self._listeners:
            self._emit(subject, handle, metadata, DeleteReason.IDLE)
        return verdict, metadata

    @staticmethod
    def _after_renew(
        subject: str, handle: str, new_handle: str, reply: Sequence[Value]
    ) -> str | None:
        outcome = reply[0]
        if outcome == 0:
            return None
        if outcome == 3:
            raise taken(subject, new_handle)
        renewed_by = reply[1]
        if not isinstance(renewed_by, bytes | str):
            raise corrupt(subject, handle, "renewed_by is missing")
        return as_str(renewed_by)

    def _after_read_all(
        self, subject: str, reply: Sequence[Value], now: int
    ) -> dict[str, SessionMetadata]:
        listed = decode_listed(self._serializer, subject, reply)
        return {handle: metadata for handle, metadata in listed if is_active(metadata, now)}

    def _after_delete(
        self, subject: str, handle: str, reply: Sequence[Value], reason: DeleteReason
    ) -> bool:
        if not reply:
            return False
        if len(reply) > 1 and self._listeners:
            try:
                metadata = decode(self._serializer, subject, handle, reply[1:])
            except SessionStorageError as error:
                _log.error("usersession: %s", error)
            else:
                self._emit(subject, handle, metadata, reason)
        return True

    @staticmethod
    def _login_to_list(reply: Sequence[Value]) -> str | None:
        """The login a LOGOUT reply says must be deleted by listing the
        index (a renewed login), or None if the reply is final."""
        if reply[0] != _NEEDS_INDEX:
            return None
        login = reply[1]
        return as_str(login) if isinstance(login, bytes | str) else ""

    @staticmethod
    def _index_changed(reply: Sequence[Value]) -> bool:
        return reply[0] == _INDEX_CHANGED

    def _after_delete_all(self, subject: str, reply: Sequence[Value]) -> int:
        """The count from a reply of LOGOUT or DELETE_SESSIONS (whose -1
        means "keep is not live": -1 is returned), after telling the
        listeners."""
        count = reply[0]
        if len(reply) > 1 and self._listeners:
            for handle, metadata in decode_listed(self._serializer, subject, reply, 1):
                self._emit(subject, handle, metadata, DeleteReason.DELETED)
        return int(count) if count is not None else 0

    def _emit(
        self, subject: str, handle: str, metadata: SessionMetadata, reason: DeleteReason
    ) -> None:
        for listener in list(self._listeners):
            try:
                listener(subject, handle, metadata, reason)
            except Exception:
                _log.exception(
                    "usersession: delete listener %r failed for session '%s' (%s)",
                    listener,
                    handle,
                    reason.name,
                )
