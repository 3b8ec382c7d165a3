"""The baseline: sessions as a Python user would keep them without usersession.

A `cachetools.TLRUCache` holds session id -> `Session`, with a per-session
time-to-use (variable TTLs, idle deadlines, renewal graces), a plain dict
indexes the subjects, and ids come from `secrets.token_urlsafe(24)`. It offers
what the benchmark measures of `UserSessionManager`, with the same rules:

- `read` checks the subject, the device, the renewal grace, idle and renewal
  (in the order docs/behaviour.md fixes) and touches `accessed_at`;
- `read_all` lists the subject's active sessions (keyed by id: the baseline
  computes no handles), `delete` and `delete_all` remove, expiry evicts;
- a renewal inserts the new session and shortens the old one (re-setting it,
  so that the cache files it under its grace end).

Choices that make it a strong baseline, not a straw man: `Session` has
`__slots__`; a touch only stores `accessed_at` and the sweep re-files a
session that was touched since it was filed (the cache would otherwise have
to re-insert it on every read); `expire()` runs only when the clock's second
moved. Like `InMemorySessionStorage` it takes a lock per operation, because
a session store is shared by the threads of a web server and cachetools'
classes are not thread-safe.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TLRUCache

from usersession import SessionContext


class SessionNotFoundError(KeyError):
    """The session is unknown, another subject's, expired or idle."""


@dataclass(slots=True)
class Session:
    """One stored session."""

    subject: str
    ip: str
    device: object
    location: object
    created_at: int
    accessed_at: int
    expires_at: int
    idle: int | None = None
    grace_ends_at: int | None = None


def _deadline(session: Session) -> int:
    """The second at which the session stops being readable."""
    deadline = session.expires_at
    grace_ends_at = session.grace_ends_at
    if grace_ends_at is not None:
        return min(deadline, grace_ends_at)
    idle = session.idle
    if idle is not None:
        return min(deadline, session.accessed_at + idle)
    return deadline


def _time_to_use(_key: str, session: Session, _now: int) -> int:
    return _deadline(session)


def _is_active(session: Session, now: int) -> bool:
    if now >= session.expires_at or session.grace_ends_at is not None:
        return False
    idle = session.idle
    return idle is None or now - session.accessed_at < idle


class CachetoolsSessions:
    """Sessions in a `TLRUCache` plus a subject index; same calls as the manager."""

    def __init__(
        self,
        *,
        session_ttl: int,
        clock: Callable[[], int],
        idle: int | None = None,
        renewal: int | None = None,
        renewal_grace: int | None = None,
    ) -> None:
        self._ttl = session_ttl
        self._idle = idle
        self._renewal = renewal
        self._renewal_grace = renewal_grace
        self._clock = clock
        self._cache: TLRUCache[str, Session] = TLRUCache(math.inf, _time_to_use, timer=clock)
        self._subjects: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._swept_at = -1

    def __len__(self) -> int:
        return len(self._cache)

    def create(self, subject: str, context: SessionContext, ttl: int | None = None) -> str:
        session_id = secrets.token_urlsafe(24)
        now = self._clock()
        session = Session(
            subject,
            context.ip,
            context.device,
            context.location,
            now,
            now,
            now + (ttl or self._ttl),
            self._idle,
        )
        with self._lock:
            if now > self._swept_at:
                self._sweep(now)
            self._cache[session_id] = session
            self._subjects.setdefault(subject, set()).add(session_id)
        return session_id

    def read(
        self, subject: str, session_id: str, context: SessionContext
    ) -> tuple[Session, str | None]:
        now = self._clock()
        with self._lock:
            if now > self._swept_at:
                self._sweep(now)
            session = self._cache.get(session_id)
            if session is None or session.subject != subject:
                raise SessionNotFoundError(subject)
            device = context.device
            if device is not None and session.device is not None and device != session.device:
                raise PermissionError("another device")
            if session.grace_ends_at is not None:
                return session, None
            idle = session.idle
            if idle is not None and now - session.accessed_at >= idle:
                self._remove(session_id, session)
                raise SessionNotFoundError(subject)
            renewal = self._renewal
            if renewal is not None and now - session.created_at >= renewal:
                return session, self._renew(session_id, session, context, now)
            session.accessed_at = now
            return session, None

    def _renew(self, session_id: str, session: Session, context: SessionContext, now: int) -> str:
        new_id = secrets.token_urlsafe(24)
        renewed = Session(
            session.subject,
            context.ip,
            context.device,
            context.location,
            now,
            now,
            now + (session.expires_at - session.created_at),
            session.idle,
        )
        self._cache[new_id] = renewed
        self._subjects[session.subject].add(new_id)
        # Shorten the old one: re-setting it files it under its grace end.
        session.grace_ends_at = now + self._renewal_grace  # type: ignore[operator]
        self._cache[session_id] = session
        return new_id

    def read_all(self, subject: str) -> dict[str, Session]:
        now = self._clock()
        with self._lock:
            if now > self._swept_at:
                self._sweep(now)
            cache = self._cache
            listed = {}
            for session_id in self._subjects.get(subject, ()):
                session = cache[session_id]
                if _is_active(session, now):
                    listed[session_id] = session
            return listed

    def delete(self, subject: str, session_id: str) -> None:
        now = self._clock()
        with self._lock:
            if now > self._swept_at:
                self._sweep(now)
            session = self._cache.get(session_id)
            if session is not None and session.subject == subject:
                del self._cache[session_id]
                self._unindex(subject, session_id)

    def delete_all(self, subject: str) -> int:
        now = self._clock()
        with self._lock:
            if now > self._swept_at:
                self._sweep(now)
            session_ids = self._subjects.pop(subject, None)
            if not session_ids:
                return 0
            cache = self._cache
            for session_id in session_ids:
                del cache[session_id]
            return len(session_ids)

    def collect(self, now: int | None = None) -> int:
        """Evict what is due at `now`; return how many sessions were removed."""
        with self._lock:
            return self._sweep(self._clock() if now is None else now)

    def _sweep(self, now: int) -> int:
        self._swept_at = now
        cache = self._cache
        removed = 0
        for session_id, session in cache.expire(now):
            if _deadline(session) > now:
                # Touched since it was filed: file it again under its new deadline.
                cache[session_id] = session
            else:
                self._unindex(session.subject, session_id)
                removed += 1
        return removed

    def _remove(self, session_id: str, session: Session) -> None:
        del self._cache[session_id]
        self._unindex(session.subject, session_id)

    def _unindex(self, subject: str, session_id: str) -> None:
        session_ids = self._subjects[subject]
        session_ids.discard(session_id)
        if not session_ids:
            del self._subjects[subject]
