"""Options and arguments: what is accepted, and the error for what is not.

Checks run once, at the edge (manager construction, the start of each public
call), so the policy and the storages can trust what they are given. Each
check is O(1).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ErrorCode, InvalidOptionsError, InvalidTypeError
from .session import SessionContext, exact_text

MIN_ID_BYTES = 16
"""Fewer random bytes than this (128 bits) make ids guessable at scale: refused."""

MAX_SECONDS = 100 * 365 * 86_400
"""The longest TTL or timeout accepted: 100 years of seconds. Longer is a
bug (a timestamp passed as a duration, a unit mistake), and beyond about
1e14 s Redis cannot set the expiry at all, so it is refused everywhere."""

MAX_ID_BYTES = 1024
"""More random bytes per id than this (8192 bits) is a misconfiguration, not
security: refused, so that an id pool refill always yields many ids."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The optional timeouts of a manager, in seconds.

    - `idle`: a session unread for this long is over (deleted on the next read
      or sweep).
    - `renewal`: a session this old is replaced by a new one on its next read.
    - `renewal_grace`: how long the replaced session stays readable, so that
      requests already in flight with the old id still succeed. Required when
      `renewal` is set; ignored otherwise (as in `@thermopylae/lib.user-session`).
    - `absolute`: how long a login lasts, however often it is renewed (OWASP's
      absolute timeout): no session of a login is readable at or after
      `authenticated_at + absolute`. Unset, each renewal gets a full lifetime
      again, so an active user stays logged in for as long as they are active.

    Every value is an int of seconds, > 0 and at most `MAX_SECONDS`.
    """

    idle: int | None = None
    renewal: int | None = None
    renewal_grace: int | None = None
    absolute: int | None = None


@dataclass(frozen=True, slots=True)
class ManagerOptions:
    """A manager's options after validation: what the manager shells hold."""

    session_ttl: int
    id_bytes: int
    idle: int | None
    renewal: int | None
    renewal_grace: int | None
    absolute: int | None


def validate_options(session_ttl: object, id_bytes: object, timeouts: object) -> ManagerOptions:
    """Check a manager's options (docs/behaviour.md, "Options"); return them
    typed, or raise `InvalidOptionsError` naming the first one that is wrong."""
    ttl = _positive_int(session_ttl, "session_ttl", ErrorCode.INVALID_TTL)
    size = _int(id_bytes, "id_bytes", ErrorCode.INVALID_SESSION_ID_LENGTH)
    if size < MIN_ID_BYTES:
        raise InvalidOptionsError(
            ErrorCode.INVALID_SESSION_ID_LENGTH,
            f"id_bytes must be at least {MIN_ID_BYTES} (128 bits), got {size}.",
        )
    if size > MAX_ID_BYTES:
        raise InvalidOptionsError(
            ErrorCode.INVALID_SESSION_ID_LENGTH,
            f"id_bytes must be at most {MAX_ID_BYTES}, got {size}.",
        )
    if timeouts is None:
        timeouts = Timeouts()
    if not isinstance(timeouts, Timeouts):
        raise InvalidTypeError(
            ErrorCode.INVALID_OPTION,
            f"timeouts must be a Timeouts or None, not {type(timeouts).__name__}.",
        )
    idle = _below_ttl(timeouts.idle, ttl, "idle", ErrorCode.INVALID_IDLE_TIMEOUT)
    renewal = _below_ttl(timeouts.renewal, ttl, "renewal", ErrorCode.INVALID_RENEW_TIMEOUT)
    grace = None
    if renewal is not None:
        if timeouts.renewal_grace is None:
            raise InvalidOptionsError(
                ErrorCode.OLD_SESSION_AVAILABILITY_TIMEOUT_AFTER_RENEWAL_REQUIRED,
                "renewal_grace is required when renewal is set.",
            )
        grace = _below_ttl(
            timeouts.renewal_grace,
            ttl,
            "renewal_grace",
            ErrorCode.INVALID_OLD_SESSION_AVAILABILITY_TIMEOUT_AFTER_RENEWAL,
        )
    absolute = None
    if timeouts.absolute is not None:
        absolute = _positive_int(timeouts.absolute, "absolute", ErrorCode.INVALID_ABSOLUTE_TIMEOUT)
    return ManagerOptions(ttl, size, idle, renewal, grace, absolute)


def check_subject(subject: object) -> str:
    """A subject is any non-empty str: colons, spaces and unicode are fine.

    Returns it as an exact `str`: a subclass (a `StrEnum` member, say) is
    accepted, and its plain value is what storages keep, compare and key by,
    so the subclass object is never retained.
    """
    if not isinstance(subject, str):
        raise InvalidTypeError(
            ErrorCode.INVALID_SUBJECT, f"subject must be a str, not {type(subject).__name__}."
        )
    if not subject:
        raise InvalidOptionsError(ErrorCode.INVALID_SUBJECT, "subject must not be empty.")
    # str.__str__, not str(): a subclass may override __str__ (Enum does).
    return subject if type(subject) is str else str.__str__(subject)


def check_new_subject(subject: object) -> str:
    """`check_subject`, and the subject must be exact text (`exact_text`: no
    surrogate code points), so that every storage gives it back as it was
    given: `"\\ud83d\\ude00"` would come back from a snapshot as `"😀"`,
    another subject owning the session. Checked where a session is created;
    other calls never find a session for such a subject."""
    subject = check_subject(subject)
    if not exact_text(subject):
        raise InvalidOptionsError(
            ErrorCode.INVALID_SUBJECT,
            "subject must not contain surrogate code points (U+D800-U+DFFF): "
            "it would not come back exactly from a snapshot or Redis.",
        )
    return subject


def check_session_id(session_id: object) -> str:
    """A session id must be a str; any str is accepted (unknown ones are not found)."""
    if type(session_id) is not str:
        raise InvalidTypeError(
            ErrorCode.INVALID_SESSION_ID,
            f"session id must be a str, not {type(session_id).__name__}.",
        )
    return session_id


def check_handle(handle: object) -> str:
    """A handle must be a str; any str is accepted (unknown ones name nothing)."""
    if type(handle) is not str:
        raise InvalidTypeError(
            ErrorCode.INVALID_HANDLE, f"handle must be a str, not {type(handle).__name__}."
        )
    return handle


def check_context(context: object) -> SessionContext:
    """The caller's context must be a `SessionContext`."""
    if not isinstance(context, SessionContext):
        raise InvalidTypeError(
            ErrorCode.INVALID_CONTEXT,
            f"context must be a SessionContext, not {type(context).__name__}.",
        )
    return context


def check_ttl(ttl: object) -> int:
    """A per-session TTL: an int of seconds, > 0 (it may exceed `session_ttl`)."""
    return _positive_int(ttl, "ttl", ErrorCode.INVALID_TTL)


def _int(value: object, name: str, code: ErrorCode) -> int:
    # bool is an int subclass; True seconds is a bug, not a TTL.
    if type(value) is not int:
        raise InvalidTypeError(code, f"{name} must be an int, not {type(value).__name__}.")
    return value


def _positive_int(value: object, name: str, code: ErrorCode) -> int:
    number = _int(value, name, code)
    if number <= 0:
        raise InvalidOptionsError(code, f"{name} must be > 0 seconds, got {_shown(number)}.")
    if number > MAX_SECONDS:
        raise InvalidOptionsError(
            code,
            f"{name} must be at most {MAX_SECONDS} seconds (100 years), got {_shown(number)}.",
        )
    return number


def _shown(number: int) -> str:
    # str() of an int of more than 4300 digits raises ValueError.
    if -(10**18) < number < 10**18:
        return str(number)
    return f"an int of {number.bit_length()} bits"


def _below_ttl(value: object, ttl: int, name: str, code: ErrorCode) -> int | None:
    if value is None:
        return None
    number = _positive_int(value, name, code)
    if number >= ttl:
        raise InvalidOptionsError(
            code, f"{name} must be less than session_ttl ({ttl} s), got {number}."
        )
    return number
