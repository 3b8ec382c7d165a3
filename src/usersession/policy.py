"""The rules of a session's life, as plain functions of (metadata, now, timeouts).

No I/O here and no state: the managers (sync and async) and the storages
(in memory, Redis) all decide with these functions, so a rule exists once.
Every function is O(1).
"""

from __future__ import annotations

from enum import Enum

from .session import SessionContext, SessionMetadata
from .storage.protocol import DeleteReason


class Verdict(Enum):
    """What a read must do with a stored session (DESIGN.md, "read")."""

    GONE = "gone"
    """Past `expires_at`, or past the grace of a renewal: not found."""
    GRACE = "grace"
    """Superseded by a renewal, inside its grace: return it as it is."""
    IDLE = "idle"
    """Unread for the idle timeout: delete it and report it expired."""
    RENEW = "renew"
    """Old enough to be renewed: hand out a new session, once."""
    TOUCH = "touch"
    """Alive: record the access and return it."""


def read_verdict(meta: SessionMetadata, now: int, renewal: int | None) -> Verdict:
    """What a read at `now` must do with `meta`, in the order DESIGN.md fixes.

    Idle is judged before renewal: a session nobody used for the idle timeout
    is over, however old it is (the seed renews it instead). A superseded
    session is exempt from idle: its grace is short and bounded. Idle uses the
    timeout the session was created under.
    """
    if now >= meta._expires_at:
        return Verdict.GONE
    grace_ends_at = meta._grace_ends_at
    if grace_ends_at is not None:
        return Verdict.GONE if now >= grace_ends_at else Verdict.GRACE
    idle = meta._idle
    if idle is not None and now - meta._accessed_at >= idle:
        return Verdict.IDLE
    if renewal is not None and now - meta._created_at >= renewal:
        return Verdict.RENEW
    return Verdict.TOUCH


def is_active(meta: SessionMetadata, now: int) -> bool:
    """Whether `read_all` lists the session: not expired, not superseded by a
    renewal, not idle. (A session due for renewal is still active.)

    The same judgement as `read_verdict(meta, now, None) is Verdict.TOUCH`,
    spelled out because listing makes it once per session (a property test
    holds the two together).
    """
    if now >= meta._expires_at or meta._grace_ends_at is not None:
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
    grace_ends_at = meta._grace_ends_at
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
    subject: str, context: SessionContext, now: int, ttl: int, idle: int | None
) -> SessionMetadata:
    """The metadata of a session created at `now` with `ttl` seconds to live.

    A new object, never the caller's context: two sessions created from one
    context share nothing that changes.
    """
    # Positional: a create builds one of these, and keywords cost a tenth more.
    return SessionMetadata(
        context.ip, context.device, context.location, now, now, now + ttl, idle, None, None, subject
    )


def renewed_metadata(old: SessionMetadata, context: SessionContext, now: int) -> SessionMetadata:
    """The session that replaces `old` when it is renewed at `now`.

    Same subject, same lifetime length (`expires_at - created_at`), same idle
    timeout; the renewing context; born now.
    """
    return new_metadata(old._subject, context, now, old._expires_at - old._created_at, old._idle)


def grace_end(now: int, renewal_grace: int) -> int:
    """When a session superseded at `now` stops being readable (before its
    `expires_at`, which `deadline` applies on top)."""
    return now + renewal_grace
