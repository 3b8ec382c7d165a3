"""The in-memory storage: expiry by deadline buckets, the one delete path, events."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import pytest

from tests.builds import refused
from usersession import (
    DeleteReason,
    ErrorCode,
    InMemorySessionStorage,
    LimitPolicy,
    ManualClock,
    SessionContext,
    SessionMetadata,
    SessionStorageError,
    Timeouts,
    UserSessionManager,
)

from .conftest import START

CONTEXT = SessionContext(ip="10.0.0.1")


@dataclass
class Rig:
    """A manager on an in-memory storage, with its clock and the delete events seen."""

    clock: ManualClock
    storage: InMemorySessionStorage
    manager: UserSessionManager
    events: list[tuple[str, DeleteReason]]


def setup(timeouts: Timeouts | None = None, session_ttl: int = 100) -> Rig:
    clock = ManualClock(START)
    storage = InMemorySessionStorage(clock=clock)
    events: list[tuple[str, DeleteReason]] = []
    storage.add_listener(lambda subject, session_id, _, reason: events.append((session_id, reason)))
    manager = UserSessionManager(storage, session_ttl=session_ttl, timeouts=timeouts)
    return Rig(clock, storage, manager, events)


def _assert_books_balance(storage: InMemorySessionStorage) -> None:
    """Index, counters and buckets agree: every stored session has a filing
    at its deadline second, `_stale` counts exactly the filings that are
    not such, and the subject index groups exactly the stored sessions."""
    sessions = storage._sessions
    buckets = storage._collector._buckets
    current = sum(
        1
        for second, bucket in buckets.items()
        for session_id in bucket
        if session_id in sessions and sessions[session_id]._due == second
    )
    assert all(i in buckets.get(m._due, ()) for i, m in sessions.items()), "one is unscheduled"
    assert storage._stale == len(storage._collector) - current
    grouped: dict[str, dict[str, SessionMetadata]] = {}
    for session_id, metadata in sessions.items():
        grouped.setdefault(metadata.subject, {})[session_id] = metadata
    assert grouped == storage._subjects
    assert storage.stats().sessions == len(sessions)


class SteppingClock:
    """A clock that can be set anywhere, backwards included (as NTP may)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _interrupt_once(storage: InMemorySessionStorage) -> list[str]:
    """Add a listener that raises KeyboardInterrupt at its first event; return
    the ids it was told about."""
    told: list[str] = []

    def interrupt(subject: str, session_id: str, _: SessionMetadata, reason: object) -> None:
        told.append(session_id)
        if len(told) == 1:
            raise KeyboardInterrupt

    storage.add_listener(interrupt)
    return told


def test_len_counts_what_is_held_without_sweeping() -> None:
    rig = setup()
    for _ in range(3):
        rig.manager.create("uid1", CONTEXT)
    rig.clock.advance(100)
    assert len(rig.storage) == 3
    assert rig.storage.collect() == 3
    assert len(rig.storage) == 0
    assert [reason for _, reason in rig.events] == [DeleteReason.EXPIRED] * 3


def test_the_next_operation_in_a_new_second_sweeps_what_came_due() -> None:
    rig = setup()
    expired = rig.manager.create("uid1", CONTEXT, ttl=10)
    rig.manager.create("uid2", CONTEXT)
    rig.clock.advance(10)
    rig.manager.read_all("uid2")
    assert rig.events == [(expired, DeleteReason.EXPIRED)]
    assert len(rig.storage) == 1


def test_a_session_touched_since_it_was_filed_survives_its_first_bucket() -> None:
    rig = setup(Timeouts(idle=10))
    session_id = rig.manager.create("uid1", CONTEXT)
    rig.clock.advance(9)
    rig.manager.read("uid1", session_id, CONTEXT)
    rig.clock.advance(2)
    assert rig.storage.collect() == 0
    rig.manager.read("uid1", session_id, CONTEXT)
    rig.clock.advance(10)
    assert rig.storage.collect() == 1
    assert rig.events == [(session_id, DeleteReason.IDLE)]


def test_an_idle_session_is_reclaimed_by_a_sweep_with_reason_idle() -> None:
    rig = setup(Timeouts(idle=10))
    session_id = rig.manager.create("uid1", CONTEXT)
    rig.clock.advance(10)
    assert rig.storage.collect() == 1
    assert rig.events == [(session_id, DeleteReason.IDLE)]


def test_a_read_that_finds_a_session_idle_reports_expiry_once() -> None:
    rig = setup(Timeouts(idle=10))
    session_id = rig.manager.create("uid1", CONTEXT)
    rig.clock.advance(10)
    with pytest.raises(Exception, match="expired"):
        rig.manager.read("uid1", session_id, CONTEXT)
    assert rig.events == [(session_id, DeleteReason.IDLE)]


def test_a_superseded_session_leaves_when_its_grace_ends_with_reason_renewed() -> None:
    rig = setup(Timeouts(renewal=50, renewal_grace=5))
    old = rig.manager.create("uid1", CONTEXT)
    rig.clock.advance(50)
    _, new = rig.manager.read("uid1", old, CONTEXT)
    rig.clock.advance(4)
    assert rig.storage.collect() == 0
    rig.clock.advance(1)
    assert rig.storage.collect() == 1
    assert rig.events == [(old, DeleteReason.RENEWED)]
    assert new is not None and len(rig.storage) == 1


def test_the_subject_index_leaves_no_empty_entry_behind() -> None:
    rig = setup()
    first = rig.manager.create("uid1", CONTEXT)
    rig.manager.create("uid2", CONTEXT, ttl=5)
    rig.manager.delete("uid1", first)
    rig.clock.advance(5)
    rig.storage.collect()
    assert rig.storage._subjects == {}


def test_a_listener_that_raises_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = setup()

    def broken(subject: str, session_id: str, metadata: SessionMetadata, reason: object) -> None:
        raise RuntimeError("listener bug")

    rig.storage.add_listener(broken)
    later: list[str] = []
    rig.storage.add_listener(lambda subject, session_id, _, reason: later.append(session_id))
    session_id = rig.manager.create("uid1", CONTEXT)
    with caplog.at_level(logging.ERROR, logger="usersession"):
        rig.manager.delete("uid1", session_id)
    assert later == [session_id] and len(rig.events) == 1
    assert len(rig.storage) == 0 and rig.storage._subjects == {}
    assert UserSessionManager.hash(session_id) in caplog.text
    assert session_id not in caplog.text


def test_a_listener_may_call_back_into_the_storage() -> None:
    rig = setup()
    kept = rig.manager.create("uid2", CONTEXT)
    rig.storage.add_listener(lambda subject, session_id, _, reason: rig.manager.delete_all("uid2"))
    rig.manager.delete("uid1", rig.manager.create("uid1", CONTEXT))
    assert len(rig.storage) == 0
    del kept


def test_an_id_already_stored_is_refused_not_overwritten() -> None:
    rig = setup()
    session_id = rig.manager.create("uid1", CONTEXT)
    intruder = SessionMetadata("10.6.6.6", None, None, START, START, START + 100)
    with pytest.raises(SessionStorageError):
        rig.storage.insert("uid2", session_id, intruder)
    assert rig.manager.read("uid1", session_id, CONTEXT)[0].ip == CONTEXT.ip


def test_deleted_sessions_do_not_pin_memory_in_their_buckets_for_long() -> None:
    # Deleted ids stay in their bucket lazily; compaction bounds them by the live count.
    rig = setup(session_ttl=10_000)
    for _ in range(20_000):
        rig.manager.delete("uid1", rig.manager.create("uid1", CONTEXT))
    rig.clock.advance(1)
    rig.storage.collect()
    assert len(rig.storage._collector) <= 4096 + len(rig.storage)


def test_deleted_sessions_stay_within_the_bound_while_the_clock_stands_still() -> None:
    # README's bound on what is held beyond the live sessions: at most the
    # live count again plus 4096 leftover filings, whether or not time moves.
    rig = setup(session_ttl=10_000)
    live = [rig.manager.create("kept", CONTEXT) for _ in range(1000)]
    for _ in range(20_000):
        rig.manager.delete("uid1", rig.manager.create("uid1", CONTEXT))
    assert len(rig.storage) == len(live)
    assert len(rig.storage._collector) <= 2 * len(live) + 4096
    _assert_books_balance(rig.storage)


def test_a_subject_that_held_many_sessions_gives_the_room_back_as_they_go() -> None:
    # CPython never shrinks a dict on deletes, and walking one costs its peak
    # size: listing or revoking for a subject down to one session from 100k
    # walked 100k dead slots each time, and held their memory.
    rig = setup(session_ttl=10_000)
    ids = [rig.manager.create("uid1", CONTEXT) for _ in range(100_000)]
    kept = ids.pop()
    for session_id in ids:
        rig.manager.delete("uid1", session_id)
    assert list(rig.manager.read_all("uid1")) == [rig.manager.hash(kept)]
    assert sys.getsizeof(rig.storage._subjects["uid1"]) < 4_096
    _assert_books_balance(rig.storage)


def test_evictions_stay_within_the_bound_while_the_clock_stands_still() -> None:
    storage = InMemorySessionStorage(
        clock=ManualClock(START),
        max_sessions_per_subject=1,
        max_sessions_per_subject_policy=LimitPolicy.EVICT,
    )
    manager = UserSessionManager(storage, session_ttl=10_000)
    for _ in range(20_000):
        manager.create("uid1", CONTEXT)
    assert len(storage) == 1
    assert len(storage._collector) <= 2 * len(storage) + 4096
    _assert_books_balance(storage)


def test_a_collect_at_a_future_time_does_not_stop_later_sweeps() -> None:
    rig = setup()
    rig.storage.collect(START + 1000)
    expired = rig.manager.create("uid1", CONTEXT, ttl=10)
    rig.clock.advance(10)
    rig.manager.read_all("uid2")
    assert rig.events == [(expired, DeleteReason.EXPIRED)]
    assert len(rig.storage) == 0


def test_sweeping_carries_on_when_the_clock_steps_back() -> None:
    clock = SteppingClock(START + 3600)
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(storage, session_ttl=100)
    manager.read_all("uid2")  # swept at START + 3600
    clock.now = START  # an hour back
    manager.create("uid1", CONTEXT, ttl=10)
    clock.now = START + 10
    manager.read_all("uid2")
    assert len(storage) == 0


def test_a_listener_interrupting_a_sweep_leaves_the_rest_of_the_batch_scheduled() -> None:
    rig = setup()
    for index in range(10):
        rig.manager.create(f"uid{index}", CONTEXT, ttl=10)
    told = _interrupt_once(rig.storage)
    rig.clock.advance(10)
    with pytest.raises(KeyboardInterrupt):
        rig.storage.collect()
    assert len(rig.storage) == 9
    _assert_books_balance(rig.storage)
    assert rig.storage.collect() == 9
    assert len(told) == 10 == rig.storage.stats().expired
    _assert_books_balance(rig.storage)


def test_the_next_operation_finishes_a_sweep_a_listener_interrupted() -> None:
    rig = setup()
    for index in range(10):
        rig.manager.create(f"uid{index}", CONTEXT, ttl=10)
    _interrupt_once(rig.storage)
    rig.clock.advance(10)
    with pytest.raises(KeyboardInterrupt):
        rig.manager.read_all("nobody")
    rig.manager.read_all("nobody")  # the same second
    assert len(rig.storage) == 0


def test_a_listener_interrupting_delete_all_leaves_the_rest_stored_and_scheduled() -> None:
    rig = setup()
    for _ in range(5):
        rig.manager.create("uid1", CONTEXT, ttl=10)
    _interrupt_once(rig.storage)
    with pytest.raises(KeyboardInterrupt):
        rig.manager.delete_all("uid1")
    assert len(rig.storage) == 4
    _assert_books_balance(rig.storage)
    rig.clock.advance(10)
    assert rig.storage.collect() == 4
    _assert_books_balance(rig.storage)


def test_a_renewal_a_listener_interrupts_is_undone() -> None:
    clock = ManualClock(START)
    storage = InMemorySessionStorage(
        clock=clock, max_sessions=2, max_sessions_policy=LimitPolicy.EVICT
    )
    manager = UserSessionManager(
        storage, session_ttl=1000, timeouts=Timeouts(renewal=100, renewal_grace=10)
    )
    renewing = manager.create("alice", CONTEXT)
    clock.advance(95)
    manager.create("bob", CONTEXT, ttl=10)  # the closest deadline: evicted for the successor
    clock.advance(5)
    _interrupt_once(storage)
    with pytest.raises(KeyboardInterrupt):
        manager.read("alice", renewing, CONTEXT)
    assert not storage._sessions[renewing].renewed
    _assert_books_balance(storage)
    _, renewed = manager.read("alice", renewing, CONTEXT)
    assert renewed is not None


def test_a_touch_racing_a_delete_does_not_bring_the_session_back() -> None:
    rig = setup()
    session_id = rig.manager.create("uid1", CONTEXT)
    metadata = rig.storage.read("uid1", session_id, rig.clock())
    assert metadata is not None
    rig.storage.delete("uid1", session_id)
    rig.storage.touch("uid1", session_id, metadata, rig.clock())
    assert rig.storage.read("uid1", session_id, rig.clock()) is None
    assert len(rig.storage) == 0


def test_the_metadata_handed_out_is_read_only() -> None:
    rig = setup()
    session_id = rig.manager.create("uid1", CONTEXT)
    metadata, _ = rig.manager.read("uid1", session_id, CONTEXT)
    with pytest.raises(AttributeError):
        metadata.expires_at = START + 10**9  # type: ignore[misc]
    assert session_id not in repr(metadata)


@pytest.mark.parametrize("now", ["later", 1.5, None.__class__])
def test_collect_refuses_a_time_that_is_not_whole_seconds(now: object) -> None:
    rig = setup()
    rig.manager.create("uid1", CONTEXT)
    with refused(ErrorCode.INVALID_CLOCK):
        rig.storage.collect(now)  # type: ignore[arg-type]
    assert len(rig.storage) == 1


def test_a_listener_deleting_during_a_sweep_keeps_the_books_straight() -> None:
    rig = setup()
    for _ in range(10):
        rig.manager.create("u", CONTEXT, ttl=10)
        rig.manager.create("v", CONTEXT, ttl=10)
    seen: list[tuple[int, int, int]] = []

    def meddle(subject: str, session_id: str, _: SessionMetadata, reason: DeleteReason) -> None:
        stats = rig.storage.stats()
        seen.append((stats.sessions, stats.expired, stats.deleted))
        if subject == "u":
            rig.storage.delete_all("v")

    rig.storage.add_listener(meddle)
    rig.clock.advance(10)
    removed = rig.storage.collect()
    assert len(rig.storage) == 0
    stats = rig.storage.stats()
    assert removed + stats.deleted == 20 == stats.expired + stats.deleted
    # Every removal is counted before its event: held + removed always adds up.
    assert all(held + expired + deleted == 20 for held, expired, deleted in seen)
    # No filing is left over, and none is counted stale that is not there.
    assert len(rig.storage._collector) == rig.storage._stale == 0
