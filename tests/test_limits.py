"""Capacity limits of the in-memory storage: `max_sessions` and
`max_sessions_per_subject`, each refusing or evicting as chosen."""

from __future__ import annotations

import pytest

from tests.builds import refused, takes_a_bool_for_an_int
from usersession import (
    DeleteReason,
    ErrorCode,
    InMemorySessionStorage,
    InvalidOptionsError,
    InvalidTypeError,
    LimitPolicy,
    ManualClock,
    SessionContext,
    SessionLimitError,
    SessionMetadata,
    SessionNotFoundError,
    Timeouts,
    UserSessionManager,
)

from .conftest import START

CONTEXT = SessionContext(ip="10.0.0.1")

Event = tuple[str, str, DeleteReason]


def _storage(clock: ManualClock, **limits: object) -> tuple[InMemorySessionStorage, list[Event]]:
    storage = InMemorySessionStorage(clock=clock, **limits)  # type: ignore[arg-type]
    events: list[Event] = []
    storage.add_listener(
        lambda subject, session_id, metadata, reason: events.append((subject, session_id, reason))
    )
    return storage, events


def _subject_index_matches(storage: InMemorySessionStorage) -> bool:
    grouped: dict[str, dict[str, SessionMetadata]] = {}
    for session_id, metadata in storage._sessions.items():
        grouped.setdefault(metadata.subject, {})[session_id] = metadata
    return grouped == storage._subjects


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"max_sessions": 0}, InvalidOptionsError),
        ({"max_sessions": -3}, InvalidOptionsError),
        ({"max_sessions": 2.0}, InvalidTypeError),
        pytest.param({"max_sessions": True}, InvalidTypeError, marks=takes_a_bool_for_an_int),
        ({"max_sessions": "5"}, InvalidTypeError),
        ({"max_sessions_per_subject": 0}, InvalidOptionsError),
        ({"max_sessions_per_subject": 1.5}, InvalidTypeError),
        ({"max_sessions_policy": "evict"}, InvalidTypeError),
        ({"max_sessions_per_subject_policy": None}, InvalidTypeError),
    ],
)
def test_bad_limit_options_are_refused_with_invalid_option(
    options: dict[str, object], error: type[Exception]
) -> None:
    with refused(ErrorCode.INVALID_OPTION, error):
        InMemorySessionStorage(**options)  # type: ignore[arg-type]


def test_limits_are_unbounded_by_default(clock: ManualClock) -> None:
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(storage, session_ttl=60)
    for _ in range(500):
        manager.create("uid", CONTEXT)
    assert len(storage) == 500
    assert not storage._limited


def test_refuse_at_max_sessions_raises_and_stores_nothing(clock: ManualClock) -> None:
    storage, events = _storage(clock, max_sessions=3)
    manager = UserSessionManager(storage, session_ttl=60)
    kept = [manager.create(f"uid{i}", CONTEXT) for i in range(3)]
    with pytest.raises(SessionLimitError) as raised:
        manager.create("uid9", CONTEXT)
    assert raised.value.code is ErrorCode.SESSION_LIMIT_REACHED
    assert len(storage) == 3
    assert set(storage._sessions) == set(kept)
    assert "uid9" not in storage._subjects
    assert events == []
    assert storage.stats().refused == 1


def test_refuse_at_max_sessions_per_subject_leaves_other_subjects_free(clock: ManualClock) -> None:
    storage, events = _storage(clock, max_sessions_per_subject=2)
    manager = UserSessionManager(storage, session_ttl=60)
    manager.create("alice", CONTEXT)
    manager.create("alice", CONTEXT)
    with pytest.raises(SessionLimitError):
        manager.create("alice", CONTEXT)
    manager.create("bob", CONTEXT)
    assert len(storage._subjects["alice"]) == 2
    assert len(storage._subjects["bob"]) == 1
    assert events == []


def test_evict_per_subject_removes_the_subjects_oldest_session(clock: ManualClock) -> None:
    storage, events = _storage(
        clock, max_sessions_per_subject=2, max_sessions_per_subject_policy=LimitPolicy.EVICT
    )
    manager = UserSessionManager(storage, session_ttl=600)
    # The oldest is created first but given the longest TTL: age, not deadline, decides.
    oldest = manager.create("alice", CONTEXT, ttl=5000)
    clock.advance(1)
    middle = manager.create("alice", CONTEXT, ttl=10)
    other = manager.create("bob", CONTEXT, ttl=20)
    clock.advance(1)
    newest = manager.create("alice", CONTEXT)
    assert events == [("alice", oldest, DeleteReason.EVICTED)]
    assert storage._subjects["alice"].keys() == {middle, newest}
    assert other in storage._sessions
    with pytest.raises(SessionNotFoundError):
        manager.read("alice", oldest, CONTEXT)
    assert storage.stats().evicted == 1


def test_evict_at_max_sessions_removes_the_session_closest_to_its_deadline(
    clock: ManualClock,
) -> None:
    storage, events = _storage(clock, max_sessions=3, max_sessions_policy=LimitPolicy.EVICT)
    manager = UserSessionManager(storage, session_ttl=600)
    long_lived = manager.create("a", CONTEXT, ttl=500)
    soonest = manager.create("b", CONTEXT, ttl=50)
    middle = manager.create("c", CONTEXT, ttl=100)
    newest = manager.create("d", CONTEXT, ttl=1000)
    assert events == [("b", soonest, DeleteReason.EVICTED)]
    assert set(storage._sessions) == {long_lived, middle, newest}
    assert _subject_index_matches(storage)


def test_global_eviction_judges_the_real_deadline_of_a_touched_session(
    clock: ManualClock,
) -> None:
    # A read does not re-file a session; the eviction must look past the
    # filing to the real (idle) deadline, as a sweep would.
    storage, events = _storage(clock, max_sessions=2, max_sessions_policy=LimitPolicy.EVICT)
    manager = UserSessionManager(storage, session_ttl=1000, timeouts=Timeouts(idle=100))
    touched = manager.create("a", CONTEXT)  # filed at idle deadline start+100
    clock.advance(50)
    untouched = manager.create("b", CONTEXT)  # idle deadline start+150
    clock.advance(40)
    manager.read("a", touched, CONTEXT)  # real idle deadline start+190, still filed at +100
    manager.create("c", CONTEXT)
    assert events == [("b", untouched, DeleteReason.EVICTED)]
    assert touched in storage._sessions


def test_due_sessions_make_room_before_anyone_is_refused(clock: ManualClock) -> None:
    storage, events = _storage(clock, max_sessions=2)
    manager = UserSessionManager(storage, session_ttl=600)
    manager.create("a", CONTEXT, ttl=10)
    manager.create("b", CONTEXT, ttl=10)
    clock.advance(10)
    manager.create("c", CONTEXT)
    assert len(storage) == 1
    assert [reason for _, _, reason in events] == [DeleteReason.EXPIRED] * 2


def test_a_renewal_does_not_count_twice_against_the_subject_limit(clock: ManualClock) -> None:
    storage, events = _storage(clock, max_sessions_per_subject=2)
    manager = UserSessionManager(
        storage, session_ttl=1000, timeouts=Timeouts(renewal=100, renewal_grace=10)
    )
    first = manager.create("alice", CONTEXT)
    manager.create("alice", CONTEXT)
    clock.advance(100)
    _, renewed = manager.read("alice", first, CONTEXT)
    assert renewed is not None
    # Three stored (one superseded inside its grace), two in use.
    assert len(storage._subjects["alice"]) == 3
    with pytest.raises(SessionLimitError):
        manager.create("alice", CONTEXT)
    assert events == []


def test_a_read_whose_renewal_a_full_storage_refuses_touches_and_succeeds(
    clock: ManualClock,
) -> None:
    storage, _ = _storage(clock, max_sessions=2)
    manager = UserSessionManager(
        storage, session_ttl=1000, timeouts=Timeouts(renewal=100, renewal_grace=10)
    )
    first = manager.create("alice", CONTEXT)
    manager.create("bob", CONTEXT)
    clock.advance(100)
    metadata, renewed = manager.read("alice", first, CONTEXT)
    assert renewed is None
    assert metadata.accessed_at == clock()
    assert not storage._sessions[first].renewed
    assert len(storage) == 2
    assert storage.stats().refused == 1


def test_a_later_read_renews_once_the_storage_has_room(clock: ManualClock) -> None:
    storage, _ = _storage(clock, max_sessions=2)
    manager = UserSessionManager(
        storage, session_ttl=1000, timeouts=Timeouts(renewal=100, renewal_grace=10)
    )
    first = manager.create("alice", CONTEXT)
    other = manager.create("bob", CONTEXT)
    clock.advance(100)
    assert manager.read("alice", first, CONTEXT)[1] is None
    manager.delete("bob", other)
    clock.advance(1)
    _, renewed = manager.read("alice", first, CONTEXT)
    assert renewed is not None


def test_an_explicit_renew_that_a_full_storage_refuses_raises_and_changes_nothing(
    clock: ManualClock,
) -> None:
    storage, _ = _storage(clock, max_sessions=2)
    manager = UserSessionManager(
        storage, session_ttl=1000, timeouts=Timeouts(renewal=100, renewal_grace=10)
    )
    first = manager.create("alice", CONTEXT)
    manager.create("bob", CONTEXT)
    metadata, _ = manager.read("alice", first, CONTEXT)
    with pytest.raises(SessionLimitError):
        manager.renew("alice", first, metadata, CONTEXT)
    assert not storage._sessions[first].renewed
    assert len(storage) == 2


def test_renewal_at_max_sessions_under_evict_makes_room_for_the_successor(
    clock: ManualClock,
) -> None:
    storage, events = _storage(clock, max_sessions=2, max_sessions_policy=LimitPolicy.EVICT)
    manager = UserSessionManager(
        storage, session_ttl=1000, timeouts=Timeouts(renewal=100, renewal_grace=10)
    )
    first = manager.create("alice", CONTEXT)
    manager.create("bob", CONTEXT)
    clock.advance(100)
    _, renewed = manager.read("alice", first, CONTEXT)
    assert renewed is not None
    assert len(storage) == 2
    # The superseded session is the one closest to its deadline (its grace end).
    assert events == [("alice", first, DeleteReason.EVICTED)]
    assert renewed in storage._sessions
    assert _subject_index_matches(storage)


def test_an_evicted_session_is_never_renewed_afterwards(clock: ManualClock) -> None:
    storage, _ = _storage(clock, max_sessions=1, max_sessions_policy=LimitPolicy.EVICT)
    manager = UserSessionManager(
        storage, session_ttl=1000, timeouts=Timeouts(renewal=100, renewal_grace=10)
    )
    first = manager.create("alice", CONTEXT)
    metadata = storage._sessions[first]
    manager.create("alice", CONTEXT)
    with pytest.raises(SessionNotFoundError):
        manager.renew("alice", first, metadata, CONTEXT)
    assert len(storage) == 1


def test_both_limits_together_evict_per_subject_first(clock: ManualClock) -> None:
    storage, events = _storage(
        clock,
        max_sessions=3,
        max_sessions_policy=LimitPolicy.REFUSE,
        max_sessions_per_subject=2,
        max_sessions_per_subject_policy=LimitPolicy.EVICT,
    )
    manager = UserSessionManager(storage, session_ttl=600)
    oldest = manager.create("alice", CONTEXT)
    clock.advance(1)
    manager.create("alice", CONTEXT)
    manager.create("bob", CONTEXT)
    # Storage full, alice at her limit: evicting her oldest makes room, no refusal.
    manager.create("alice", CONTEXT)
    assert events == [("alice", oldest, DeleteReason.EVICTED)]
    assert len(storage) == 3
    # Bob is under his limit but the storage is full: refused.
    with pytest.raises(SessionLimitError):
        manager.create("bob", CONTEXT)
    assert len(storage) == 3


def test_stale_filings_are_skipped_by_the_global_eviction(clock: ManualClock) -> None:
    storage, events = _storage(clock, max_sessions=3, max_sessions_policy=LimitPolicy.EVICT)
    manager = UserSessionManager(storage, session_ttl=600)
    deleted = manager.create("a", CONTEXT, ttl=5)
    keep = manager.create("b", CONTEXT, ttl=50)
    manager.delete("a", deleted)  # its filing at +5 goes stale
    manager.create("c", CONTEXT, ttl=100)
    manager.create("d", CONTEXT, ttl=100)
    assert len(storage) == 3
    manager.create("e", CONTEXT, ttl=100)
    assert events[-1] == ("b", keep, DeleteReason.EVICTED)
    assert storage._stale >= 0


def test_a_session_expired_after_a_collect_ahead_of_the_clock_does_not_hold_its_slot(
    clock: ManualClock,
) -> None:
    storage, _ = _storage(clock, max_sessions=1)
    manager = UserSessionManager(storage, session_ttl=600)
    storage.collect(clock() + 3600)
    manager.create("alice", CONTEXT, ttl=10)
    clock.advance(10)
    manager.create("bob", CONTEXT)  # alice's expired session makes room
    assert set(storage._subjects) == {"bob"}


def test_a_session_expired_after_the_clock_stepped_back_does_not_hold_its_slot() -> None:
    now = [START + 3600]
    storage = InMemorySessionStorage(clock=lambda: now[0], max_sessions=1)
    manager = UserSessionManager(storage, session_ttl=600)
    storage.collect()
    now[0] = START  # the clock steps an hour back
    manager.create("alice", CONTEXT, ttl=10)
    now[0] = START + 10
    manager.create("bob", CONTEXT)
    assert set(storage._subjects) == {"bob"}


def test_a_listener_creating_sessions_on_an_eviction_cannot_push_a_subject_past_its_limit(
    clock: ManualClock,
) -> None:
    storage, _ = _storage(
        clock, max_sessions_per_subject=2, max_sessions_per_subject_policy=LimitPolicy.EVICT
    )
    manager = UserSessionManager(storage, session_ttl=600)
    created: list[str] = []

    def log_back_in(subject: str, session_id: str, _: SessionMetadata, reason: object) -> None:
        if reason is DeleteReason.EVICTED and not created:
            created.append(manager.create(subject, CONTEXT))  # re-entrant

    storage.add_listener(log_back_in)
    manager.create("alice", CONTEXT)
    clock.advance(1)
    manager.create("alice", CONTEXT)
    clock.advance(1)
    manager.create("alice", CONTEXT)
    assert created
    assert len(storage._subjects["alice"]) == 2
    assert _subject_index_matches(storage)


def test_a_session_a_listener_creates_during_an_eviction_is_refused_when_no_room_is_left(
    clock: ManualClock,
) -> None:
    # Alice's new session evicts her old one; the listener then tries to
    # create a guest's. The room freed is Alice's new session's: under REFUSE
    # on max_sessions the guest is refused, and nobody else is evicted.
    storage, events = _storage(
        clock,
        max_sessions=2,
        max_sessions_per_subject=1,
        max_sessions_per_subject_policy=LimitPolicy.EVICT,
    )
    manager = UserSessionManager(storage, session_ttl=600)
    attempts: list[SessionLimitError | str] = []

    def welcome_a_guest(subject: str, session_id: str, _: SessionMetadata, reason: object) -> None:
        if attempts:
            return
        try:
            attempts.append(manager.create("guest", CONTEXT))  # re-entrant
        except SessionLimitError as error:
            attempts.append(error)

    oldest = manager.create("alice", CONTEXT)
    bob = manager.create("bob", CONTEXT)
    storage.add_listener(welcome_a_guest)
    newest = manager.create("alice", CONTEXT)
    assert len(attempts) == 1 and isinstance(attempts[0], SessionLimitError)
    assert set(storage._sessions) == {bob, newest}
    assert events == [("alice", oldest, DeleteReason.EVICTED)]
    assert _subject_index_matches(storage)


def test_direct_inserts_respect_the_limits(clock: ManualClock) -> None:
    storage, _ = _storage(clock, max_sessions_per_subject=1)
    now = clock()
    storage.insert("s", "id-1", SessionMetadata("ip", None, None, now, now, now + 10))
    with pytest.raises(SessionLimitError):
        storage.insert("s", "id-2", SessionMetadata("ip", None, None, now, now, now + 10))
    assert set(storage._sessions) == {"id-1"}


def test_a_refusal_message_names_no_session(clock: ManualClock) -> None:
    storage, _ = _storage(clock, max_sessions=1)
    manager = UserSessionManager(storage, session_ttl=60)
    session_id = manager.create("alice", CONTEXT)
    with pytest.raises(SessionLimitError) as raised:
        manager.create("alice", CONTEXT)
    assert session_id not in str(raised.value)
    assert session_id not in repr(raised.value)
