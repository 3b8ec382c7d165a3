"""The embedded default storage: sessions in process memory.

Three structures, each touched once per operation:

- `_sessions`: session id -> `SessionMetadata` (which also carries its subject
  and the deadline second it is filed under);
- `_subjects`: subject -> {session id: `SessionMetadata`}, the same objects;
- a `BucketGarbageCollector` that files each session id under its deadline.

Every removal, whatever its reason, goes through `_remove`, which updates the
subject index and then tells the listeners: the index cannot drift from the
sessions because nothing else writes to it.

Expiry without threads or timers: each operation first does its own work,
then, if the clock's second differs from the last sweep's (forward, or back
after a clock step), evicts what came due.
A read only updates `accessed_at`; it does not move the session to a later
bucket. When a bucket comes due its sessions' real deadlines are re-checked
(`policy.deadline`) and the living ones re-filed, so a touch is O(1) and an
eviction is O(1), and a sweep never looks at a session that is not due.

Optional capacity limits (`max_sessions`, `max_sessions_per_subject`, see
`limits`) cost one attribute test per insert when unset. Snapshots (`save`,
`load`, see `snapshot`) write the sessions to a file and read them back.
"""

from __future__ import annotations

import heapq
import logging
import os
import sys
import threading
import traceback
from collections import Counter
from typing import Final

from .._build import mypyc_attr
from ..clock import Clock, check_clock, system_clock
from ..errors import ErrorCode, InvalidTypeError, SessionLimitError, SessionStorageError
from ..garbage_collector import BucketGarbageCollector
from ..ids import session_handle
from ..policy import deadline, is_active
from ..session import GRACE_ENDS_AT, SessionMetadata
from .limits import LimitPolicy, check_limit, check_policy, counts_per_subject
from .protocol import DeleteReason, Listener
from .snapshot import read_snapshot, save_snapshot
from .stats import StorageStats

_log = logging.getLogger("usersession")

_SWEEP_BATCH: Final = 64
"""Due sessions judged before they are handed to the delete path together."""

_MIN_STALE_TO_COMPACT: Final = 4096
"""Stale bucket entries tolerated before compaction is considered at all."""

_SPARSE_BYTES_PER_SESSION: Final = 256
"""A subject's dict this large per session it holds is mostly deleted
slots (a dict that just grew holds at most ~110 bytes per entry): it is
copied to its size. CPython never shrinks a dict on deletes."""


def _log_listener_failure(
    listener: Listener, session_id: str, reason: DeleteReason, error: Exception
) -> None:
    """Log a listener's exception with its traceback, the session named by
    its handle: a listener's error easily carries the id it was given (a
    `KeyError(session_id)` from a cache), so the id is replaced wherever it
    appears in the formatted traceback and its chained exceptions."""
    handle = session_handle(session_id)
    details = "".join(traceback.format_exception(error))
    if session_id:
        details = details.replace(session_id, f"<session {handle}>")
    _log.error(
        "usersession: delete listener %r failed for session '%s' (%s)\n%s",
        listener,
        handle,
        reason.name,
        details.rstrip("\n"),
    )


@mypyc_attr(allow_interpreted_subclasses=True)
class InMemorySessionStorage:
    """Sessions in a dict, expired by deadline buckets; safe to share between threads.

    `clock` is used by `collect()` without an argument and becomes the
    default clock of a manager built on this storage.

    `max_sessions` bounds the sessions held, `max_sessions_per_subject` the
    sessions a subject has in use (not counting superseded ones inside their
    renewal grace); None, the default, is unbounded. Each limit has a policy,
    `LimitPolicy.REFUSE` (the default: `SessionLimitError`, nothing changes)
    or `LimitPolicy.EVICT` (the subject's oldest session, or the storage's
    session closest to its deadline, is removed with `DeleteReason.EVICTED`).
    Limits apply to `insert` and to the successor a `renew` inserts. Bad
    values raise `InvalidOptionsError` (`INVALID_OPTION`).

    Its operations never block (no I/O; the lock is held for microseconds),
    so an `AsyncUserSessionManager` may use it as it is.
    """

    never_blocks = True
    """An async manager may call this sync storage from its event loop."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_sessions: int | None = None,
        max_sessions_policy: LimitPolicy = LimitPolicy.REFUSE,
        max_sessions_per_subject: int | None = None,
        max_sessions_per_subject_policy: LimitPolicy = LimitPolicy.REFUSE,
    ) -> None:
        self._max_sessions = check_limit(max_sessions, "max_sessions")
        self._max_sessions_policy = check_policy(max_sessions_policy, "max_sessions_policy")
        self._max_per_subject = check_limit(max_sessions_per_subject, "max_sessions_per_subject")
        self._max_per_subject_policy = check_policy(
            max_sessions_per_subject_policy, "max_sessions_per_subject_policy"
        )
        # The one test the hot path pays when no limit is set.
        self._limited = self._max_sessions is not None or self._max_per_subject is not None
        self._refused = 0
        self.clock: Clock = system_clock if clock is None else check_clock(clock)
        self._sessions: dict[str, SessionMetadata] = {}
        # A dict per subject, not a set of ids: a compact dict of 10 costs 27 B
        # per entry where a set costs 73 (tracemalloc), and listing a subject
        # finds each session without a lookup in `_sessions`.
        self._subjects: dict[str, dict[str, SessionMetadata]] = {}
        self._collector: BucketGarbageCollector[str] = BucketGarbageCollector()
        self._listeners: list[Listener] = []
        # Reentrant: listeners run inside the lock and may call back in. The
        # operations take it with acquire() and release() in try/finally, not
        # `with`: `with` looks up and binds __enter__ and __exit__ and calls
        # __exit__ with three Nones, 0.34 us where acquire and release cost
        # 0.14 (Python 3.11, timeit), and compiled code pays it the same way.
        self._lock = threading.RLock()
        # The second of the last sweep; an operation at any other second sweeps.
        self._swept_at = -1
        # Bucket entries whose session was removed or re-filed elsewhere.
        self._stale = 0
        # Sweeps in progress (a listener may start one inside another).
        self._sweeping = 0
        # Sessions being made room for (a create or renewal evicting others):
        # a listener's re-entrant create counts them, so the limits hold once
        # they are filed. Only touched when a limit is set.
        self._reserved = 0
        self._reserved_for: dict[str, int] = {}
        # A plain dict: a Counter's += costs a sweep a third of its time.
        self._removed: dict[DeleteReason, int] = dict.fromkeys(DeleteReason, 0)
        self._sweeps = 0
        # What a Sweeper or Autosaver watches in place of the storage, which
        # compiled (mypyc) cannot be weakly referenced: see sweeper._Lifeline.
        self._lifeline: object | None = None

    # -- the storage protocol --------------------------------------------------

    def insert(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        """Store a new session. O(1) amortized."""
        self._lock.acquire()
        try:
            if session_id in self._sessions:
                raise SessionStorageError(
                    ErrorCode.STORAGE_FAILURE,
                    f"Session '{session_handle(session_id)}' is already stored.",
                )
            now = metadata._created_at
            if self._limited:
                self._make_room(subject, self._check_room(subject, now, None))
            self._file(subject, session_id, metadata)
            if now != self._swept_at:
                self._sweep(now)
        finally:
            self._lock.release()

    def read(self, subject: str, session_id: str, now: int) -> SessionMetadata | None:
        """The stored session (the object itself, not a copy), or None. O(1)."""
        self._lock.acquire()
        try:
            metadata = self._sessions.get(session_id)
            if metadata is not None and metadata._subject != subject:
                metadata = None
            if now != self._swept_at:
                self._sweep(now)
            return metadata
        finally:
            self._lock.release()

    def touch(self, subject: str, session_id: str, metadata: SessionMetadata, now: int) -> None:
        """Set `accessed_at` on `metadata`, the stored object. O(1).

        Never backwards: a reader delayed between its read and its touch must
        not undo a later reader's access. No lock (it cost reads a sixth of
        their time, benchmarks/ read): CPython checks for a thread switch only
        at calls and backward jumps, so nothing runs between the comparison
        and the store. A session deleted meanwhile does not come back: it is
        simply no longer filed anywhere."""
        if now > metadata._accessed_at:  # noqa: PLR1730 - max() is a call: see above
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
        self._lock.acquire()
        try:
            old = self._sessions.get(session_id)
            if old is None or old._subject != subject:
                return None
            if old.renewed:
                return old._renewed_by
            if new_session_id in self._sessions:
                raise SessionStorageError(
                    ErrorCode.STORAGE_FAILURE,
                    f"Session '{session_handle(new_session_id)}' is already stored.",
                )
            victims: list[str] = []
            if self._limited:
                victims = self._check_room(subject, new_metadata._created_at, session_id)
                # The sweep that made room may have run listeners.
                if self._sessions.get(session_id) is not old:
                    return None  # the sweep took it
                if old.renewed:
                    return old._renewed_by  # a listener renewed it
            previous = old._lineage
            old._supersede(grace_ends_at, renewed_by, new_metadata)
            due = deadline(old)[0]
            if due < old._due:
                # File it earlier; the later filing goes stale.
                old._due = due
                self._collector.add(session_id, due)
                self._stale += 1
            if self._limited:
                try:
                    self._make_room(subject, victims)
                except BaseException:
                    # A listener of an eviction raised (KeyboardInterrupt...):
                    # no successor, so no renewal. The earlier filing stays
                    # current; its sweep re-files the session where it belongs.
                    if self._sessions.get(session_id) is old and old._renewed_by == renewed_by:
                        old._lineage = previous
                    raise
            self._file(subject, new_session_id, new_metadata)
            return renewed_by
        finally:
            self._lock.release()

    def read_all(self, subject: str, now: int) -> dict[str, SessionMetadata]:
        """The subject's active sessions, keyed by handle. O(sessions of the
        subject); a handle is computed once per session, when first listed."""
        self._lock.acquire()
        try:
            listed: dict[str, SessionMetadata] = {}
            of_subject = self._subjects.get(subject)
            if of_subject is not None:
                for session_id, metadata in of_subject.items():
                    if is_active(metadata, now):
                        handle = metadata._handle
                        if handle is None:
                            handle = metadata._handle = session_handle(session_id)
                        listed[handle] = metadata
            if now != self._swept_at:
                self._sweep(now)
            return listed
        finally:
            self._lock.release()

    def delete(
        self, subject: str, session_id: str, reason: DeleteReason = DeleteReason.DELETED
    ) -> bool:
        """Remove one session; False if it is not stored under `subject`. O(1)."""
        self._lock.acquire()
        try:
            metadata = self._sessions.get(session_id)
            if metadata is None or metadata._subject != subject:
                return False
            # Its filing stays in its bucket, stale: counted before the
            # listeners run, so whatever they raise the count is exact.
            self._stale += 1
            self._remove([session_id], reason, False)
            if self._stale > _MIN_STALE_TO_COMPACT:
                self._compact_if_due()
            return True
        finally:
            self._lock.release()

    def delete_login(self, subject: str, session_id: str) -> int:
        """Remove every session of the login `session_id` belongs to; return
        how many. O(1) for a login never renewed, else O(sessions of the
        subject)."""
        self._lock.acquire()
        try:
            metadata = self._sessions.get(session_id)
            if metadata is None or metadata._subject != subject:
                return 0
            return self._remove_counted(self._login_of(subject, session_id, metadata))
        finally:
            self._lock.release()

    def delete_login_by_handle(self, subject: str, handle: str) -> int:
        """Remove every session of the login of the subject's session whose
        handle is `handle`; return how many. O(sessions of the subject)."""
        self._lock.acquire()
        try:
            for session_id, metadata in self._subjects.get(subject, {}).items():
                if metadata._handle is None:
                    metadata._handle = session_handle(session_id)
                if metadata._handle == handle:
                    return self._remove_counted(self._login_of(subject, session_id, metadata))
            return 0
        finally:
            self._lock.release()

    def delete_all(self, subject: str) -> int:
        """Remove every session of `subject`; return the count. O(those sessions)."""
        self._lock.acquire()
        try:
            session_ids = self._subjects.get(subject)
            if not session_ids:
                return 0
            # A copy: the delete path shrinks the dict (and a listener may add to it).
            return self._remove_counted(list(session_ids))
        finally:
            self._lock.release()

    def delete_other_logins(self, subject: str, keep: str, now: int) -> int | None:
        """Remove the subject's sessions outside the login of `keep`; None
        (nothing removed) if `keep` is not live at `now`. O(sessions of the
        subject)."""
        self._lock.acquire()
        try:
            metadata = self._sessions.get(keep)
            if metadata is None or metadata._subject != subject or deadline(metadata)[0] <= now:
                return None
            kept = set(self._login_of(subject, keep, metadata))
            others = [i for i in self._subjects[subject] if i not in kept]
            return self._remove_counted(others) if others else 0
        finally:
            self._lock.release()

    # -- the rest of the public surface ----------------------------------------

    def collect(self, now: int | None = None) -> int:
        """Evict everything due at `now` (default: this storage's clock);
        return how many sessions were removed. O(sessions due)."""
        if now is None:
            now = self.clock()
        elif type(now) is not int:
            raise InvalidTypeError(
                ErrorCode.INVALID_CLOCK, f"now must be an int of seconds, not {type(now).__name__}."
            )
        self._lock.acquire()
        try:
            return self._sweep(now)
        finally:
            self._lock.release()

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(subject, session_id, metadata, reason)` after each
        removal, inside the storage's lock (keep it short; it may call back
        into the storage). An `Exception` it raises is logged and swallowed;
        anything else (KeyboardInterrupt) propagates, and the storage stays
        consistent: what was not yet removed stays stored and scheduled."""
        if not callable(listener):
            raise InvalidTypeError(ErrorCode.INVALID_OPTION, "A listener must be callable.")
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling `listener`. ValueError if it was not added."""
        with self._lock:
            self._listeners.remove(listener)

    def stats(self) -> StorageStats:
        """The storage's counters now (sessions, subjects, removals by
        reason, refusals, sweeps). O(1)."""
        with self._lock:
            removed = self._removed
            return StorageStats(
                sessions=len(self._sessions),
                subjects=len(self._subjects),
                deleted=removed[DeleteReason.DELETED],
                expired=removed[DeleteReason.EXPIRED],
                idle=removed[DeleteReason.IDLE],
                renewed=removed[DeleteReason.RENEWED],
                evicted=removed[DeleteReason.EVICTED],
                refused=self._refused,
                sweeps=self._sweeps,
            )

    def save(self, path: str | os.PathLike[str]) -> int:
        """Write every stored session to a snapshot file at `path`,
        atomically; return how many were written. O(sessions held).

        The file holds the session ids (they are the keys): it is a secret,
        created with mode 0o600. See `usersession.storage.snapshot`. A
        session `load` would refuse raises `SnapshotError`
        (`SNAPSHOT_UNSERIALIZABLE`), a directory `load` would not trust
        `SnapshotError` (`SNAPSHOT_UNTRUSTED`); nothing is written then.
        """
        return save_snapshot(self, path)

    def load(self, path: str | os.PathLike[str]) -> int:
        """Add the sessions of the snapshot at `path`, except those whose
        deadline passed (judged by this storage's clock); return how many
        were added. O(sessions in the file).

        All or nothing: a truncated, corrupted or wrong-version file raises
        `SnapshotError` (`SNAPSHOT_INVALID`), a file someone else could have
        written (`usersession.storage.snapshot` says what is checked) raises
        `SnapshotError` (`SNAPSHOT_UNTRUSTED`), an id already stored raises
        `SessionStorageError`, and a limit under `REFUSE` that the file would
        exceed raises `SessionLimitError`; none of them changes the storage.
        Under `EVICT`, the limits are enforced after loading.
        """
        entries = read_snapshot(path, self.clock())
        with self._lock:
            return self._restore(entries)

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
        due = metadata._expires_at
        if metadata._idle is not None or (
            metadata._lineage is not None and metadata._lineage[GRACE_ENDS_AT] is not None
        ):
            # Only idle and a renewal's grace bring a deadline before
            # expires_at; skipping deadline() otherwise saves a call on every
            # plain create and renewal. (No local for the lineage: compiled,
            # holding None in one made the sweep's same test 9% slower, A/B.)
            due = deadline(metadata)[0]
        metadata._due = due
        self._sessions[session_id] = metadata
        of_subject = self._subjects.get(subject)
        if of_subject is None:
            self._subjects[subject] = {session_id: metadata}
        else:
            of_subject[session_id] = metadata
        self._collector.add(session_id, due)

    def _login_of(self, subject: str, session_id: str, metadata: SessionMetadata) -> list[str]:
        """The stored sessions of the login `session_id` (stored, with
        `metadata`) belongs to. O(1) for a login never renewed, else
        O(sessions of the subject)."""
        login = metadata._login
        if login is None:
            return [session_id]
        of_subject = self._subjects[subject]
        return [i for i, other in of_subject.items() if other._login == login]

    def _remove_counted(self, session_ids: list[str]) -> int:
        """`_remove` for an explicit deletion (reason DELETED): the filings of
        what it removes go stale in their buckets."""
        return self._remove(session_ids, DeleteReason.DELETED, True)

    def _remove(self, session_ids: list[str], reason: DeleteReason, filed: bool) -> int:
        """The one delete path: sessions, subject index, counters, listeners.

        Takes a batch, so that a sweep or a `delete_all` pays one call, not one
        per session (a third of a sweep's cost, benchmarks/ sweep). An id no
        longer stored is skipped: a listener may have removed it meanwhile.
        `filed`: the sessions' filings are still in their buckets (not popped
        by a sweep or an eviction), where they now go stale; then the buckets
        are compacted if the leftovers outgrow the bound (README), so it holds
        even while the clock stands still. Whatever a listener raises, what
        was removed is counted and what was not stays stored and filed.
        Returns how many were removed.

        A list, not any iterable: compiled, a loop over a `list[str]` indexes
        it; over an `Iterable` it goes through the iterator protocol."""
        sessions = self._sessions
        subjects = self._subjects
        listeners = self._listeners
        removed = counted = 0
        try:
            for session_id in session_ids:
                # Not `sessions.pop(session_id, None)`: compiled, `dict.pop`
                # is a generic method call, while a subscript and a `del` are
                # direct C calls (a fifth of a compiled sweep's instructions,
                # callgrind). The id is missing only when a listener removed it.
                try:
                    metadata = sessions[session_id]
                except KeyError:
                    continue
                del sessions[session_id]
                subject = metadata._subject
                of_subject = subjects[subject]
                del of_subject[session_id]
                left = len(of_subject)
                if not left:
                    del subjects[subject]
                elif (
                    # Checked at powers of two only: a copy costs O(1) amortised.
                    left >= 8
                    and not left & (left - 1)
                    and sys.getsizeof(of_subject) > _SPARSE_BYTES_PER_SESSION * left
                ):
                    subjects[subject] = dict(of_subject)
                removed += 1
                if listeners:
                    # Counted before it is told, so stats() in a listener adds up.
                    self._removed[reason] += 1
                    counted += 1
                    self._emit(subject, session_id, metadata, reason)
        finally:
            self._removed[reason] += removed - counted
            if filed:
                self._stale += removed
        if filed and self._stale > _MIN_STALE_TO_COMPACT:
            self._compact_if_due()
        return removed

    def _emit(
        self, subject: str, session_id: str, metadata: SessionMetadata, reason: DeleteReason
    ) -> None:
        for listener in list(self._listeners):
            try:
                listener(subject, session_id, metadata, reason)
            except Exception as error:
                _log_listener_failure(listener, session_id, reason, error)

    def _sweep(self, now: int) -> int:
        """Evict what is due at `now`; re-file what was touched since it was filed.

        If a listener raises something that is not an `Exception`
        (KeyboardInterrupt, SystemExit), the sessions of the bucket at hand
        that were not yet removed are filed again and the exception goes on:
        nothing due is forgotten, and the next operation sweeps again."""
        self._swept_at = now
        self._sweeps += 1
        sessions = self._sessions
        collector = self._collector
        expired: list[str] = []
        other: dict[DeleteReason, list[str]] = {}
        removed = 0
        stale = 0
        second = now
        filed: list[str] = []
        self._sweeping += 1
        try:
            for second, filed in collector.pop_due(now):
                # A few hundred at a time: the delete path then finds in the cache
                # what the judging just looked at (a whole 10k bucket would not be).
                for start in range(0, len(filed), _SWEEP_BATCH):
                    for session_id in filed[start : start + _SWEEP_BATCH]:
                        metadata = sessions.get(session_id)
                        if metadata is None or metadata._due != second:
                            stale += 1
                            continue
                        if metadata._idle is None and metadata._lineage is None:
                            # Only touches (idle) and renewals (grace) move a
                            # deadline: this one is still expires_at, due now, and
                            # skipping deadline() is a good part of a sweep's cost.
                            # (A renewed login's sessions, which have a lineage,
                            # are judged by deadline().)
                            expired.append(session_id)
                            continue
                        due, reason = deadline(metadata)
                        if due <= now:
                            other.setdefault(reason, []).append(session_id)
                        else:
                            metadata._due = due
                            collector.add(session_id, due)
                    # A listener may have deleted some of these meanwhile; their
                    # popped filings were counted stale by that delete: even it out.
                    if expired:
                        gone = self._remove(expired, DeleteReason.EXPIRED, False)
                        removed += gone
                        stale += len(expired) - gone
                        expired.clear()
                    if other:
                        for reason, doomed in other.items():
                            gone = self._remove(doomed, reason, False)
                            removed += gone
                            stale += len(doomed) - gone
                        other.clear()
        except BaseException:
            self._sweeping -= 1
            self._sweep_interrupted(second, filed, now)
            raise
        self._sweeping -= 1
        self._stale -= stale
        if self._stale > _MIN_STALE_TO_COMPACT:
            self._compact_if_due()
        return removed

    def _sweep_interrupted(self, second: int, filed: list[str], now: int) -> None:
        """A listener raised out of a sweep at `now` while it was at the bucket
        `filed` of `second`, already popped: file again what of it is still
        stored there (not yet judged, or judged but not yet removed), and make
        the next operation sweep again. The stale count lost its place, so the
        buckets are compacted (O(live), on this path only), unless this sweep
        ran inside another, which will be interrupted in turn."""
        sessions = self._sessions
        collector = self._collector
        for session_id in dict.fromkeys(filed):
            metadata = sessions.get(session_id)
            if metadata is not None and metadata._due == second:
                collector.add(session_id, second)
        if not self._sweeping:
            self._compact()
        self._swept_at = now - 1  # any second but now

    # -- capacity limits (only reached when a limit is set) ---------------------

    def _check_room(self, subject: str, now: int, superseding: str | None) -> list[str]:
        """Make sure one more session of `subject` may be stored: raise
        `SessionLimitError` under REFUSE, else return the subject's sessions
        to evict (the whole-storage eviction happens in `_make_room`).
        Changes nothing but a sweep of what is due at `now`. `superseding` is
        the session a renewal replaces: it stops counting for its subject.
        Sessions being made room for (`_reserved`) count as stored; when they
        hold all the room a limit allows, no eviction can help and the new
        session is refused whatever the policy (only a listener creating
        sessions while others are evicted gets there)."""
        victims = self._subject_victims(subject, superseding, 1)
        full = self._storage_full(victims)
        if (victims is None or victims or full) and now != self._swept_at:
            # Sessions already due make room first: nobody is refused or
            # evicted for the space expired ones hold.
            self._sweep(now)
            victims = self._subject_victims(subject, superseding, 1)
            full = self._storage_full(victims)
        if victims is None or (victims and self._max_per_subject_policy is LimitPolicy.REFUSE):
            raise self._refuse(
                f"The subject has max_sessions_per_subject ({self._max_per_subject}) sessions."
            )
        total = self._max_sessions
        if full and (
            self._max_sessions_policy is LimitPolicy.REFUSE
            or (total is not None and self._reserved >= total)
        ):
            raise self._refuse(f"The storage holds max_sessions ({total}) sessions.")
        return victims

    def _storage_full(self, victims: list[str] | None) -> bool:
        """Whether one more session does not fit `max_sessions` once `victims`
        are gone (the sessions reserved counting as stored)."""
        total = self._max_sessions
        if total is None:
            return False
        evicted = 0 if victims is None else len(victims)
        return len(self._sessions) - evicted + self._reserved >= total

    def _make_room(self, subject: str, victims: list[str]) -> None:
        """Evict `victims` (from `_check_room`) and, under EVICT, what else
        `max_sessions` needs for one more session of `subject`. Listeners run
        meanwhile and may create sessions (re-entrant): the new session's
        place is reserved, so theirs must find room of their own, and the
        limits hold when the caller files it. O(1) when nothing is evicted."""
        total = self._max_sessions
        if not victims and (total is None or len(self._sessions) + self._reserved < total):
            return  # nothing to evict, no listener to run
        reserved_for = self._reserved_for
        self._reserved += 1
        reserved_for[subject] = reserved_for.get(subject, 0) + 1
        try:
            self._evict(victims)
        finally:
            self._reserved -= 1
            left = reserved_for[subject] - 1
            if left:
                reserved_for[subject] = left
            else:
                del reserved_for[subject]

    def _refuse(self, message: str) -> SessionLimitError:
        self._refused += 1
        return SessionLimitError(ErrorCode.SESSION_LIMIT_REACHED, message)

    def _subject_victims(
        self, subject: str, superseding: str | None, extra: int
    ) -> list[str] | None:
        """The subject's oldest sessions in use (smallest `created_at`) that
        must go for `extra` more (and those reserved for it) to fit its limit;
        None if evicting all of them would not do. O(sessions of the subject)
        once the subject is at its limit, O(1) before."""
        limit = self._max_per_subject
        if limit is None:
            return []
        if self._reserved_for:
            extra += self._reserved_for.get(subject, 0)
            if extra > limit:
                return None
        of_subject = self._subjects.get(subject)
        if of_subject is None or len(of_subject) + extra <= limit:
            return []
        in_use = []
        for session_id, metadata in of_subject.items():
            if counts_per_subject(metadata) and session_id != superseding:
                in_use.append((metadata._created_at, session_id))
        excess = len(in_use) + extra - limit
        if excess <= 0:
            return []
        return [session_id for _, session_id in heapq.nsmallest(excess, in_use)]

    def _evict(self, victims: list[str]) -> None:
        """Evict `victims`, then, until the sessions reserved fit, the session
        closest to its deadline (listeners may store more meanwhile: the
        condition is checked again after each eviction)."""
        sessions = self._sessions
        self._remove(victims, DeleteReason.EVICTED, True)
        total = self._max_sessions
        if total is not None:
            while len(sessions) + self._reserved > total and self._evict_closest():
                pass

    def _evict_closest(self) -> bool:
        """Evict the session whose deadline comes first; False if none is
        held. O(1) amortized: stale filings met on the way are dropped, and a
        session touched since it was filed is re-filed at its real deadline
        (what a sweep would have done) before it is judged."""
        collector = self._collector
        sessions = self._sessions
        while True:
            filing = collector.pop_earliest()
            if filing is None:
                return False
            session_id, second = filing
            metadata = sessions.get(session_id)
            if metadata is None or metadata._due != second:
                self._stale -= 1
                continue
            due = deadline(metadata)[0]
            if due > second:
                metadata._due = due
                collector.add(session_id, due)
                continue
            self._remove([session_id], DeleteReason.EVICTED, False)
            return True

    # -- snapshots -------------------------------------------------------------

    def _restore(self, entries: list[tuple[str, SessionMetadata]]) -> int:
        """File `entries` (from `snapshot.read_snapshot`), all or nothing."""
        sessions = self._sessions
        for session_id, _ in entries:
            if session_id in sessions:
                raise SessionStorageError(
                    ErrorCode.STORAGE_FAILURE,
                    f"Session '{session_handle(session_id)}' of the snapshot is already stored.",
                )
        subjects = {metadata._subject for _, metadata in entries}
        if self._limited:
            total = self._max_sessions
            if (
                total is not None
                and len(sessions) + len(entries) > total
                and self._max_sessions_policy is LimitPolicy.REFUSE
            ):
                raise self._refuse(f"The snapshot does not fit max_sessions ({total}).")
            if self._max_per_subject_policy is LimitPolicy.REFUSE:
                in_use = Counter(
                    metadata._subject for _, metadata in entries if counts_per_subject(metadata)
                )
                for subject in subjects:
                    in_use[subject] += sum(
                        1
                        for stored in self._subjects.get(subject, {}).values()
                        if counts_per_subject(stored)
                    )
                limit = self._max_per_subject
                if limit is not None and any(count > limit for count in in_use.values()):
                    raise self._refuse(
                        f"The snapshot does not fit max_sessions_per_subject ({limit})."
                    )
        for session_id, metadata in entries:
            self._file(metadata._subject, session_id, metadata)
        if self._limited:
            for subject in subjects:
                self._evict(self._subject_victims(subject, None, 0) or [])
            self._evict([])
        return len(entries)

    def _compact_if_due(self) -> None:
        """Compact once the stale filings outnumber the live sessions (README's
        bound), but never inside a sweep, which checks when it ends."""
        if self._stale > len(self._sessions) and not self._sweeping:
            self._compact()

    def _compact(self) -> None:
        """File every stored session once, at the second it is due, and
        nothing else: the stale count is 0 again. O(live), and nothing per
        stale filing: walking the sessions in order costs a seventh of asking
        about each filing (`BucketGarbageCollector.compact`), whose ids are
        scattered in memory (benchmarks/ delete). Runs when the stale filings
        outnumber the live sessions, so O(1) amortized per removal. Never
        inside a sweep: the bucket it holds would be filed twice."""
        buckets: dict[int, list[str]] = {}
        for session_id, metadata in self._sessions.items():
            second = metadata._due
            bucket = buckets.get(second)
            if bucket is None:
                buckets[second] = [session_id]
            else:
                bucket.append(session_id)
        self._collector.replace(buckets)
        self._stale = 0
