"""Stress: 8 threads hammer one storage through two managers, with renewal
and idle on and a shared clock moving; afterwards every invariant is checked.
With limits set, every single filing is checked against them, inside the
storage's lock, so "never exceeded" is exact and not sampled."""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field

import pytest

from usersession import (
    DeleteReason,
    InMemorySessionStorage,
    LimitPolicy,
    ManualClock,
    SessionContext,
    SessionExpiredError,
    SessionLimitError,
    SessionMetadata,
    SessionNotFoundError,
    Timeouts,
    UserSessionManager,
)

THREADS = 8
OPERATIONS_PER_THREAD = 2500
SUBJECTS = [f"user{index}" for index in range(16)]
CONTEXT = SessionContext(ip="10.0.0.1")
TIMEOUTS = Timeouts(idle=120, renewal=60, renewal_grace=20)
EXPECTED = (SessionNotFoundError, SessionExpiredError, SessionLimitError)


class _CheckedStorage(InMemorySessionStorage):
    """Checks the limits after every filing, under the storage's lock, and
    counts the renewals a limit refused (a read does not raise for those)."""

    violations: list[str]
    refused_renewals: list[str]

    def renew(self, subject: str, session_id: str, *args: object) -> str | None:
        try:
            return super().renew(subject, session_id, *args)  # type: ignore[arg-type]
        except SessionLimitError:
            self.refused_renewals.append(session_id)
            raise

    def _file(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        super()._file(subject, session_id, metadata)
        total = self._max_sessions
        if total is not None and len(self._sessions) > total:
            self.violations.append(f"{len(self._sessions)} sessions held, max {total}")
        limit = self._max_per_subject
        if limit is not None:
            in_use = sum(1 for sid in self._subjects[subject] if not self._sessions[sid].renewed)
            if in_use > limit:
                self.violations.append(f"{in_use} sessions in use by a subject, max {limit}")


@dataclass
class _Tally:
    operations: int = 0
    created: int = 0
    refused: int = 0
    renewals: list[tuple[str, str]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def _worker(
    seed: int,
    managers: list[UserSessionManager],
    storage: InMemorySessionStorage,
    clock: ManualClock,
    clock_lock: threading.Lock,
    known: list[tuple[str, str]],
    start: threading.Barrier,
    tally: _Tally,
) -> None:
    rng = random.Random(seed)
    start.wait()
    for _ in range(OPERATIONS_PER_THREAD):
        manager = rng.choice(managers)
        roll = rng.random()
        tally.operations += 1
        try:
            if roll < 0.25:
                subject = rng.choice(SUBJECTS)
                known.append((subject, manager.create(subject, CONTEXT)))
                tally.created += 1
            elif roll < 0.65 and known:
                # Mostly recent sessions: they are the ones alive enough to renew.
                subject, session_id = rng.choice(known[-64:])
                if rng.random() < 0.05:
                    subject = rng.choice(SUBJECTS)  # sometimes the wrong subject
                _, renewed = manager.read(subject, session_id, CONTEXT)
                if renewed is not None:
                    tally.renewals.append((session_id, renewed))
                    known.append((subject, renewed))
            elif roll < 0.75:
                manager.read_all(rng.choice(SUBJECTS))
            elif roll < 0.82 and known:
                manager.delete(*rng.choice(known))
            elif roll < 0.84:
                manager.delete_all(rng.choice(SUBJECTS))
            elif roll < 0.90:
                storage.collect()
            else:
                with clock_lock:
                    clock.advance(rng.randint(1, 8))
        except SessionLimitError:
            tally.refused += 1
        except EXPECTED:
            pass
        except Exception as error:  # anything else is a finding
            tally.unexpected.append(repr(error))


LIMITS = {
    "unbounded": {},
    "evict": {
        "max_sessions": 60,
        "max_sessions_policy": LimitPolicy.EVICT,
        "max_sessions_per_subject": 3,
        "max_sessions_per_subject_policy": LimitPolicy.EVICT,
    },
    "refuse": {"max_sessions": 60, "max_sessions_per_subject": 3},
    "mixed": {
        "max_sessions": 40,
        "max_sessions_per_subject": 4,
        "max_sessions_per_subject_policy": LimitPolicy.EVICT,
    },
}


@pytest.mark.parametrize("limits", list(LIMITS), ids=list(LIMITS))
def test_eight_threads_leave_every_invariant_intact(limits: str, clock: ManualClock) -> None:
    storage = _CheckedStorage(clock=clock, **LIMITS[limits])  # type: ignore[arg-type]
    storage.violations = []
    storage.refused_renewals = []
    events: list[tuple[str, str, DeleteReason]] = []
    storage.add_listener(
        lambda subject, session_id, metadata, reason: events.append((subject, session_id, reason))
    )
    managers = [UserSessionManager(storage, session_ttl=600, timeouts=TIMEOUTS) for _ in range(2)]
    known: list[tuple[str, str]] = []
    tallies = [_Tally() for _ in range(THREADS)]
    start = threading.Barrier(THREADS)
    clock_lock = threading.Lock()
    threads = [
        threading.Thread(
            target=_worker,
            args=(seed, managers, storage, clock, clock_lock, known, start, tallies[seed]),
        )
        for seed in range(THREADS)
    ]
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: more interleavings per run
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
            assert not thread.is_alive()
    finally:
        sys.setswitchinterval(switch_interval)

    violations: list[str] = [*storage.violations]
    for tally in tallies:
        violations += tally.unexpected
    # T5: the subject index is the grouping of the stored sessions, no empty entries.
    grouped: dict[str, dict[str, SessionMetadata]] = {}
    for session_id, metadata in storage._sessions.items():
        grouped.setdefault(metadata.subject, {})[session_id] = metadata
    if grouped != storage._subjects:
        violations.append("subject index drifted from the sessions")
    # Counts add up: every session stored was created or renewed into being, and
    # is either still held or was removed exactly once.
    renewals = [pair for tally in tallies for pair in tally.renewals]
    created = sum(tally.created for tally in tallies)
    removed_ids = [session_id for _, session_id, _ in events]
    if len(set(removed_ids)) != len(removed_ids):
        violations.append("a session was removed twice")
    if created + len(renewals) != len(storage) + len(events):
        violations.append(
            f"{created} created + {len(renewals)} renewed != "
            f"{len(storage)} held + {len(events)} removed"
        )
    stats = storage.stats()
    by_reason = Counter(reason for _, _, reason in events)
    if (stats.deleted, stats.expired, stats.idle, stats.renewed, stats.evicted) != (
        by_reason[DeleteReason.DELETED],
        by_reason[DeleteReason.EXPIRED],
        by_reason[DeleteReason.IDLE],
        by_reason[DeleteReason.RENEWED],
        by_reason[DeleteReason.EVICTED],
    ):
        violations.append("stats() disagree with the delete events")
    if stats.refused != sum(tally.refused for tally in tallies) + len(storage.refused_renewals):
        violations.append("stats().refused disagrees with the refusals seen")
    # R1: every old session was renewed at most once.
    old_ids = [old for old, _ in renewals]
    if len(set(old_ids)) != len(old_ids):
        violations.append("a session was renewed twice")
    # T4: after a collect past every deadline, nothing is left.
    clock.advance(10_000)
    storage.collect()
    if len(storage) or storage._subjects:
        violations.append("memory not given back after every deadline passed")

    operations = sum(tally.operations for tally in tallies)
    print(
        f"\nstress[{limits}]: {operations} operations, {THREADS} threads, "
        f"{created} created, {len(renewals)} renewed, {stats.refused} refused, "
        f"{stats.evicted} evicted, {len(events)} removed, {len(violations)} violations"
    )
    assert operations == THREADS * OPERATIONS_PER_THREAD
    assert renewals, "the run renewed nothing: renewal was not exercised"
    if limits == "evict":
        assert stats.evicted > 0 and stats.refused == 0
    if limits == "refuse":
        assert stats.refused > 0 and stats.evicted == 0
    if limits == "mixed":
        assert stats.refused > 0 and stats.evicted > 0
    assert violations == []
