"""Clock, ids and option checks: the small rooms the manager stands on."""

from __future__ import annotations

import copy
import hashlib
import math
import pickle
import time
from collections.abc import Callable

import pytest

from tests.builds import refused
from usersession import (
    ErrorCode,
    InMemorySessionStorage,
    InvalidOptionsError,
    InvalidTypeError,
    ManualClock,
    RenewHooks,
    SessionContext,
    SessionMetadata,
    Timeouts,
    UserSessionManager,
    system_clock,
)
from usersession.ids import IdGenerator, session_handle
from usersession.options import MAX_SECONDS

# -- clock ------------------------------------------------------------------------------


def test_a_manual_clock_moves_only_forward_when_told() -> None:
    clock = ManualClock(10)
    assert clock() == 10
    assert clock.advance(5) == 15 == clock()
    with pytest.raises(InvalidOptionsError):
        clock.advance(-1)
    with refused(ErrorCode.INVALID_CLOCK):
        clock.advance(1.5)  # type: ignore[arg-type]


def test_the_system_clock_is_whole_unix_seconds() -> None:
    now = system_clock()
    assert type(now) is int and now > 1_600_000_000


def test_a_manager_takes_the_storages_clock_by_default() -> None:
    clock = ManualClock(500)
    manager = UserSessionManager(InMemorySessionStorage(clock=clock), session_ttl=60)
    session_id = manager.create("uid1", __import__("usersession").SessionContext("1.2.3.4"))
    assert manager.read_all("uid1")[UserSessionManager.hash(session_id)].created_at == 500


# -- ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("id_bytes", [16, 17, 24, 32])
def test_ids_carry_at_least_the_requested_entropy(id_bytes: int) -> None:
    ids = [IdGenerator(id_bytes).new_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i) == math.ceil(id_bytes * 8 / 6) for i in ids)


def test_ids_keep_coming_after_the_pool_runs_dry() -> None:
    generator = IdGenerator(24)
    ids = {generator.new_id() for _ in range(10_000)}
    assert len(ids) == 10_000


class _PicklableStorage:
    """A storage that pickles and copies (the in-memory one holds a lock, which
    does neither), so that what a manager's own state carries can be seen."""

    def insert(self, subject: str, session_id: str, metadata: SessionMetadata) -> None:
        pass

    def read(self, subject: str, session_id: str, now: int) -> None:
        return None

    def touch(self, subject: str, session_id: str, metadata: SessionMetadata, now: int) -> None:
        pass

    def renew(self, *arguments: object) -> None:
        return None

    def read_all(self, subject: str, now: int) -> dict[str, SessionMetadata]:
        return {}

    def delete(self, subject: str, session_id: str, reason: object = None) -> bool:
        return False

    def delete_login(self, subject: str, session_id: str) -> int:
        return 0

    def delete_login_by_handle(self, subject: str, handle: str) -> int:
        return 0

    def delete_all(self, subject: str) -> int:
        return 0

    def delete_other_logins(self, subject: str, keep: str, now: int) -> int | None:
        return None


def _manager_with_a_full_pool() -> tuple[UserSessionManager, list[str]]:
    """A manager that has drawn one id, and the ids it will hand out next."""
    manager = UserSessionManager(_PicklableStorage(), session_ttl=60)  # type: ignore[arg-type]
    manager._ids._pool.clear()  # the pool is shared: make the next create refill it
    manager.create("uid1", SessionContext("10.0.0.1"))
    pending = list(manager._ids._pool)
    assert len(pending) > 1000
    return manager, pending


def _next_ids(manager: UserSessionManager, count: int = 200) -> set[str]:
    return {manager.create("uid1", SessionContext("10.0.0.1")) for _ in range(count)}


def test_a_pickled_manager_carries_none_of_its_pre_drawn_ids() -> None:
    manager, pending = _manager_with_a_full_pool()
    pickled = pickle.dumps(manager)
    assert not [i for i in pending if i.encode() in pickled]
    # Unpickled here, it draws from this process's pool: never an id twice.
    assert not _next_ids(pickle.loads(pickled)) & _next_ids(manager)


@pytest.mark.parametrize("duplicate", [copy.deepcopy, copy.copy], ids=["deepcopy", "copy"])
def test_a_manager_and_its_copy_never_hand_out_the_same_id(
    duplicate: Callable[[UserSessionManager], UserSessionManager],
) -> None:
    # Copies draw from the pool their process shares between generators of
    # one id length, whose pops are atomic.
    manager, _ = _manager_with_a_full_pool()
    duplicated = duplicate(manager)
    from_the_copy = _next_ids(duplicated)
    assert not _next_ids(manager) & from_the_copy


@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda generator: pickle.loads(pickle.dumps(generator))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_a_copied_id_generator_never_repeats_the_originals_ids(
    duplicate: Callable[[IdGenerator], IdGenerator],
) -> None:
    generator = IdGenerator(32)
    generator.new_id()
    duplicated = duplicate(generator)
    assert duplicated is not generator
    first = {generator.new_id() for _ in range(3000)}
    second = {duplicated.new_id() for _ in range(3000)}
    assert len(first) == len(second) == 3000 and not first & second
    assert {len(i) for i in first} == {len(i) for i in second}


def test_a_handle_is_a_stable_url_safe_fingerprint() -> None:
    # Stable across processes and releases: storages key by it. The first
    # 32 hex characters of SHA-256 since 0.1.0 (before release it was URL-safe
    # base64 of SHA-256, then BLAKE2b-128 in hex).
    assert session_handle("abc") == hashlib.sha256(b"abc").hexdigest()[:32]
    assert session_handle("abc") == "ba7816bf8f01cfea414140de5dae2223"
    assert session_handle("abc") != session_handle("abd")
    assert UserSessionManager.hash("abc") == session_handle("abc")


# -- options ----------------------------------------------------------------------------

BAD_OPTIONS = [
    ({"session_ttl": 0}, ErrorCode.INVALID_TTL),
    ({"session_ttl": -5}, ErrorCode.INVALID_TTL),
    ({"session_ttl": 1.5}, ErrorCode.INVALID_TTL),
    ({"session_ttl": MAX_SECONDS + 1}, ErrorCode.INVALID_TTL),
    ({"session_ttl": 10**5000}, ErrorCode.INVALID_TTL),
    ({"id_bytes": 15}, ErrorCode.INVALID_SESSION_ID_LENGTH),
    ({"id_bytes": 1025}, ErrorCode.INVALID_SESSION_ID_LENGTH),
    ({"timeouts": Timeouts(idle=0)}, ErrorCode.INVALID_IDLE_TIMEOUT),
    ({"timeouts": Timeouts(idle=100)}, ErrorCode.INVALID_IDLE_TIMEOUT),
    ({"timeouts": Timeouts(renewal=100, renewal_grace=5)}, ErrorCode.INVALID_RENEW_TIMEOUT),
    ({"timeouts": Timeouts(renewal=-1, renewal_grace=5)}, ErrorCode.INVALID_RENEW_TIMEOUT),
    (
        {"timeouts": Timeouts(renewal=50)},
        ErrorCode.OLD_SESSION_AVAILABILITY_TIMEOUT_AFTER_RENEWAL_REQUIRED,
    ),
    (
        {"timeouts": Timeouts(renewal=50, renewal_grace=100)},
        ErrorCode.INVALID_OLD_SESSION_AVAILABILITY_TIMEOUT_AFTER_RENEWAL,
    ),
    (
        {"timeouts": Timeouts(renewal=50, renewal_grace=0)},
        ErrorCode.INVALID_OLD_SESSION_AVAILABILITY_TIMEOUT_AFTER_RENEWAL,
    ),
    ({"timeouts": {"idle": 5}}, ErrorCode.INVALID_OPTION),
    ({"timeouts": Timeouts(absolute=0)}, ErrorCode.INVALID_ABSOLUTE_TIMEOUT),
    ({"timeouts": Timeouts(absolute=MAX_SECONDS + 1)}, ErrorCode.INVALID_ABSOLUTE_TIMEOUT),
]


@pytest.mark.parametrize(("options", "code"), BAD_OPTIONS)
def test_bad_options_are_refused_with_their_code(
    options: dict[str, object], code: ErrorCode
) -> None:
    arguments: dict[str, object] = {"session_ttl": 100, **options}
    with refused(code, InvalidOptionsError):
        UserSessionManager(InMemorySessionStorage(), **arguments)  # type: ignore[arg-type]
    assert issubclass(InvalidOptionsError, ValueError)


def test_a_grace_without_renewal_is_ignored_as_in_the_seed() -> None:
    manager = UserSessionManager(
        InMemorySessionStorage(), session_ttl=100, timeouts=Timeouts(renewal_grace=1000)
    )
    assert manager.timeouts == Timeouts()


def test_a_clock_that_returns_fractions_is_refused_at_construction() -> None:
    with pytest.raises(InvalidTypeError) as caught:
        UserSessionManager(InMemorySessionStorage(), session_ttl=60, clock=time.time)
    assert caught.value.code is ErrorCode.INVALID_CLOCK
    with pytest.raises(InvalidTypeError):
        InMemorySessionStorage(clock=time.time)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [{"read_hook": 42}, {"clock": 5}])
def test_hooks_and_clocks_that_cannot_be_called_are_refused_at_construction(
    options: dict[str, object],
) -> None:
    with pytest.raises(InvalidTypeError):
        UserSessionManager(InMemorySessionStorage(), session_ttl=60, **options)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError):
        RenewHooks(on_already_renewed_here=42)  # type: ignore[arg-type]


def test_a_listener_that_cannot_be_called_is_refused() -> None:
    with pytest.raises(InvalidTypeError):
        InMemorySessionStorage().add_listener(5)  # type: ignore[arg-type]
