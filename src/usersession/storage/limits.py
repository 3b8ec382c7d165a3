"""Capacity limits of a storage: how many sessions it may hold, and what
happens to the one that would not fit.

`max_sessions` bounds the whole storage (every stored session counts,
superseded ones inside their renewal grace included): that is the memory
bound. `max_sessions_per_subject` bounds the sessions a subject has in use
(superseded ones do not count: a renewal replaces a session, it does not add
a device), which is the "at most N devices" rule.

At a limit, `LimitPolicy` decides:

- `REFUSE`: the new session is refused with `SessionLimitError` and nothing
  changes. Nobody is logged out, but nobody new gets in until room is made.
- `EVICT`: room is made. Per subject, the subject's oldest session (smallest
  `created_at`) goes; for the whole storage, the session closest to its
  deadline goes. Evictions are ordinary removals with `DeleteReason.EVICTED`.
"""

from __future__ import annotations

from enum import Enum

from ..errors import ErrorCode, InvalidOptionsError, InvalidTypeError
from ..session import SessionMetadata


def counts_per_subject(metadata: SessionMetadata) -> bool:
    """Whether a session counts toward `max_sessions_per_subject`: one
    superseded by a renewal, inside its grace, does not."""
    return not metadata.renewed


class LimitPolicy(Enum):
    """What a storage does with a new session that would exceed a limit."""

    REFUSE = "refuse"
    """Raise `SessionLimitError`; store nothing, remove nothing."""
    EVICT = "evict"
    """Remove a session to make room (reason `DeleteReason.EVICTED`)."""


def check_limit(value: object, name: str) -> int | None:
    """A limit is None (unbounded) or an int >= 1."""
    if value is None:
        return None
    if type(value) is not int:
        raise InvalidTypeError(
            ErrorCode.INVALID_OPTION, f"{name} must be an int or None, not {type(value).__name__}."
        )
    if value < 1:
        raise InvalidOptionsError(ErrorCode.INVALID_OPTION, f"{name} must be >= 1, got {value}.")
    return value


def check_policy(value: object, name: str) -> LimitPolicy:
    """A policy must be a `LimitPolicy`."""
    if not isinstance(value, LimitPolicy):
        raise InvalidTypeError(
            ErrorCode.INVALID_OPTION,
            f"{name} must be a LimitPolicy, not {type(value).__name__}.",
        )
    return value
