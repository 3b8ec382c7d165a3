"""The manager's behaviour, as docs/behaviour.md states it and as the suite of
@thermopylae/lib.user-session exercises it. Every test runs once per storage
kind (see conftest.py)."""

from __future__ import annotations

import asyncio
import copy
import threading

import pytest
import redis
import redis.asyncio

from tests.builds import refused, takes_a_bool_for_an_int
from usersession import (
    AsyncUserSessionManager,
    Device,
    ErrorCode,
    InMemorySessionStorage,
    InvalidOptionsError,
    InvalidTypeError,
    ManualClock,
    RenewHooks,
    SessionContext,
    SessionDeviceMismatchError,
    SessionExpiredError,
    SessionNotFoundError,
    Timeouts,
    UserSessionManager,
    check_same_device_if_known,
)
from usersession.options import MAX_SECONDS
from usersession.policy import renewed_metadata
from usersession.storage.redis import AsyncRedisSessionStorage, RedisSessionStorage

from .conftest import START, MakeManager

LAPTOP = SessionContext(ip="10.0.0.1", device=Device("Firefox", "desktop"))
PHONE = SessionContext(ip="10.0.0.2", device=Device("Safari", "mobile"))
NO_DEVICE = SessionContext(ip="10.0.0.3")
RENEWING = Timeouts(renewal=600, renewal_grace=5)


# -- create ---------------------------------------------------------------------


def test_a_new_session_is_readable_with_its_creation_context(make_manager: MakeManager) -> None:
    manager = make_manager(session_ttl=3600)
    session_id = manager.create("uid1", LAPTOP)
    metadata, renewed = manager.read("uid1", session_id, LAPTOP)
    assert renewed is None
    assert (metadata.ip, metadata.device) == (LAPTOP.ip, LAPTOP.device)
    assert metadata.created_at == metadata.accessed_at == START
    assert metadata.expires_at == START + 3600


def test_ids_are_url_safe_text_of_at_least_128_bits(make_manager: MakeManager) -> None:
    manager = make_manager(id_bytes=16)
    ids = {manager.create("uid1", LAPTOP) for _ in range(200)}
    assert len(ids) == 200
    for session_id in ids:
        assert len(session_id) * 6 >= 128
        assert set(session_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_a_per_session_ttl_overrides_the_default_and_may_exceed_it(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(session_ttl=100)
    session_id = manager.create("uid1", LAPTOP, ttl=500)
    clock.advance(499)
    metadata, _ = manager.read("uid1", session_id, LAPTOP)
    assert metadata.expires_at == START + 500
    clock.advance(1)
    with pytest.raises(SessionNotFoundError):
        manager.read("uid1", session_id, LAPTOP)


@pytest.mark.parametrize(
    "ttl", [0, -1, 1.5, "60", pytest.param(True, marks=takes_a_bool_for_an_int), None.__class__]
)
def test_a_bad_per_session_ttl_is_refused_and_nothing_is_stored(
    make_manager: MakeManager, ttl: object
) -> None:
    manager = make_manager()
    with refused(ErrorCode.INVALID_TTL, InvalidOptionsError):
        manager.create("uid1", LAPTOP, ttl=ttl)
    assert manager.read_all("uid1") == {}


@pytest.mark.parametrize(
    "ttl", [MAX_SECONDS + 1, 10**14, 10**5000], ids=["max+1", "1e14", "1e5000"]
)
def test_a_per_session_ttl_beyond_the_maximum_is_refused_and_nothing_is_stored(
    make_manager: MakeManager, ttl: int
) -> None:
    manager = make_manager()
    with pytest.raises(InvalidOptionsError) as caught:
        manager.create("uid1", LAPTOP, ttl=ttl)
    assert caught.value.code is ErrorCode.INVALID_TTL
    assert manager.read_all("uid1") == {}


def test_the_longest_per_session_ttl_is_accepted(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager()
    session_id = manager.create("uid1", LAPTOP, ttl=MAX_SECONDS)
    assert manager.read("uid1", session_id, LAPTOP)[0].expires_at == START + MAX_SECONDS


def test_two_sessions_created_from_one_context_share_no_timestamps(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=Timeouts(idle=100))
    first = manager.create("uid1", LAPTOP)
    clock.advance(10)
    second = manager.create("uid1", LAPTOP)
    clock.advance(10)
    manager.read("uid1", second, LAPTOP)
    first_metadata, _ = manager.read("uid1", first, LAPTOP)
    assert first_metadata.created_at == START
    assert manager.read("uid1", second, LAPTOP)[0].created_at == START + 10


@pytest.mark.parametrize("subject", ["", 42, None, b"uid1"])
def test_a_subject_must_be_a_non_empty_str(make_manager: MakeManager, subject: object) -> None:
    manager = make_manager()
    with refused(ErrorCode.INVALID_SUBJECT, InvalidOptionsError):
        manager.create(subject, LAPTOP)


@pytest.mark.parametrize(
    "subject", ["a:b:c", "user with spaces", "ユーザー🙂", "{tag}", "x" * 5000]
)
def test_any_non_empty_str_is_a_subject(make_manager: MakeManager, subject: str) -> None:
    manager = make_manager()
    session_id = manager.create(subject, LAPTOP)
    other = manager.create(subject + ":other", LAPTOP)
    assert manager.read(subject, session_id, LAPTOP)[0].subject == subject
    assert len(manager.read_all(subject)) == 1
    with pytest.raises(SessionNotFoundError):
        manager.read(subject, other, LAPTOP)
    assert manager.delete_all(subject) == 1
    assert manager.delete_all(subject + ":other") == 1


@pytest.mark.parametrize(
    "subject", ["\ud83d\ude00", "\ud800", "user\udcff"], ids=["pair", "lone-high", "lone-low"]
)
def test_a_subject_with_surrogate_code_points_cannot_start_a_session(
    make_manager: MakeManager, subject: str
) -> None:
    # "\ud83d\ude00" would come back from JSON as "😀": another subject.
    manager = make_manager()
    with pytest.raises(InvalidOptionsError) as caught:
        manager.create(subject, LAPTOP)
    assert caught.value.code is ErrorCode.INVALID_SUBJECT
    assert manager.read_all("😀") == {}


@pytest.mark.parametrize(
    "build",
    [
        lambda: SessionContext(ip="10.0.0.\ud800"),
        lambda: Device("\ud83d\ude00", "desktop"),
        lambda: Device("Firefox", "desk\udfff"),
    ],
    ids=["ip", "device-name", "device-type"],
)
def test_a_context_with_surrogate_code_points_is_refused_when_built(build: object) -> None:
    with pytest.raises(InvalidOptionsError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.code is ErrorCode.INVALID_CONTEXT


def test_a_context_must_be_a_session_context(make_manager: MakeManager) -> None:
    manager = make_manager()
    with refused(ErrorCode.INVALID_CONTEXT):
        manager.create("uid1", {"ip": "10.0.0.1"})


# -- read: not found ---------------------------------------------------------------


def test_a_session_expires_after_its_ttl(make_manager: MakeManager, clock: ManualClock) -> None:
    manager = make_manager(session_ttl=60)
    session_id = manager.create("uid1", LAPTOP)
    clock.advance(59)
    manager.read("uid1", session_id, LAPTOP)
    clock.advance(1)
    with pytest.raises(SessionNotFoundError) as caught:
        manager.read("uid1", session_id, LAPTOP)
    assert caught.value.code is ErrorCode.USER_SESSION_NOT_FOUND


def test_reading_a_session_with_another_subject_is_not_found(make_manager: MakeManager) -> None:
    manager = make_manager()
    session_id = manager.create("uid1", LAPTOP)
    with pytest.raises(SessionNotFoundError):
        manager.read("uid2", session_id, LAPTOP)
    manager.read("uid1", session_id, LAPTOP)


@pytest.mark.parametrize("session_id", ["", "nope", "x" * 100_000, "🙂"])
def test_an_unknown_id_is_not_found(make_manager: MakeManager, session_id: str) -> None:
    with pytest.raises(SessionNotFoundError):
        make_manager().read("uid1", session_id, LAPTOP)


def test_a_session_id_must_be_a_str(make_manager: MakeManager) -> None:
    manager = make_manager()
    with refused(ErrorCode.INVALID_SESSION_ID):
        manager.read("uid1", b"bytes-id", LAPTOP)


# -- read: device ------------------------------------------------------------------


def test_a_read_from_another_device_is_refused(make_manager: MakeManager) -> None:
    manager = make_manager()
    session_id = manager.create("uid1", LAPTOP)
    with pytest.raises(SessionDeviceMismatchError) as caught:
        manager.read("uid1", session_id, PHONE)
    assert caught.value.code is ErrorCode.FORBIDDEN_ACCESS_TO_USER_SESSION_FROM_DIFFERENT_DEVICE
    manager.read("uid1", session_id, LAPTOP)


def test_a_session_bound_to_a_device_refuses_a_context_that_names_no_device(
    make_manager: MakeManager,
) -> None:
    manager = make_manager()
    session_id = manager.create("uid1", LAPTOP)
    with pytest.raises(SessionDeviceMismatchError):
        manager.read("uid1", session_id, NO_DEVICE)


def test_a_session_created_without_a_device_accepts_any_context(
    make_manager: MakeManager,
) -> None:
    manager = make_manager()
    session_id = manager.create("uid1", NO_DEVICE)
    manager.read("uid1", session_id, PHONE)
    manager.read("uid1", session_id, NO_DEVICE)


def test_the_lenient_hook_compares_devices_only_when_both_sides_name_one(
    make_manager: MakeManager,
) -> None:
    manager = make_manager(read_hook=check_same_device_if_known)
    with_device = manager.create("uid1", LAPTOP)
    manager.read("uid1", with_device, NO_DEVICE)
    with pytest.raises(SessionDeviceMismatchError):
        manager.read("uid1", with_device, PHONE)


def test_a_device_mismatch_carries_the_subject_but_does_not_say_it(
    make_manager: MakeManager,
) -> None:
    manager = make_manager()
    session_id = manager.create("alice@example.com", LAPTOP)
    with pytest.raises(SessionDeviceMismatchError) as caught:
        manager.read("alice@example.com", session_id, PHONE)
    assert caught.value.subject == "alice@example.com"
    assert "alice" not in str(caught.value) and "alice" not in repr(caught.value)


def test_a_refused_read_does_not_count_as_an_access(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=Timeouts(idle=100))
    session_id = manager.create("uid1", LAPTOP)
    clock.advance(60)
    with pytest.raises(SessionDeviceMismatchError):
        manager.read("uid1", session_id, PHONE)
    clock.advance(40)
    with pytest.raises(SessionExpiredError):
        manager.read("uid1", session_id, LAPTOP)


def test_a_custom_read_hook_replaces_the_device_check(make_manager: MakeManager) -> None:
    seen = []

    def hook(subject: str, session_id: str, context: SessionContext, metadata: object) -> None:
        seen.append((subject, context.ip))
        if context.ip == "10.6.6.6":
            raise PermissionError("blocked ip")

    manager = make_manager(read_hook=hook)
    session_id = manager.create("uid1", LAPTOP)
    manager.read("uid1", session_id, PHONE)
    with pytest.raises(PermissionError):
        manager.read("uid1", session_id, SessionContext(ip="10.6.6.6"))
    assert seen == [("uid1", PHONE.ip), ("uid1", "10.6.6.6")]


# -- read: idle --------------------------------------------------------------------


def test_a_session_unread_for_the_idle_timeout_expires_and_is_deleted(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=Timeouts(idle=100))
    session_id = manager.create("uid1", LAPTOP)
    clock.advance(100)
    with pytest.raises(SessionExpiredError) as caught:
        manager.read("uid1", session_id, LAPTOP)
    assert caught.value.code is ErrorCode.USER_SESSION_EXPIRED
    with pytest.raises(SessionNotFoundError):
        manager.read("uid1", session_id, LAPTOP)
    assert manager.read_all("uid1") == {}


def test_each_read_restarts_the_idle_countdown(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=Timeouts(idle=100))
    session_id = manager.create("uid1", LAPTOP)
    for _ in range(10):
        clock.advance(99)
        metadata, _ = manager.read("uid1", session_id, LAPTOP)
        assert metadata.accessed_at == clock()
    assert clock() - START == 990


def test_an_idle_session_past_its_renewal_age_expires_instead_of_renewing(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=Timeouts(idle=100, renewal=50, renewal_grace=5))
    session_id = manager.create("uid1", LAPTOP)
    clock.advance(100)
    with pytest.raises(SessionExpiredError):
        manager.read("uid1", session_id, LAPTOP)
    assert manager.read_all("uid1") == {}


# -- read: renewal -----------------------------------------------------------------


def test_a_read_after_the_renewal_age_hands_out_a_new_session_once(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(session_ttl=3600, timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    clock.advance(599)
    assert manager.read("uid1", old, LAPTOP)[1] is None
    clock.advance(1)
    moved = SessionContext("10.9.9.9", LAPTOP.device)
    old_metadata, new = manager.read("uid1", old, moved)
    assert new is not None and new != old
    assert manager.read("uid1", old, LAPTOP)[1] is None
    new_metadata, again = manager.read("uid1", new, moved)
    assert again is None
    assert new_metadata.created_at == clock()
    assert new_metadata.ip == "10.9.9.9"
    assert new_metadata.expires_at - new_metadata.created_at == 3600
    assert old_metadata.expires_at == START + 3600


def test_the_renewed_session_keeps_the_lifetime_of_a_custom_ttl(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(session_ttl=3600, timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP, ttl=7200)
    clock.advance(600)
    _, new = manager.read("uid1", old, LAPTOP)
    assert new is not None
    assert manager.read("uid1", new, LAPTOP)[0].expires_at == clock() + 7200


def test_the_old_id_works_for_exactly_the_grace_period(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    clock.advance(600)
    _, new = manager.read("uid1", old, LAPTOP)
    clock.advance(4)
    metadata, renewed = manager.read("uid1", old, LAPTOP)
    assert renewed is None
    assert metadata.renewed
    clock.advance(1)
    with pytest.raises(SessionNotFoundError):
        manager.read("uid1", old, LAPTOP)
    assert new is not None
    manager.read("uid1", new, LAPTOP)


def test_the_grace_never_outlives_the_old_sessions_expiry(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(session_ttl=1000, timeouts=Timeouts(renewal=998, renewal_grace=10))
    old = manager.create("uid1", LAPTOP)
    clock.advance(998)
    _, new = manager.read("uid1", old, LAPTOP)
    assert new is not None
    clock.advance(2)
    with pytest.raises(SessionNotFoundError):
        manager.read("uid1", old, LAPTOP)


def test_a_session_in_its_grace_is_not_subject_to_idle_and_not_listed(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=Timeouts(idle=100, renewal=50, renewal_grace=30))
    old = manager.create("uid1", LAPTOP)
    clock.advance(50)
    _, new = manager.read("uid1", old, LAPTOP)
    assert new is not None
    listed = manager.read_all("uid1")
    assert list(listed) == [UserSessionManager.hash(new)]
    clock.advance(29)
    assert manager.read("uid1", old, LAPTOP)[1] is None


def test_the_renew_hooks_tell_renewed_here_from_renewed_elsewhere(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    here: list[str] = []
    elsewhere: list[str] = []
    hooks = RenewHooks(on_already_renewed_here=here.append)
    first = make_manager(timeouts=RENEWING, renew_hooks=hooks)
    second = UserSessionManager(
        first.storage,
        session_ttl=3600,
        timeouts=RENEWING,
        renew_hooks=RenewHooks(on_already_renewed_elsewhere=elsewhere.append),
    )
    old = first.create("uid1", LAPTOP)
    clock.advance(600)
    assert first.read("uid1", old, LAPTOP)[1] is not None
    assert first.read("uid1", old, LAPTOP)[1] is None
    assert second.read("uid1", old, LAPTOP)[1] is None
    assert here == [old]
    assert elsewhere == [old]


def test_a_deep_copy_of_a_manager_is_another_manager_to_the_renew_hooks(
    clock: ManualClock,
) -> None:
    # (A shallow copy shares every part of the manager, its token among them.)
    heard: list[tuple[str, str]] = []
    hooks = RenewHooks(
        on_already_renewed_here=lambda session_id: heard.append(("here", session_id)),
        on_already_renewed_elsewhere=lambda session_id: heard.append(("elsewhere", session_id)),
    )
    storage = InMemorySessionStorage(clock=clock)
    first = UserSessionManager(storage, session_ttl=3600, timeouts=RENEWING, renew_hooks=hooks)
    old = first.create("uid1", LAPTOP)
    clock.advance(600)
    assert first.read("uid1", old, LAPTOP)[1] is not None
    copied = copy.deepcopy(first, {id(storage): storage})  # over the same storage
    assert copied.read("uid1", old, LAPTOP)[1] is None
    assert first.read("uid1", old, LAPTOP)[1] is None
    assert heard == [("elsewhere", old), ("here", old)]


def test_only_one_of_two_managers_sharing_a_storage_renews(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    first = make_manager(timeouts=RENEWING)
    second = UserSessionManager(first.storage, session_ttl=3600, timeouts=RENEWING)
    old = first.create("uid1", LAPTOP)
    clock.advance(600)
    results = [first.read("uid1", old, LAPTOP)[1], second.read("uid1", old, LAPTOP)[1]]
    assert sum(result is not None for result in results) == 1


def test_only_one_of_many_racing_threads_renews(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    clock.advance(600)
    barrier = threading.Barrier(8)
    results: list[str | None] = []
    lock = threading.Lock()

    def reader() -> None:
        barrier.wait()
        outcome = manager.read("uid1", old, LAPTOP)[1]
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len([r for r in results if r is not None]) == 1
    assert len(manager.read_all("uid1")) == 1


def test_deleting_a_just_renewed_session_is_safe_and_idempotent(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    clock.advance(600)
    _, new = manager.read("uid1", old, LAPTOP)
    assert new is not None
    manager.delete("uid1", old)
    manager.delete("uid1", old)
    with pytest.raises(SessionNotFoundError):
        manager.read("uid1", old, LAPTOP)
    clock.advance(10)
    manager.read("uid1", new, LAPTOP)
    assert list(manager.read_all("uid1")) == [UserSessionManager.hash(new)]


def test_explicit_renew_returns_a_new_id_once(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    metadata, _ = manager.read("uid1", old, LAPTOP)
    new = manager.renew("uid1", old, metadata, LAPTOP)
    assert new is not None
    assert manager.renew("uid1", old, metadata, LAPTOP) is None
    with pytest.raises(SessionNotFoundError):
        manager.renew("uid1", "not-a-session", metadata, LAPTOP)


def test_explicit_renew_judges_the_stored_session_as_a_read_does(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(session_ttl=100, timeouts=Timeouts(idle=10, renewal=50, renewal_grace=5))
    short = manager.create("uid1", LAPTOP, ttl=20)
    long = manager.create("uid1", LAPTOP)
    long_metadata, _ = manager.read("uid1", long, LAPTOP)
    # Another device may not renew, whatever metadata it brings.
    with pytest.raises(SessionDeviceMismatchError):
        manager.renew("uid1", short, long_metadata, PHONE)
    # The successor is built from the stored session, not from the argument.
    new = manager.renew("uid1", short, long_metadata, LAPTOP)
    assert new is not None
    successor, _ = manager.read("uid1", new, LAPTOP)
    assert successor.expires_at - successor.created_at == 20
    clock.advance(10)
    with pytest.raises(SessionExpiredError):
        manager.renew("uid1", long, long_metadata, LAPTOP)


def test_explicit_renew_without_a_grace_period_is_refused(make_manager: MakeManager) -> None:
    manager = make_manager()
    old = manager.create("uid1", LAPTOP)
    metadata, _ = manager.read("uid1", old, LAPTOP)
    with pytest.raises(InvalidOptionsError):
        manager.renew("uid1", old, metadata, LAPTOP)


# -- read_all, delete, revoke, delete_all ----------------------------------------------


def test_read_all_lists_active_sessions_keyed_by_handle_not_by_id(
    make_manager: MakeManager,
) -> None:
    manager = make_manager()
    ids = [manager.create("uid1", LAPTOP) for _ in range(3)]
    manager.create("uid2", LAPTOP)
    listed = manager.read_all("uid1")
    assert set(listed) == {UserSessionManager.hash(i) for i in ids}
    assert not set(listed) & set(ids)
    assert all(metadata.ip == LAPTOP.ip for metadata in listed.values())


def test_read_all_leaves_out_expired_and_idle_sessions(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(session_ttl=1000, timeouts=Timeouts(idle=100))
    short = manager.create("uid1", LAPTOP, ttl=50)
    quiet = manager.create("uid1", LAPTOP)
    busy = manager.create("uid1", LAPTOP)
    clock.advance(60)
    manager.read("uid1", busy, LAPTOP)
    assert len(manager.read_all("uid1")) == 2
    clock.advance(40)
    assert list(manager.read_all("uid1")) == [UserSessionManager.hash(busy)]
    del short, quiet


def test_read_all_of_an_unknown_subject_is_empty(make_manager: MakeManager) -> None:
    assert make_manager().read_all("nobody") == {}


def test_delete_ends_one_session(make_manager: MakeManager) -> None:
    manager = make_manager()
    first = manager.create("uid1", LAPTOP)
    second = manager.create("uid1", LAPTOP)
    manager.delete("uid1", first)
    with pytest.raises(SessionNotFoundError):
        manager.read("uid1", first, LAPTOP)
    manager.read("uid1", second, LAPTOP)


def test_deleting_an_unknown_foreign_or_deleted_id_is_a_no_op(make_manager: MakeManager) -> None:
    manager = make_manager()
    session_id = manager.create("uid1", LAPTOP)
    manager.delete("uid1", "unknown")
    manager.delete("uid2", session_id)
    manager.read("uid1", session_id, LAPTOP)
    manager.delete("uid1", session_id)
    manager.delete("uid1", session_id)
    assert manager.read_all("uid1") == {}


def test_revoke_ends_the_session_a_handle_names(make_manager: MakeManager) -> None:
    manager = make_manager()
    laptop = manager.create("uid1", LAPTOP)
    phone = manager.create("uid1", PHONE)
    phone_handle = next(h for h, m in manager.read_all("uid1").items() if m.device == PHONE.device)
    assert manager.revoke("uid2", phone_handle) is False
    assert manager.revoke("uid1", phone_handle) is True
    assert manager.revoke("uid1", phone_handle) is False
    with pytest.raises(SessionNotFoundError):
        manager.read("uid1", phone, PHONE)
    manager.read("uid1", laptop, LAPTOP)
    assert manager.revoke("uid1", laptop) is False  # an id is not a handle


def test_delete_all_removes_every_session_and_counts_them(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    manager.create("uid1", PHONE)
    keep = manager.create("uid2", LAPTOP)
    clock.advance(600)
    _, new = manager.read("uid1", old, LAPTOP)
    assert new is not None
    assert manager.delete_all("uid1") == 3  # superseded one included
    assert manager.delete_all("uid1") == 0
    for session_id in (old, new):
        with pytest.raises(SessionNotFoundError):
            manager.read("uid1", session_id, LAPTOP)
    manager.read("uid2", keep, LAPTOP)


# -- no raw id in errors -----------------------------------------------------------------


def test_errors_name_a_session_by_its_handle_never_its_id(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=Timeouts(idle=10))
    session_id = manager.create("uid1", LAPTOP)
    failures: list[BaseException] = []
    for subject, context in (("uid2", LAPTOP), ("uid1", PHONE)):
        try:
            manager.read(subject, session_id, context)
        except Exception as error:
            failures.append(error)
    clock.advance(10)
    try:
        manager.read("uid1", session_id, LAPTOP)
    except Exception as error:
        failures.append(error)
    assert [type(f) for f in failures] == [
        SessionNotFoundError,
        SessionDeviceMismatchError,
        SessionExpiredError,
    ]
    for failure in failures:
        chain = [failure, failure.__cause__, failure.__context__]
        text = " ".join(f"{e!s} {e!r}" for e in chain if e is not None)
        assert session_id not in text
        assert UserSessionManager.hash(session_id) in str(failure)


def test_a_delayed_touch_never_moves_the_last_access_backwards(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(session_ttl=100, timeouts=Timeouts(idle=10))
    session_id = manager.create("uid1", LAPTOP)
    storage = manager.storage
    clock.advance(5)
    slow = storage.read("uid1", session_id, clock())  # a reader that stalls here
    clock.advance(3)
    manager.read("uid1", session_id, LAPTOP)  # a later reader, at +8
    storage.touch("uid1", session_id, slow, START + 5)  # the stalled touch lands
    clock.advance(9)  # +17: 9 s after the last access, 12 s after the stalled one
    metadata, _ = manager.read("uid1", session_id, LAPTOP)
    assert metadata.accessed_at == START + 17


def test_the_storage_lets_exactly_one_renewal_of_a_session_through(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """R1 at the storage: a second renewal (a racing reader, another process)
    is told who won and inserts nothing."""
    manager = make_manager(timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    storage = manager.storage
    clock.advance(600)
    metadata = storage.read("uid1", old, clock())
    winner_id, loser_id = manager.create("uid2", LAPTOP), manager.create("uid2", LAPTOP)
    manager.delete_all("uid2")  # two fresh ids that are stored nowhere
    handle = UserSessionManager.hash(old)
    first = storage.renew(
        "uid1",
        old,
        clock() + 5,
        "here:1",
        winner_id,
        renewed_metadata(metadata, handle, LAPTOP, clock()),
    )
    second = storage.renew(
        "uid1",
        old,
        clock() + 5,
        "there:2",
        loser_id,
        renewed_metadata(metadata, handle, PHONE, clock()),
    )
    assert (first, second) == ("here:1", "here:1")
    assert storage.read("uid1", winner_id, clock()) is not None
    assert storage.read("uid1", loser_id, clock()) is None
    assert len(manager.read_all("uid1")) == 1


def test_explicit_renew_renews_even_when_this_hosts_clock_is_a_little_behind(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    first = make_manager(timeouts=RENEWING)
    behind = UserSessionManager(
        first.storage, session_ttl=3600, timeouts=RENEWING, clock=lambda: clock() - 1
    )
    session_id = first.create("uid1", LAPTOP)
    metadata, _ = behind.read("uid1", session_id, LAPTOP)
    assert behind.renew("uid1", session_id, metadata, LAPTOP) is not None


# -- storages a manager can and cannot drive ---------------------------------------


def test_the_async_manager_runs_over_the_in_memory_storage_as_it_is(clock: ManualClock) -> None:
    storage = InMemorySessionStorage(clock=clock)
    manager = AsyncUserSessionManager(storage, session_ttl=3600)

    async def scenario() -> None:
        session_id = await manager.create("uid1", LAPTOP)
        metadata, renewed = await manager.read("uid1", session_id, LAPTOP)
        assert renewed is None and metadata.created_at == clock()
        assert await manager.logout("uid1", session_id) == 1

    asyncio.run(scenario())
    assert manager.storage is storage
    assert storage.stats().deleted == 1


@pytest.mark.parametrize(
    "storage",
    [None, object(), "redis://localhost", {"insert": print}],
    ids=["None", "object", "str", "dict"],
)
@pytest.mark.parametrize("manager_class", [UserSessionManager, AsyncUserSessionManager])
def test_a_manager_refuses_what_is_not_a_storage_at_construction(
    manager_class: type, storage: object
) -> None:
    with pytest.raises(InvalidTypeError) as caught:
        manager_class(storage, session_ttl=3600)
    assert caught.value.code is ErrorCode.INVALID_OPTION
    assert "not a session storage" in str(caught.value)


def test_the_sync_manager_refuses_an_async_storage_at_construction() -> None:
    storage = AsyncRedisSessionStorage(redis.asyncio.Redis(port=1))
    with pytest.raises(InvalidTypeError, match="AsyncUserSessionManager"):
        UserSessionManager(storage, session_ttl=3600)  # type: ignore[arg-type]


def test_the_async_manager_refuses_a_sync_storage_that_blocks_at_construction() -> None:
    storage = RedisSessionStorage(redis.Redis(port=1))
    with pytest.raises(InvalidTypeError, match="blocks on I/O"):
        AsyncUserSessionManager(storage, session_ttl=3600)


def test_a_storage_with_a_method_missing_is_named_in_the_refusal(clock: ManualClock) -> None:
    class OldStorage(InMemorySessionStorage):
        delete_other_logins = None  # type: ignore[assignment]

    with pytest.raises(InvalidTypeError, match="delete_other_logins"):
        UserSessionManager(OldStorage(clock=clock), session_ttl=3600)
