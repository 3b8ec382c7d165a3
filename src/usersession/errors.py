"""What can go wrong, as typed exceptions that carry a machine-readable code.

Every exception this package raises is a `SessionError` with an `ErrorCode`.
Messages name a session only by its handle (`UserSessionManager.hash`), never
by its id: exceptions end up in logs and error trackers, and an id there is a
credential anyone reading the log could use. Messages never contain the
subject either (it is often an e-mail address); an error about one subject's
session carries it as the `subject` attribute, for the caller only.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable reason of a `SessionError`.

    The first eight are the codes of `@thermopylae/lib.user-session` (npm),
    the TypeScript package this one reimplements, kept verbatim so that
    dashboards and clients written against it keep working.
    """

    USER_SESSION_NOT_FOUND = "USER_SESSION_NOT_FOUND"
    USER_SESSION_EXPIRED = "USER_SESSION_EXPIRED"
    FORBIDDEN_ACCESS_TO_USER_SESSION_FROM_DIFFERENT_DEVICE = (
        "FORBIDDEN_ACCESS_TO_USER_SESSION_FROM_DIFFERENT_DEVICE"
    )
    INVALID_SESSION_ID_LENGTH = "INVALID_SESSION_ID_LENGTH"
    INVALID_IDLE_TIMEOUT = "INVALID_IDLE_TIMEOUT"
    INVALID_RENEW_TIMEOUT = "INVALID_RENEW_TIMEOUT"
    INVALID_OLD_SESSION_AVAILABILITY_TIMEOUT_AFTER_RENEWAL = (
        "INVALID_OLD_SESSION_AVAILABILITY_TIMEOUT_AFTER_RENEWAL"
    )
    OLD_SESSION_AVAILABILITY_TIMEOUT_AFTER_RENEWAL_REQUIRED = (
        "OLD_SESSION_AVAILABILITY_TIMEOUT_AFTER_RENEWAL_REQUIRED"
    )
    # Ours.
    INVALID_TTL = "INVALID_TTL"
    INVALID_ABSOLUTE_TIMEOUT = "INVALID_ABSOLUTE_TIMEOUT"
    INVALID_SUBJECT = "INVALID_SUBJECT"
    INVALID_SESSION_ID = "INVALID_SESSION_ID"
    INVALID_HANDLE = "INVALID_HANDLE"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    INVALID_CLOCK = "INVALID_CLOCK"
    INVALID_OPTION = "INVALID_OPTION"
    STORAGE_FAILURE = "STORAGE_FAILURE"
    SESSION_LIMIT_REACHED = "SESSION_LIMIT_REACHED"
    SNAPSHOT_INVALID = "SNAPSHOT_INVALID"
    SNAPSHOT_UNSERIALIZABLE = "SNAPSHOT_UNSERIALIZABLE"
    SNAPSHOT_UNTRUSTED = "SNAPSHOT_UNTRUSTED"


class SessionError(Exception):
    """Base of every error this package raises; `.code` says which one.

    `subject` is the subject whose session the error is about, when there is
    one: it is never part of the message (`str(error)`), which ends up in logs.
    Errors survive `pickle` and `copy` with their class, code, message and
    subject (a worker process can raise one to its pool).
    """

    def __init__(self, code: ErrorCode, message: str, *, subject: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.subject = subject

    def __reduce__(self) -> tuple[object, ...]:
        # Exception's own reduce calls cls(*args), which lacks the code.
        return (_rebuild, (type(self), self.code, str(self), self.subject))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value}, {str(self)!r})"


def _rebuild(
    cls: type[SessionError], code: ErrorCode, message: str, subject: str | None
) -> SessionError:
    return cls(code, message, subject=subject)


class SessionNotFoundError(SessionError):
    """The session does not exist for this subject: never created, deleted,
    expired, or stored under another subject (which, to the caller, is the
    same thing). Code `USER_SESSION_NOT_FOUND`."""


class SessionExpiredError(SessionError):
    """The session sat unused for the idle timeout; it has now been deleted.
    Code `USER_SESSION_EXPIRED`."""


class SessionDeviceMismatchError(SessionError):
    """The session was read from a device other than the one that created it.
    Code `FORBIDDEN_ACCESS_TO_USER_SESSION_FROM_DIFFERENT_DEVICE`."""


class SessionStorageError(SessionError):
    """The storage failed (a server down, an id collision, ...). The operation
    either happened whole or not at all. Code `STORAGE_FAILURE`."""


class SessionLimitError(SessionError):
    """A capacity limit of the storage (`max_sessions`,
    `max_sessions_per_subject`) refused a new session, under
    `LimitPolicy.REFUSE`; nothing was stored or changed. Code
    `SESSION_LIMIT_REACHED`."""


class SnapshotError(SessionError):
    """A snapshot could not be used: the file is truncated, corrupted, of
    another format or version (code `SNAPSHOT_INVALID`; nothing was loaded),
    someone other than the process's user could have written it (code
    `SNAPSHOT_UNTRUSTED`; nothing was loaded, or written), or a session holds
    what a snapshot cannot represent exactly (code `SNAPSHOT_UNSERIALIZABLE`;
    nothing was written)."""


class InvalidOptionsError(SessionError, ValueError):
    """An option or an argument has a value that cannot be used. Also a
    `ValueError`, so code that catches the standard exception keeps working."""


class InvalidTypeError(InvalidOptionsError, TypeError):
    """An option or an argument has the wrong type. Both a `ValueError` (as an
    `InvalidOptionsError`) and a `TypeError`."""
