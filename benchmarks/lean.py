"""The lean baseline: the least a Python user would write for sessions with expiry.

Issue 10's targets are measured against it. Where `baseline.py` has the same
rules as the manager, this one keeps only what a read must do and drops the
rest:

- one `threading.Lock` per operation and a `cachetools.TLRUCache` lookup;
- a read compares the subject and the device, checks idle, and stores
  `accessed_at`: no renewal logic in the read path (it cannot renew);
- `read_all` lists the active sessions keyed by their raw ids (no handles,
  no hashing);
- `delete_all` walks a dict-of-sets subject index;
- expiry: the cache's time-to-use is the idle or absolute deadline; a sweep
  re-files a session touched since it was filed, as usersession does.
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
class LeanSession:
    """One stored session."""

    subject: str
    ip: str
    device: object
    created_at: int
    accessed_at: int
    expires_at: int
    idle: int | None


def _deadline(session: LeanSession) -> int:
    idle = session.idle
    if idle is None:
        return session.expires_at
    return min(session.expires_at, session.accessed_at + idle)


def _time_to_use(_key: str, session: LeanSession, _now: int) -> int:
    return _deadline(session)


class LeanSessions:
    """Sessions in a `TLRUCache` plus a subject index; the manager's calls, minus renewal."""

    def __init__(
        self, *, session_ttl: int, clock: Callable[[], int], idle: int | None = None
    ) -> None:
        self._ttl = session_ttl
        self._idle = idle
        self._clock = clock
        self._cache: TLRUCache[str, LeanSession] = TLRUCache(math.inf, _time_to_use, timer=clock)
        self._subjects: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._swept_at = -1

    def __len__(self) -> int:
        return len(self._cache)

    def create(self, subject: str, context: SessionContext, ttl: int | None = None) -> str:
        session_id = secrets.token_urlsafe(24)
        now = self._clock()
        session = LeanSession(
            subject, context.ip, context.device, now, now, now + (ttl or self._ttl), self._idle
        )
        with self._lock:
            if now > self._swept_at:
                self._sweep(now)
            self._cache[session_id] = session
            self._subjects.setdefault(subject, set()).add(session_id)
        return session_id

    def read(
        self, subject: str, session_id: str, context: SessionContext
    ) -> tuple[LeanSession, None]:
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
            idle = session.idle
            if idle is not None and now - session.accessed_at >= idle:
                del self._cache[session_id]
                self._unindex(subject, session_id)
                raise SessionNotFoundError(subject)
            session.accessed_at = now
            return session, None

    def read_all(self, subject: str) -> dict[str, LeanSession]:
        """The subject's active sessions (not expired, not idle), keyed by raw id: no handles."""
        now = self._clock()
        with self._lock:
            if now > self._swept_at:
                self._sweep(now)
            cache = self._cache
            listed = {}
            for session_id in self._subjects.get(subject, ()):
                session = cache[session_id]
                idle = session.idle
                if now < session.expires_at and (idle is None or now - session.accessed_at < idle):
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
                cache[session_id] = session  # touched since filed: file it again
            else:
                self._unindex(session.subject, session_id)
                removed += 1
        return removed

    def _unindex(self, subject: str, session_id: str) -> None:
        session_ids = self._subjects[subject]
        session_ids.discard(session_id)
        if not session_ids:
            del self._subjects[subject]
