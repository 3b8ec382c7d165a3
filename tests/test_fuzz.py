"""Fuzz: hypothesis drives the public surface with wrong types, empty and
huge strings, odd unicode, and negative, zero, float and huge times.

Invariant: every call either works or raises a `SessionError` (the
documented family: each has an `ErrorCode`; on the compiled build, also
mypyc's `TypeError` for an argument of the wrong type), and afterwards the storage is
consistent: the subject index is the grouping of the stored sessions, each
stored session has a current filing in the deadline index, the counters add
up, and no error message carries a raw session id."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.builds import is_mypyc_type_error
from usersession import (
    Device,
    ErrorCode,
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
from usersession.session import exact_text

START = 1_700_000_000
HUGE = "x" * 100_000
ODD = ["", " ", "\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "🙂", "é", "a\nb", "\\", '"', HUGE]

texts = st.one_of(st.text(max_size=40), st.sampled_from(ODD))
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 1.0, -0.0, math.inf, math.nan]),
)
exact_texts = texts.filter(exact_text)
"""What a context may hold: text without surrogate code points."""
contexts = st.builds(
    SessionContext,
    ip=st.one_of(st.just("10.0.0.1"), exact_texts),
    device=st.one_of(st.none(), st.builds(Device, exact_texts, exact_texts)),
    location=st.one_of(st.none(), texts, numbers, st.lists(numbers, max_size=3)),
)
junk = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    texts,
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
    contexts,
    st.builds(Device, exact_texts, exact_texts),
)
limit_values = st.one_of(st.none(), st.integers(min_value=1, max_value=5), junk)
policies = st.one_of(st.sampled_from(LimitPolicy), junk)


_errors: list[SessionError] = []
"""The errors of the current example, to check that none carries a raw id."""


def _call(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a call; a `SessionError` is an acceptable answer, anything else is not."""
    try:
        return call(*args, **kwargs)
    except SessionError as error:
        assert isinstance(error.code, ErrorCode)
        _errors.append(error)
        return error
    except TypeError as error:
        if not is_mypyc_type_error(error):
            raise
        return error


def _timeouts(idle: object, renewal: object, renewal_grace: object) -> object:
    """`Timeouts` of any values; on the compiled build mypyc refuses a
    field of the wrong type at construction, and the junk goes on instead."""
    return _call(Timeouts, idle, renewal, renewal_grace)


def _check_invariants(storage: InMemorySessionStorage, ids: list[str]) -> None:
    grouped: dict[str, dict[str, SessionMetadata]] = {}
    for session_id, metadata in storage._sessions.items():
        grouped.setdefault(metadata.subject, {})[session_id] = metadata
        filed = storage._collector._buckets.get(metadata._due, [])
        assert session_id in filed, "a stored session has no current filing"
    sessions = storage._sessions
    current = sum(
        1
        for second, bucket in storage._collector._buckets.items()
        for session_id in bucket
        if session_id in sessions and sessions[session_id]._due == second
    )
    assert storage._stale == len(storage._collector) - current, "the stale count drifted"
    assert grouped == storage._subjects
    assert all(storage._subjects.values())
    stats = storage.stats()
    assert stats.sessions == len(storage) == len(storage._sessions)
    assert stats.subjects == len(storage._subjects)
    total = storage._max_sessions
    if total is not None:
        assert len(storage) <= total


@given(texts, texts, texts)
def test_a_context_is_built_exactly_when_its_strings_are_exact_text(
    ip: str, name: str, kind: str
) -> None:
    """Any str: a context or device is built if every string in it is exact
    text (no surrogate code point), else refused with a SessionError."""
    assert isinstance(_call(SessionContext, ip), SessionError) != exact_text(ip)
    refused = isinstance(_call(Device, name, kind), SessionError)
    assert refused != (exact_text(name) and exact_text(kind))


@given(st.data())
def test_every_public_call_works_or_raises_a_session_error(data: st.DataObject) -> None:
    _errors.clear()
    clock = ManualClock(START)
    storage_or_error = _call(
        InMemorySessionStorage,
        clock=clock,
        max_sessions=data.draw(limit_values),
        max_sessions_policy=data.draw(policies),
        max_sessions_per_subject=data.draw(limit_values),
        max_sessions_per_subject_policy=data.draw(policies),
    )
    storage = (
        storage_or_error
        if isinstance(storage_or_error, InMemorySessionStorage)
        else InMemorySessionStorage(clock=clock)
    )
    timeouts = data.draw(
        st.one_of(st.none(), junk, st.builds(_timeouts, junk, junk, junk)), label="timeouts"
    )
    manager_or_error = _call(
        UserSessionManager,
        storage,
        session_ttl=data.draw(st.one_of(st.just(3600), numbers, junk)),
        id_bytes=data.draw(st.one_of(st.just(24), numbers, junk)),
        timeouts=timeouts,
        renew_hooks=data.draw(st.one_of(st.none(), st.just(RenewHooks()), junk)),
        clock=data.draw(st.one_of(st.none(), st.just(clock), junk)),
    )
    manager = (
        manager_or_error
        if isinstance(manager_or_error, UserSessionManager)
        else UserSessionManager(
            storage,
            session_ttl=3600,
            timeouts=Timeouts(idle=600, renewal=1200, renewal_grace=30),
        )
    )
    ids: list[str] = []
    subjects = st.one_of(st.sampled_from(["alice", "bob"]), texts, junk)
    any_context = st.one_of(contexts, junk)

    for _ in range(data.draw(st.integers(min_value=1, max_value=25), label="steps")):
        known = [st.sampled_from(ids)] if ids else []
        session_ids = st.one_of(*known, texts, junk)
        action = data.draw(
            st.sampled_from(
                [
                    "create",
                    "read",
                    "read_all",
                    "renew",
                    "delete",
                    "revoke",
                    "delete_all",
                    "hash",
                    "collect",
                    "advance",
                    "sweeper",
                    "clock",
                    "stats",
                ]
            ),
            label="action",
        )
        if action == "create":
            result = _call(
                manager.create,
                data.draw(subjects),
                data.draw(any_context),
                data.draw(st.one_of(st.none(), numbers, junk)),
            )
            if isinstance(result, str):
                ids.append(result)
        elif action == "read":
            result = _call(
                manager.read, data.draw(subjects), data.draw(session_ids), data.draw(any_context)
            )
            if isinstance(result, tuple) and result[1] is not None:
                ids.append(result[1])
        elif action == "read_all":
            _call(manager.read_all, data.draw(subjects))
        elif action == "renew":
            stored = [st.sampled_from(list(storage._sessions.values()))] if storage else []
            metadata = data.draw(st.one_of(*stored, junk), label="metadata")
            result = _call(
                manager.renew,
                data.draw(subjects),
                data.draw(session_ids),
                metadata,
                data.draw(any_context),
            )
            if isinstance(result, str):
                ids.append(result)
        elif action == "delete":
            _call(manager.delete, data.draw(subjects), data.draw(session_ids))
        elif action == "revoke":
            handles = st.one_of(st.builds(manager.hash, st.sampled_from(ids)), texts, junk)
            _call(manager.revoke, data.draw(subjects), data.draw(handles if ids else junk))
        elif action == "delete_all":
            _call(manager.delete_all, data.draw(subjects))
        elif action == "hash":
            _call(manager.hash, data.draw(session_ids))
        elif action == "collect":
            now = data.draw(
                st.one_of(st.none(), st.integers(min_value=clock(), max_value=clock() + 2**62))
            )
            _call(storage.collect, now)
        elif action == "advance":
            _call(clock.advance, data.draw(st.one_of(st.integers(0, 10_000), numbers, junk)))
        elif action == "sweeper":
            _call(Sweeper, storage, data.draw(st.one_of(numbers, junk)))
        elif action == "clock":
            _call(ManualClock, data.draw(st.one_of(numbers, junk)))
        else:
            storage.stats()
        _check_invariants(storage, ids)

    for error in _errors:
        for session_id in ids:
            assert session_id not in str(error)
            assert session_id not in repr(error)


@given(data=st.data())
def test_snapshot_calls_work_or_raise_a_session_error(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    clock = ManualClock(START)
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(storage, session_ttl=3600)
    for _ in range(data.draw(st.integers(0, 4))):
        _call(manager.create, data.draw(texts), data.draw(contexts))
    # Never arbitrary text as a path: "/x" or "../x" would write outside the
    # test's directory. Relative odd names land in it (the cwd is moved there).
    odd_names = st.sampled_from(["", "\x00", "a\x00b", "\ud800", "a\nb", "🙂", " ", HUGE])
    non_paths = st.one_of(
        st.none(), st.booleans(), numbers, st.binary(max_size=8), st.just(object())
    )
    path = data.draw(
        st.one_of(st.just(directory / "s"), st.just(str(directory / "s")), odd_names, non_paths),
        label="path",
    )
    with contextlib.chdir(directory):
        saved = _call(storage.save, path)
        restored = InMemorySessionStorage(clock=clock)
        result = _call(restored.load, path)
    if isinstance(saved, int):
        assert result == saved, "save wrote a file that load refuses"
    if isinstance(result, int) and path in (directory / "s", str(directory / "s")):
        assert restored._subjects == storage._subjects
        for session_id, metadata in restored._sessions.items():
            assert metadata == storage._sessions[session_id]
    _check_invariants(restored, [])


@pytest.mark.parametrize("metadata", [None, "metadata", 0, SessionContext(ip="1")])
def test_renew_refuses_a_metadata_that_is_not_one(metadata: object) -> None:
    manager = UserSessionManager(
        InMemorySessionStorage(),
        session_ttl=60,
        timeouts=Timeouts(renewal=30, renewal_grace=5),
    )
    session_id = manager.create("alice", SessionContext(ip="1"))
    with pytest.raises((SessionError, TypeError)) as caught:
        manager.renew("alice", session_id, metadata, SessionContext(ip="1"))  # type: ignore[arg-type]
    assert isinstance(caught.value, SessionError) or is_mypyc_type_error(caught.value)
