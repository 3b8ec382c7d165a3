"""The in-memory storage: expiry by deadline buckets, the one delete path, events."""

from __future__ import annotations

import logging

import pytest

from usersession import (
    DeleteReason,
    InMemorySessionStorage,
    ManualClock,
    SessionContext,
    SessionMetadata,
    SessionStorageError,
    Timeouts,
    UserSessionManager,
)

from .conftest import START

CONTEXT = SessionContext(ip="10.0.0.1")


def setup(
    timeouts: Timeouts | None = None, session_ttl: int = 100
) -> tuple[ManualClock, InMemorySessionStorage, UserSessionManager, list[tuple[str, DeleteReason]]]:
    clock = ManualClock(START)
    storage = InMemorySessionStorage(clock=clock)
    events: list[tuple[str, DeleteReason]] = []
    storage.add_listener(lambda subject, session_id, _, reason: events.append((session_id, reason)))
    manager = UserSessionManager(storage, session_ttl=session_ttl, timeouts=timeouts)
    return clock, storage, manager, events


def test_len_counts_what_is_held_without_sweeping() -> None:
    clock, storage, manager, events = setup()
    for _ in range(3):
        manager.create("uid1", CONTEXT)
    clock.advance(100)
    assert len(storage) == 3
    assert storage.collect() == 3
    assert len(storage) == 0
    assert [reason for _, reason in events] == [DeleteReason.EXPIRED] * 3


def test_the_next_operation_in_a_new_second_sweeps_what_came_due() -> None:
    clock, storage, manager, events = setup()
    expired = manager.create("uid1", CONTEXT, ttl=10)
    manager.create("uid2", CONTEXT)
    clock.advance(10)
    manager.read_all("uid2")
    assert events == [(expired, DeleteReason.EXPIRED)]
    assert len(storage) == 1


def test_a_session_touched_since_it_was_filed_survives_its_first_bucket() -> None:
    clock, storage, manager, events = setup(Timeouts(idle=10))
    session_id = manager.create("uid1", CONTEXT)
    clock.advance(9)
    manager.read("uid1", session_id, CONTEXT)
    clock.advance(2)
    assert storage.collect() == 0
    manager.read("uid1", session_id, CONTEXT)
    clock.advance(10)
    assert storage.collect() == 1
    assert events == [(session_id, DeleteReason.IDLE)]


def test_an_idle_session_is_reclaimed_by_a_sweep_with_reason_idle() -> None:
    clock, storage, manager, events = setup(Timeouts(idle=10))
    session_id = manager.create("uid1", CONTEXT)
    clock.advance(10)
    assert storage.collect() == 1
    assert events == [(session_id, DeleteReason.IDLE)]


def test_a_read_that_finds_a_session_idle_reports_expiry_once() -> None:
    clock, storage, manager, events = setup(Timeouts(idle=10))
    session_id = manager.create("uid1", CONTEXT)
    clock.advance(10)
    with pytest.raises(Exception, match="expired"):
        manager.read("uid1", session_id, CONTEXT)
    assert events == [(session_id, DeleteReason.IDLE)]


def test_a_superseded_session_leaves_when_its_grace_ends_with_reason_renewed() -> None:
    clock, storage, manager, events = setup(Timeouts(renewal=50, renewal_grace=5))
    old = manager.create("uid1", CONTEXT)
    clock.advance(50)
    _, new = manager.read("uid1", old, CONTEXT)
    clock.advance(4)
    assert storage.collect() == 0
    clock.advance(1)
    assert storage.collect() == 1
    assert events == [(old, DeleteReason.RENEWED)]
    assert new is not None and len(storage) == 1


def test_the_subject_index_leaves_no_empty_entry_behind() -> None:
    clock, storage, manager, _ = setup()
    first = manager.create("uid1", CONTEXT)
    manager.create("uid2", CONTEXT, ttl=5)
    manager.delete("uid1", first)
    clock.advance(5)
    storage.collect()
    assert storage._subjects == {}


def test_a_listener_that_raises_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, storage, manager, events = setup()

    def broken(subject: str, session_id: str, metadata: SessionMetadata, reason: object) -> None:
        raise RuntimeError("listener bug")

    storage.add_listener(broken)
    later: list[str] = []
    storage.add_listener(lambda subject, session_id, _, reason: later.append(session_id))
    session_id = manager.create("uid1", CONTEXT)
    with caplog.at_level(logging.ERROR, logger="usersession"):
        manager.delete("uid1", session_id)
    assert later == [session_id] and len(events) == 1
    assert len(storage) == 0 and storage._subjects == {}
    assert UserSessionManager.hash(session_id) in caplog.text
    assert session_id not in caplog.text


def test_a_listener_may_call_back_into_the_storage() -> None:
    clock, storage, manager, _ = setup()
    kept = manager.create("uid2", CONTEXT)
    storage.add_listener(lambda subject, session_id, _, reason: manager.delete_all("uid2"))
    manager.delete("uid1", manager.create("uid1", CONTEXT))
    assert len(storage) == 0
    del kept


def test_an_id_already_stored_is_refused_not_overwritten() -> None:
    clock, storage, manager, _ = setup()
    session_id = manager.create("uid1", CONTEXT)
    intruder = SessionMetadata("10.6.6.6", None, None, START, START, START + 100)
    with pytest.raises(SessionStorageError):
        storage.insert("uid2", session_id, intruder)
    assert manager.read("uid1", session_id, CONTEXT)[0].ip == CONTEXT.ip


def test_deleted_sessions_do_not_pin_memory_in_their_buckets_for_long() -> None:
    # Deleted ids stay in their bucket lazily; compaction bounds them by the live count.
    clock, storage, manager, _ = setup(session_ttl=10_000)
    for _ in range(20_000):
        manager.delete("uid1", manager.create("uid1", CONTEXT))
    clock.advance(1)
    storage.collect()
    assert len(storage._collector) <= 4096 + len(storage)


def test_a_touch_racing_a_delete_does_not_bring_the_session_back() -> None:
    clock, storage, manager, _ = setup()
    session_id = manager.create("uid1", CONTEXT)
    metadata = storage.read("uid1", session_id, clock())
    assert metadata is not None
    storage.delete("uid1", session_id)
    storage.touch("uid1", session_id, metadata, clock())
    assert storage.read("uid1", session_id, clock()) is None
    assert len(storage) == 0


def test_the_metadata_handed_out_is_read_only() -> None:
    clock, storage, manager, _ = setup()
    session_id = manager.create("uid1", CONTEXT)
    metadata, _ = manager.read("uid1", session_id, CONTEXT)
    with pytest.raises(AttributeError):
        metadata.expires_at = START + 10**9  # type: ignore[misc]
    assert session_id not in repr(metadata)
