"""Errors travel: across `pickle` (a process pool sends a worker's exception
back to its parent) and `copy`, each keeps its class, code, message and
subject; and neither the message nor the repr names the subject."""

from __future__ import annotations

import copy
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from usersession import (
    ErrorCode,
    InMemorySessionStorage,
    InvalidOptionsError,
    InvalidTypeError,
    SessionContext,
    SessionDeviceMismatchError,
    SessionError,
    SessionExpiredError,
    SessionLimitError,
    SessionNotFoundError,
    SessionStorageError,
    SnapshotError,
    UserSessionManager,
)

ERRORS = [
    SessionError(ErrorCode.STORAGE_FAILURE, "base"),
    SessionNotFoundError(
        ErrorCode.USER_SESSION_NOT_FOUND, "Session 'h' doesn't exist.", subject="a@b"
    ),
    SessionExpiredError(ErrorCode.USER_SESSION_EXPIRED, "idle", subject="a@b"),
    SessionDeviceMismatchError(
        ErrorCode.FORBIDDEN_ACCESS_TO_USER_SESSION_FROM_DIFFERENT_DEVICE, "device"
    ),
    SessionStorageError(ErrorCode.STORAGE_FAILURE, "down", subject="a@b"),
    SessionLimitError(ErrorCode.SESSION_LIMIT_REACHED, "full"),
    SnapshotError(ErrorCode.SNAPSHOT_INVALID, "truncated"),
    InvalidOptionsError(ErrorCode.INVALID_TTL, "ttl"),
    InvalidTypeError(ErrorCode.INVALID_SUBJECT, "subject"),
]


def _same(copied: SessionError, original: SessionError) -> None:
    assert type(copied) is type(original)
    assert copied.code is original.code
    assert str(copied) == str(original)
    assert copied.subject == original.subject


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_an_error_survives_pickle_and_copy(error: SessionError) -> None:
    _same(pickle.loads(pickle.dumps(error)), error)
    _same(copy.copy(error), error)
    _same(copy.deepcopy(error), error)


def _read_unknown_session() -> None:
    manager = UserSessionManager(InMemorySessionStorage(), session_ttl=60)
    manager.read("alice@example.com", "no-such-session", SessionContext("10.0.0.1"))


def test_an_error_raised_in_a_pool_worker_reaches_the_caller_intact() -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_read_unknown_session)
        with pytest.raises(SessionNotFoundError) as caught:
            future.result(timeout=60)
        # The pool still works after carrying the error back.
        assert pool.submit(pow, 2, 10).result(timeout=60) == 1024
    assert caught.value.code is ErrorCode.USER_SESSION_NOT_FOUND
    assert caught.value.subject == "alice@example.com"
    assert "alice" not in str(caught.value) and "alice" not in repr(caught.value)
