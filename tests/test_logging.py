"""Listener isolation and what reaches the logs: a failing listener is
logged (logger "usersession", the session named by its handle only), the
other listeners and the storage carry on, and no raw session id ever appears
in log output, printed output, or an exception's message, repr or chain."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from usersession import (
    DeleteReason,
    Device,
    InMemorySessionStorage,
    LimitPolicy,
    ManualClock,
    RenewHooks,
    SessionContext,
    SessionError,
    SessionMetadata,
    Sweeper,
    Timeouts,
    UserSessionManager,
)

CONTEXT = SessionContext(ip="10.0.0.1", device=Device("Firefox", "desktop"))


def _exception_texts(error: BaseException) -> list[str]:
    """Message and repr of an exception and of everything chained to it."""
    texts = []
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), *map(str, current.args)]
        pending += [current.__cause__, current.__context__]
    return texts


def test_a_raising_listener_is_logged_by_handle_and_the_others_still_run(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(storage, session_ttl=600)
    heard: list[tuple[str, str]] = []
    cache: dict[str, str] = {}

    def before(subject: str, session_id: str, metadata: SessionMetadata, reason: object) -> None:
        heard.append(("before", session_id))

    def failing(subject: str, session_id: str, metadata: SessionMetadata, reason: object) -> None:
        # The most natural bug a listener has: KeyError carrying the id itself.
        del cache[session_id]

    def after(subject: str, session_id: str, metadata: SessionMetadata, reason: object) -> None:
        heard.append(("after", session_id))

    for listener in (before, failing, after):
        storage.add_listener(listener)
    session_id = manager.create("alice", CONTEXT)
    other = manager.create("alice", CONTEXT)
    with caplog.at_level(logging.DEBUG, logger="usersession"):
        manager.delete("alice", session_id)
    assert heard == [("before", session_id), ("after", session_id)]
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert failures[0].name == "usersession"
    assert manager.hash(session_id) in failures[0].getMessage()
    assert "KeyError" in caplog.text
    assert session_id not in caplog.text
    # The storage carried on: the session is gone, the index agrees, the next delete works.
    assert session_id not in storage._sessions
    assert storage._subjects == {"alice": {other: storage._sessions[other]}}
    manager.delete("alice", other)
    assert storage._subjects == {}
    assert len(storage) == 0
    assert storage.stats().deleted == 2


def test_a_listener_raising_during_a_sweep_does_not_stop_the_sweep(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(storage, session_ttl=10)
    removed: list[DeleteReason] = []

    def failing(subject: str, session_id: str, metadata: SessionMetadata, reason: object) -> None:
        raise RuntimeError(f"listener broke on {session_id}")

    storage.add_listener(failing)
    storage.add_listener(lambda subject, session_id, metadata, reason: removed.append(reason))
    ids = [manager.create(f"user{index}", CONTEXT) for index in range(5)]
    clock.advance(10)
    with caplog.at_level(logging.DEBUG, logger="usersession"):
        assert storage.collect() == 5
    assert removed == [DeleteReason.EXPIRED] * 5
    assert len(storage) == 0
    assert storage._subjects == {}
    for session_id in ids:
        assert session_id not in caplog.text
    assert caplog.text.count("RuntimeError") >= 5


def test_a_full_scenario_at_debug_never_shows_a_raw_session_id_or_a_subject(
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    storage = InMemorySessionStorage(
        clock=clock,
        max_sessions=50,
        max_sessions_policy=LimitPolicy.EVICT,
        max_sessions_per_subject=4,
    )
    ids: list[str] = []
    texts: list[str] = []

    def note(session_id: str, *rest: object) -> None:
        ids.append(session_id)

    def failing(subject: str, session_id: str, metadata: SessionMetadata, reason: object) -> None:
        raise LookupError(session_id)

    storage.add_listener(failing)
    hooks = RenewHooks(on_already_renewed_here=note, on_already_renewed_elsewhere=note)
    manager = UserSessionManager(
        storage,
        session_ttl=3600,
        timeouts=Timeouts(idle=1000, renewal=1200, renewal_grace=30),
        renew_hooks=hooks,
    )
    other_manager = UserSessionManager(
        storage, session_ttl=3600, timeouts=Timeouts(idle=1000, renewal=1200, renewal_grace=30)
    )

    def attempt(call: object, *args: object) -> object:
        try:
            return call(*args)  # type: ignore[operator]
        except SessionError as error:
            texts.extend(_exception_texts(error))
            return None

    with caplog.at_level(logging.DEBUG), Sweeper(storage, interval=0.01):
        for round_ in range(3):
            for user in ("alice", "bob"):
                for _ in range(5):  # one over the subject limit: refused
                    created = attempt(manager.create, user, CONTEXT)
                    if created is not None:
                        ids.append(str(created))
            print(repr(storage), storage.stats(), manager.read_all("alice"))
            clock.advance(400)
            for session_id in list(ids):
                for subject in ("alice", "bob"):
                    result = attempt(manager.read, subject, session_id, CONTEXT)
                    if result is not None:
                        metadata, renewed = result  # type: ignore[misc]
                        print(metadata)
                        if renewed is not None:
                            ids.append(renewed)
                phone = SessionContext(ip="10.0.0.2", device=Device("Safari", "mobile"))
                attempt(manager.read, "alice", session_id, phone)
                attempt(other_manager.read, "alice", session_id, CONTEXT)
            clock.advance(500 + round_)
            for session_id in ids[::3]:
                attempt(manager.delete, "alice", session_id)
            for handle in manager.read_all("bob"):
                attempt(manager.revoke, "bob", handle)
            attempt(manager.read, "alice", "not-an-id-" + ids[0][:4], CONTEXT)
        storage.save(tmp_path / "sessions.snapshot")
        restored = InMemorySessionStorage(clock=clock)
        restored.load(tmp_path / "sessions.snapshot")
        attempt(restored.load, tmp_path / "sessions.snapshot")  # collision
        print(restored, restored.stats())
        manager.create("carol", CONTEXT)
        clock.advance(4000)
        storage.collect()
        attempt(manager.delete_all, "alice")
        attempt(manager.delete_all, "bob")
        storage.collect()
    stats = storage.stats()
    assert stats.refused > 0
    assert stats.renewed > 0
    assert stats.evicted + stats.idle + stats.expired > 0
    assert stats.deleted > 0
    captured = capsys.readouterr()
    output = caplog.text + captured.out + captured.err + "\n".join(texts)
    assert ids, "the scenario created sessions"
    assert texts, "the scenario raised errors"
    assert "LookupError" in caplog.text
    for session_id in set(ids):
        assert session_id not in output
    # Subjects are often e-mail addresses: no message or record names one.
    for subject in ("alice", "bob", "carol"):
        assert subject not in output
