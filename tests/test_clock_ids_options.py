"""Clock, ids and option checks: the small rooms the manager stands on."""

from __future__ import annotations

import math
import time

import pytest

from usersession import (
    ErrorCode,
    InMemorySessionStorage,
    InvalidOptionsError,
    InvalidTypeError,
    ManualClock,
    RenewHooks,
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
    with pytest.raises(InvalidTypeError):
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


def test_a_handle_is_a_stable_url_safe_fingerprint() -> None:
    # Stable across processes and releases: storages key by it.
    assert session_handle("abc") == "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
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
    with pytest.raises(InvalidOptionsError) as caught:
        UserSessionManager(InMemorySessionStorage(), **arguments)  # type: ignore[arg-type]
    assert caught.value.code is code
    assert isinstance(caught.value, ValueError)


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
