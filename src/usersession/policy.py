"""The rules of a session's life, as plain functions of (metadata, now, timeouts).

No I/O here and no state: the managers (sync and async) and the in-memory
storage decide with these functions, so a rule exists once in Python. The
Redis storage judges a read inside its read script (one round trip); that
script mirrors `read_verdict` and `deadline` line by line and a property
test (tests/test_redis_judgement.py) holds it to them. Every function is O(1).
"""

from __future__ import annotations

from enum import Enum

from .session import AUTHENTICATED_AT, GRACE_ENDS_AT, LOGIN, SessionContext, SessionMetadata
from .storage.protocol import DeleteReason


class Verdict(Enum):
    """What a read must do with a stored session (docs/behaviour.md, "Reading")."""

    GONE = "gone"
    """Past `expires_at`, past the login's absolute timeout, or past the grace
    of a renewal: not found."""
    GRACE = "grace"
    """Superseded by a renewal, inside its grace: return it as it is."""
    IDLE = "idle"
    """Unread for the idle timeout: delete it and report it expired."""
    RENEW = "renew"
    """Old enough to be renewed: hand out a new session, once."""
    TOUCH = "touch"
    """Alive: record the access and return it."""
    WRONG_DEVICE = "wrong device"
    """Refused by the default read hook (`manager.check_same_device`).
    `read_verdict` never returns it: only a storage that applies that hook
    itself (`JudgingStorage`, the Redis read script) does."""


def read_verdict(
    meta: SessionMetadata, now: int, renewal: int | None, absolute: int | None = None
) -> Verdict:
    """What a read at `now` must do with `meta`, in the order docs/behaviour.md fixes.

    Idle is judged before renewal: a session nobody used for the idle timeout
    is over, however old it is (`@thermopylae/lib.user-session` renews it
    instead). A superseded session is exempt from idle: its grace is short
    and bounded. Idle uses the timeout the session was created under. The
    absolute timeout is the reading manager's: a session stored by a manager
    without it (or with a longer one) is still not readable past
    `authenticated_at + absolute`.
    """
    if now >= meta._expires_at:
        return Verdict.GONE
    # Most sessions have no lineage (a login's only session). No local holds
    # their None: compiled, that made the sweep's like test 9% slower (A/B).
    if meta._lineage is None:
        if absolute is not None and now - meta._created_at >= absolute:
            return Verdict.GONE
    else:
        lineage = meta._lineage
        if absolute is not None and now - lineage[AUTHENTICATED_AT] >= absolute:
            return Verdict.GONE
        grace_ends_at = lineage[GRACE_ENDS_AT]
        if grace_ends_at is not None:
            return Verdict.GONE if now >= grace_ends_at else Verdict.GRACE
    idle = meta._idle
    if idle is not None and now - meta._accessed_at >= idle:
        return Verdict.IDLE
    if renewal is not None and now - meta._created_at >= renewal:
        return Verdict.RENEW
    return Verdict.TOUCH


def is_active(meta: SessionMetadata, now: int, absolute: int | None = None) -> bool:
    """Whether `read_all` lists the session: not expired (nor past the
    login's absolute timeout, when one is given), not superseded by a
    renewal, not idle. (A session due for renewal is still active.)

    The same judgement as `read_verdict(meta, now, None, absolute) is
    Verdict.TOUCH`, spelled out because listing makes it once per session (a
    property test holds the two together).
    """
    if now >= meta._expires_at:
        return False
    if meta._lineage is None:
        if absolute is not None and now - meta._created_at >= absolute:
            return False
    else:
        lineage = meta._lineage
        if lineage[GRACE_ENDS_AT] is not None or (
            absolute is not None and now - lineage[AUTHENTICATED_AT] >= absolute
        ):
            return False
    idle = meta._idle
    return idle is None or now - meta._accessed_at < idle


def deadline(meta: SessionMetadata) -> tuple[int, DeleteReason]:
    """The second at which the session stops being readable, and why.

    A superseded session ends at the earlier of its grace end and `expires_at`;
    any other at the earlier of `expires_at` and its idle deadline
    (`accessed_at + idle`). On a tie the absolute expiry is the reason.
    """
    expires_at = meta._expires_at
    if meta._lineage is not None:
        grace_ends_at = meta._lineage[GRACE_ENDS_AT]
        if grace_ends_at is not None:
            if grace_ends_at < expires_at:
                return grace_ends_at, DeleteReason.RENEWED
            return expires_at, DeleteReason.EXPIRED
    idle = meta._idle
    if idle is not None:
        idle_at = meta._accessed_at + idle
        if idle_at < expires_at:
            return idle_at, DeleteReason.IDLE
    return expires_at, DeleteReason.EXPIRED


def new_metadata(
    subject: str,
    context: SessionContext,
    now: int,
    ttl: int,
    idle: int | None,
    absolute: int | None = None,
) -> SessionMetadata:
    """The metadata of a login's first session, created at `now` with `ttl`
    seconds to live (never past `now + absolute`).

    A new object, never the caller's context: two sessions created from one
    context share nothing that changes.
    """
    if absolute is not None and absolute < ttl:
        ttl = absolute
    # Positional: a create builds one of these, and keywords cost a tenth more.
    # authenticated_at None means created_at (now): compiled, passing `now`
    # to an `int | None` parameter would make an int object of it.
    return SessionMetadata(
        context.ip,
        context.device,
        context.location,
        now,
        now,
        now + ttl,
        idle,
        None,
        None,
        subject,
    )


def renewed_metadata(
    old: SessionMetadata,
    old_handle: str,
    context: SessionContext,
    now: int,
    absolute: int | None = None,
) -> SessionMetadata:
    """The session that replaces `old` (whose handle is `old_handle`) when it
    is renewed at `now`.

    It continues the login: same subject, same `authenticated_at`, same
    device (the binding is fixed at login; only ip and location come from the
    renewing context), same idle timeout, same login key (`login_key`). It is
    born now and gets the old session's lifetime length (`expires_at -
    created_at`), but never lives past `authenticated_at + absolute`.
    """
    expires_at = now + (old._expires_at - old._created_at)
    authenticated_at = old.authenticated_at
    if absolute is not None:
        expires_at = min(expires_at, authenticated_at + absolute)
    successor = SessionMetadata(
        context.ip,
        old._device,
        context.location,
        now,
        now,
        expires_at,
        old._idle,
        None,
        None,
        old._subject,
    )
    lineage = old._lineage
    if lineage is not None and lineage[LOGIN] is not None and lineage[GRACE_ENDS_AT] is None:
        # A renewed login's session: its successor shares its lineage (one
        # serves the login's renewals). Assigned from the attribute itself:
        # compiled code would make a new tuple of a local copy.
        successor._lineage = old._lineage
    else:
        successor._lineage = (login_key(old_handle, old), authenticated_at, None, None)
    return successor


def login_key(handle: str, meta: SessionMetadata) -> str:
    """What names the login a session belongs to: the handle of the login's
    first session. A session that was never renewed and descends from no
    renewal is a login on its own, named by its own handle."""
    lineage = meta._lineage
    login = None if lineage is None else lineage[LOGIN]
    return handle if login is None else login


def same_login(
    handle: str, meta: SessionMetadata, other_handle: str, other_meta: SessionMetadata
) -> bool:
    """Whether two sessions (each with its handle) belong to one login: a
    session and its predecessor inside its renewal grace do."""
    return login_key(handle, meta) == login_key(other_handle, other_meta)


def grace_end(now: int, renewal_grace: int) -> int:
    """When a session superseded at `now` stops being readable (before its
    `expires_at`, which `deadline` applies on top)."""
    return now + renewal_grace
