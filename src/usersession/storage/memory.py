"""The embedded default storage: sessions in process memory.

Three structures, each touched once per operation:

- `_sessions`: session id -> `SessionMetadata` (which also carries its subject
  and the deadline second it is filed under);
- `_subjects`: subject -> set of session ids;
- a `BucketGarbageCollector` that files each session id under its deadline.

Every removal, whatever its reason, goes through `_remove`, which updates the
subject index and then tells the listeners: the index cannot drift from the
sessions because nothing else writes to it.

Expiry without threads or timers: each operation first does its own work,
then, if the clock's second moved since the last sweep, evicts what came due.
A read only updates `accessed_at`; it does not move the session to a later
bucket. When a bucket comes due its sessions' real deadlines are re-checked
(`policy.deadline`) and the living ones re-filed, so a touch is O(1) and an
eviction is O(1), and a sweep never looks at a session that is not due.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from ..clock import Clock, system_clock
from ..errors import ErrorCode, SessionStorageError
from ..garbage_collector import BucketGarbageCollector
from ..ids import session_handle
from ..policy import deadline
from ..session import SessionMetadata
from .protocol import DeleteReason, Listener

_log = logging.getLogger("usersession")

_MIN_STALE_TO_COMPACT = 4096
"""Stale bucket entries tolerated before compaction is considered at all."""


class InMemorySessionStorage:
    """Sessions in a dict, expired by deadline buckets; safe to share between threads.

    `clock` is used by `collect()` without an argument and becomes the
    default clock of a manager built on this storage.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock if clock is not None else system_clock
        self._sessions: dict[str, SessionMetadata] = {}
        self._subjects: dict[str, set[str]] = {}
        self._collector: BucketGarbageCollector[str] = BucketGarbageCollector()
        self._listeners: list[Listener] = []
        # Reentrant: listeners run inside the lock and may call back in.
        self._lock = threading.RLock()
        self._swept_at = -1
        # Bucket entries whose session was removed or re-filed elsewhere.
        self._stale = 0
        self._removed: Counter[DeleteReason] = Counter()
        self._sweeps = 0

    # -- the storage protocol --------------------------------------------------

    def insert(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        """Store a new session. O(1) amortized."""
        with self._lock:
            if session_id in self._sessions:
                raise SessionStorageError(
                    ErrorCode.STORAGE_FAILURE,
                    f"Session '{session_handle(session_id)}' is already stored.",
                )
            self._file(subject, session_id, metadata)
            now = metadata._created_at
            if now > self._swept_at:
                self._sweep(now)

    def read(self, subject: str, session_id: str, now: int) -> SessionMetadata | None:
        """The stored session (the object itself, not a copy), or None. O(1)."""
        with self._lock:
            metadata = self._sessions.get(session_id)
            if metadata is not None and metadata._subject != subject:
                metadata = None
            if now > self._swept_at:
                self._sweep(now)
            return metadata

    def touch(self, subject: str, session_id: str, metadata: SessionMetadata, now: int) -> None:
        """Set `accessed_at`. O(1), no lock: `metadata` is the stored object,
        and an int store cannot resurrect a session deleted meanwhile (a
        deleted session is simply no longer filed anywhere)."""
        metadata._accessed_at = now

    def renew(
        self,
        subject: str,
        session_id: str,
        grace_ends_at: int,
        renewed_by: str,
        new_session_id: str,
        new_metadata: SessionMetadata,
    ) -> str | None:
        """Supersede a session and insert its successor, atomically. O(1) amortized."""
        with self._lock:
            old = self._sessions.get(session_id)
            if old is None or old._subject != subject:
                return None
            if old._grace_ends_at is not None:
                return old._renewed_by
            if new_session_id in self._sessions:
                raise SessionStorageError(
                    ErrorCode.STORAGE_FAILURE,
                    f"Session '{session_handle(new_session_id)}' is already stored.",
                )
            old._grace_ends_at = grace_ends_at
            old._renewed_by = renewed_by
            due = deadline(old)[0]
            if due < old._due:
                # File it earlier; the later filing goes stale.
                old._due = due
                self._collector.add(session_id, due)
                self._stale += 1
            self._file(subject, new_session_id, new_metadata)
            return renewed_by

    def read_all(self, subject: str, now: int) -> list[tuple[str, SessionMetadata]]:
        """The subject's sessions not past `expires_at`, with their handles.
        O(sessions of the subject); a handle is computed once per session."""
        with self._lock:
            sessions = self._sessions
            listed = []
            for session_id in self._subjects.get(subject, ()):
                metadata = sessions[session_id]
                if now < metadata._expires_at:
                    handle = metadata._handle
                    if handle is None:
                        handle = metadata._handle = session_handle(session_id)
                    listed.append((handle, metadata))
            if now > self._swept_at:
                self._sweep(now)
            return listed

    def delete(
        self, subject: str, session_id: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> bool:
        """Remove one session; False if it is not stored under `subject`. O(1)."""
        with self._lock:
            metadata = self._sessions.get(session_id)
            if metadata is None or metadata._subject != subject:
                return False
            self._remove(session_id, metadata, reason)
            self._stale += 1
            return True

    def delete_by_handle(self, subject: str, handle: str) -> bool:
        """Remove the subject's session with this handle. O(sessions of the subject)."""
        with self._lock:
            for session_id in self._subjects.get(subject, ()):
                metadata = self._sessions[session_id]
                if metadata._handle is None:
                    metadata._handle = session_handle(session_id)
                if metadata._handle == handle:
                    self._remove(session_id, metadata, DeleteReason.DELETED)
                    self._stale += 1
                    return True
            return False

    def delete_all(self, subject: str) -> int:
        """Remove every session of `subject`; return the count. O(those sessions)."""
        with self._lock:
            session_ids = self._subjects.get(subject)
            if not session_ids:
                return 0
            sessions = self._sessions
            # A copy: the delete path shrinks the set (and a listener may add to it).
            removed = 0
            for session_id in list(session_ids):
                metadata = sessions.get(session_id)
                if metadata is not None:
                    self._remove(session_id, metadata, DeleteReason.DELETED)
                    removed += 1
            self._stale += removed
            return removed

    # -- the rest of the public surface ----------------------------------------

    def collect(self, now: int | None = None) -> int:
        """Evict everything due at `now` (default: this storage's clock);
        return how many sessions were removed. O(sessions due)."""
        with self._lock:
            return self._sweep(self.clock() if now is None else now)

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(subject, session_id, metadata, reason)` after each
        removal, inside the storage's lock (keep it short; it may call back
        into the storage). An exception it raises is logged and swallowed."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling `listener`. ValueError if it was not added."""
        with self._lock:
            self._listeners.remove(listener)

    def __len__(self) -> int:
        """Sessions held right now, due or not (no sweep). O(1)."""
        return len(self._sessions)

    def __repr__(self) -> str:
        return (
            f"InMemorySessionStorage(sessions={len(self._sessions)}, "
            f"subjects={len(self._subjects)})"
        )

    # -- internals -------------------------------------------------------------

    def _file(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        metadata._subject = subject
        due = metadata._due = deadline(metadata)[0]
        self._sessions[session_id] = metadata
        session_ids = self._subjects.get(subject)
        if session_ids is None:
            self._subjects[subject] = {session_id}
        else:
            session_ids.add(session_id)
        self._collector.add(session_id, due)

    def _remove(self, session_id: str, metadata: SessionMetadata, reason: DeleteReason) -> None:
        """The one delete path: sessions, subject index, counters, listeners."""
        del self._sessions[session_id]
        subject = metadata._subject
        session_ids = self._subjects[subject]
        session_ids.discard(session_id)
        if not session_ids:
            del self._subjects[subject]
        self._removed[reason] += 1
        if self._listeners:
            self._emit(subject, session_id, metadata, reason)

    def _emit(
        self, subject: str, session_id: str, metadata: SessionMetadata, reason: DeleteReason
    ) -> None:
        for listener in list(self._listeners):
            try:
                listener(subject, session_id, metadata, reason)
            except Exception:
                _log.exception(
                    "usersession: delete listener %r failed for session '%s' (%s)",
                    listener,
                    session_handle(session_id),
                    reason.name,
                )

    def _sweep(self, now: int) -> int:
        """Evict what is due at `now`; re-file what was touched since it was filed."""
        self._swept_at = now
        self._sweeps += 1
        sessions = self._sessions
        collector = self._collector
        removed = 0
        stale = 0
        for second, session_ids in collector.pop_due(now):
            for session_id in session_ids:
                metadata = sessions.get(session_id)
                if metadata is None or metadata._due != second:
                    stale += 1
                    continue
                due, reason = deadline(metadata)
                if due <= now:
                    self._remove(session_id, metadata, reason)
                    removed += 1
                else:
                    metadata._due = due
                    collector.add(session_id, due)
        self._stale -= stale
        if self._stale > _MIN_STALE_TO_COMPACT and self._stale > len(sessions):
            self._compact()
        return removed

    def _compact(self) -> None:
        # Amortized O(1) per removal: runs only when the stale entries
        # outnumber the live sessions, and costs O(live + stale).
        sessions = self._sessions

        def current(session_id: str, second: int) -> bool:
            metadata = sessions.get(session_id)
            return metadata is not None and metadata._due == second

        self._collector.compact(current)
        self._stale = 0
