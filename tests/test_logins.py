"""Logins across renewals: `authenticated_at`, the absolute timeout, logout,
revoke and delete_all(keep=) end whole logins, device binding that fails
closed. Every test runs once per storage kind (see conftest.py)."""

from __future__ import annotations

from enum import StrEnum

import pytest

from usersession import (
    DeleteReason,
    Device,
    ErrorCode,
    InvalidOptionsError,
    ManualClock,
    SessionContext,
    SessionDeviceMismatchError,
    SessionMetadata,
    SessionNotFoundError,
    Timeouts,
    UserSessionManager,
)

from .conftest import START, MakeManager

LAPTOP = SessionContext(ip="10.0.0.1", device=Device("Firefox", "desktop"))
LAPTOP_ELSEWHERE = SessionContext(
    ip="10.7.7.7", device=Device("Firefox", "desktop"), location="Oslo"
)
PHONE = SessionContext(ip="10.0.0.2", device=Device("Safari", "mobile"))
NO_DEVICE = SessionContext(ip="10.0.0.3")
RENEWING = Timeouts(renewal=600, renewal_grace=30)


def renewed_login(manager: UserSessionManager, clock: ManualClock) -> tuple[str, str]:
    """A login of two sessions: the first, inside its grace, and its successor."""
    old = manager.create("uid1", LAPTOP)
    clock.advance(600)
    new = manager.read("uid1", old, LAPTOP)[1]
    assert new is not None
    return old, new


def readable(manager: UserSessionManager, subject: str, session_id: str) -> bool:
    try:
        manager.read(subject, session_id, LAPTOP)
    except SessionNotFoundError:
        return False
    return True


def deleted_events(manager: UserSessionManager) -> list[str]:
    """Start recording what the listeners are told of sessions removed with
    reason DELETED: the in-memory storage passes the id, Redis the handle."""
    removed: list[str] = []

    def record(subject: str, key: str, metadata: SessionMetadata, reason: DeleteReason) -> None:
        assert reason is DeleteReason.DELETED
        removed.append(key)

    manager.storage.add_listener(record)
    return removed


def as_handles(manager: UserSessionManager, keys: list[str], session_ids: list[str]) -> list[str]:
    """`keys` (ids or handles of `session_ids`) as handles, sorted."""
    ids = set(session_ids)
    return sorted(manager.hash(key) if key in ids else key for key in keys)


# -- authenticated_at and the absolute timeout -------------------------------------


def test_a_login_begins_at_its_first_sessions_creation(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old, new = renewed_login(manager, clock)
    old_metadata = manager.read("uid1", old, LAPTOP)[0]
    new_metadata = manager.read("uid1", new, LAPTOP)[0]
    assert old_metadata.authenticated_at == new_metadata.authenticated_at == START
    assert old_metadata.created_at == START
    assert new_metadata.created_at == START + 600


def test_without_an_absolute_timeout_each_renewal_gets_a_full_lifetime(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(session_ttl=1000, timeouts=Timeouts(renewal=600, renewal_grace=30))
    session_id = manager.create("uid1", LAPTOP)
    for _ in range(5):
        clock.advance(600)
        renewed = manager.read("uid1", session_id, LAPTOP)[1]
        assert renewed is not None
        session_id = renewed
    metadata = manager.read("uid1", session_id, LAPTOP)[0]
    assert metadata.expires_at == clock() + 1000
    assert metadata.authenticated_at == START


def test_no_session_of_a_login_is_readable_at_its_absolute_timeout(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """L1: however often it is renewed, a login ends at authenticated_at + absolute."""
    manager = make_manager(
        session_ttl=1000, timeouts=Timeouts(renewal=600, renewal_grace=30, absolute=2500)
    )
    session_id = manager.create("uid1", LAPTOP)
    for _ in range(4):
        clock.advance(600)
        renewed = manager.read("uid1", session_id, LAPTOP)[1]
        assert renewed is not None
        session_id = renewed
        assert manager.read("uid1", session_id, LAPTOP)[0].expires_at <= START + 2500
    assert clock() == START + 2400
    clock.advance(99)
    manager.read("uid1", session_id, LAPTOP)
    clock.advance(1)
    with pytest.raises(SessionNotFoundError):
        manager.read("uid1", session_id, LAPTOP)
    assert manager.read_all("uid1") == {}


def test_the_absolute_timeout_caps_a_first_session_with_a_longer_ttl(
    make_manager: MakeManager,
) -> None:
    manager = make_manager(session_ttl=1000, timeouts=Timeouts(absolute=500))
    session_id = manager.create("uid1", LAPTOP, ttl=5000)
    assert manager.read("uid1", session_id, LAPTOP)[0].expires_at == START + 500


def test_a_session_stored_without_an_absolute_timeout_obeys_a_reader_that_has_one(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    lenient = make_manager(session_ttl=10_000)
    strict = UserSessionManager(
        lenient.storage, session_ttl=10_000, timeouts=Timeouts(absolute=100), clock=clock
    )
    session_id = lenient.create("uid1", LAPTOP)
    clock.advance(100)
    with pytest.raises(SessionNotFoundError):
        strict.read("uid1", session_id, LAPTOP)
    assert strict.read_all("uid1") == {}
    assert readable(lenient, "uid1", session_id)


@pytest.mark.parametrize("absolute", [0, -5, 100 * 365 * 86_400 + 1])
def test_an_absolute_timeout_out_of_range_is_refused(
    make_manager: MakeManager, absolute: int
) -> None:
    with pytest.raises(InvalidOptionsError) as caught:
        make_manager(timeouts=Timeouts(absolute=absolute))
    assert caught.value.code is ErrorCode.INVALID_ABSOLUTE_TIMEOUT


# -- logout ---------------------------------------------------------------------------


def test_logout_with_the_new_id_ends_the_old_one_inside_its_grace_too(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old, new = renewed_login(manager, clock)
    assert manager.logout("uid1", new) == 2
    assert not readable(manager, "uid1", old)
    assert not readable(manager, "uid1", new)


def test_logout_with_the_old_id_inside_its_grace_ends_the_successor(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old, new = renewed_login(manager, clock)
    assert manager.logout("uid1", old) == 2
    assert not readable(manager, "uid1", new)


def test_logout_leaves_the_subjects_other_logins_alone(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """L2: only the login the id belongs to ends."""
    manager = make_manager(timeouts=RENEWING)
    old, _ = renewed_login(manager, clock)
    other = manager.create("uid1", LAPTOP)
    stranger = manager.create("uid2", LAPTOP)
    assert manager.logout("uid1", old) == 2
    assert readable(manager, "uid1", other)
    assert readable(manager, "uid2", stranger)
    assert set(manager.read_all("uid1")) == {manager.hash(other)}


def test_logout_of_a_login_of_one_session_ends_that_session(make_manager: MakeManager) -> None:
    manager = make_manager()
    first, second = manager.create("uid1", LAPTOP), manager.create("uid1", LAPTOP)
    assert manager.logout("uid1", first) == 1
    assert not readable(manager, "uid1", first)
    assert readable(manager, "uid1", second)


def test_logout_of_an_unknown_or_foreign_id_removes_nothing(make_manager: MakeManager) -> None:
    manager = make_manager()
    session_id = manager.create("uid1", LAPTOP)
    assert manager.logout("uid1", "no-such-session") == 0
    assert manager.logout("uid2", session_id) == 0
    assert readable(manager, "uid1", session_id)
    assert manager.logout("uid1", session_id) == 1
    assert manager.logout("uid1", session_id) == 0


def test_logout_tells_the_listeners_once_per_session_it_removes(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old, new = renewed_login(manager, clock)
    removed = deleted_events(manager)
    manager.logout("uid1", new)
    assert as_handles(manager, removed, [old, new]) == sorted(
        [manager.hash(old), manager.hash(new)]
    )


def test_a_login_renewed_twice_is_logged_out_whole(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=Timeouts(renewal=600, renewal_grace=300))
    _, second = renewed_login(manager, clock)
    clock.advance(280)
    third = manager.read("uid1", second, LAPTOP)[1]
    assert third is None  # second is 280 s old: not yet due
    clock.advance(320)
    third = manager.read("uid1", second, LAPTOP)[1]
    assert third is not None
    # first's grace is over (600 s > 300 s), second is in its grace.
    assert manager.logout("uid1", third) == 2
    assert not readable(manager, "uid1", second)


def test_delete_still_ends_one_session_of_a_login(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    """R4: deleting the old id early, once the client uses the new one, is a
    legitimate flow and leaves the successor readable."""
    manager = make_manager(timeouts=RENEWING)
    old, new = renewed_login(manager, clock)
    manager.delete("uid1", old)
    assert not readable(manager, "uid1", old)
    assert readable(manager, "uid1", new)


# -- revoke ---------------------------------------------------------------------------


def test_revoking_a_device_ends_its_other_id_inside_the_grace(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old, new = renewed_login(manager, clock)
    (handle,) = manager.read_all("uid1")
    assert handle == manager.hash(new)
    assert manager.revoke("uid1", handle) is True
    assert not readable(manager, "uid1", old)
    assert not readable(manager, "uid1", new)
    assert manager.revoke("uid1", handle) is False


def test_revoking_by_the_old_sessions_handle_ends_the_login(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old, new = renewed_login(manager, clock)
    assert manager.revoke("uid1", manager.hash(old)) is True
    assert not readable(manager, "uid1", new)


def test_revoke_leaves_other_logins_and_other_subjects_alone(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    other = manager.create("uid1", PHONE)
    _, new = renewed_login(manager, clock)
    assert manager.revoke("uid2", manager.hash(new)) is False
    assert manager.revoke("uid1", manager.hash(new)) is True
    assert set(manager.read_all("uid1")) == {manager.hash(other)}


# -- delete_all(keep=) ----------------------------------------------------------------


def test_signing_out_everywhere_else_keeps_the_whole_current_login(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    others = [manager.create("uid1", PHONE) for _ in range(3)]
    old, new = renewed_login(manager, clock)
    stranger = manager.create("uid2", PHONE)
    assert manager.delete_all("uid1", keep=new) == 3
    assert readable(manager, "uid1", old)  # the predecessor, inside its grace
    assert readable(manager, "uid1", new)
    assert set(manager.read_all("uid1")) == {manager.hash(new)}
    assert all(not readable(manager, "uid1", session_id) for session_id in others)
    assert manager.read("uid2", stranger, PHONE)


def test_signing_out_everywhere_else_from_the_old_id_keeps_its_successor(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    other = manager.create("uid1", PHONE)
    old, new = renewed_login(manager, clock)
    assert manager.delete_all("uid1", keep=old) == 1
    assert readable(manager, "uid1", new)
    assert not readable(manager, "uid1", other)


def test_signing_out_everywhere_else_with_a_dead_keep_removes_nothing(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(session_ttl=100)
    alive = manager.create("uid1", LAPTOP)
    expired = manager.create("uid1", LAPTOP, ttl=10)
    deleted = manager.create("uid1", LAPTOP)
    manager.delete("uid1", deleted)
    foreign = manager.create("uid2", LAPTOP)
    clock.advance(10)
    for keep in (expired, deleted, foreign, "no-such-session"):
        with pytest.raises(SessionNotFoundError) as caught:
            manager.delete_all("uid1", keep=keep)
        assert caught.value.subject == "uid1"
    assert readable(manager, "uid1", alive)


def test_signing_out_everywhere_else_tells_the_listeners(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager()
    keep = manager.create("uid1", LAPTOP)
    others = [manager.create("uid1", PHONE) for _ in range(2)]
    removed = deleted_events(manager)
    manager.delete_all("uid1", keep=keep)
    assert as_handles(manager, removed, others) == sorted(manager.hash(i) for i in others)


def test_delete_all_without_keep_still_ends_everything(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    manager.create("uid1", PHONE)
    renewed_login(manager, clock)
    assert manager.delete_all("uid1") == 3


# -- device binding -------------------------------------------------------------------


def test_a_successor_keeps_the_device_and_takes_ip_and_location_from_the_reader(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    clock.advance(600)
    new = manager.read("uid1", old, LAPTOP_ELSEWHERE)[1]
    assert new is not None
    metadata = manager.read("uid1", new, LAPTOP_ELSEWHERE)[0]
    assert metadata.device == LAPTOP.device
    assert (metadata.ip, metadata.location) == ("10.7.7.7", "Oslo")


def test_a_renewal_cannot_be_triggered_from_a_context_without_the_device(
    make_manager: MakeManager, clock: ManualClock
) -> None:
    manager = make_manager(timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    clock.advance(600)
    with pytest.raises(SessionDeviceMismatchError):
        manager.read("uid1", old, NO_DEVICE)
    new = manager.read("uid1", old, LAPTOP)[1]
    assert new is not None
    with pytest.raises(SessionDeviceMismatchError):
        manager.read("uid1", new, NO_DEVICE)


# -- subjects -------------------------------------------------------------------------


class Role(StrEnum):
    ADMIN = "admin"


def test_a_str_subclass_is_a_subject_and_its_plain_value_is_what_counts(
    make_manager: MakeManager,
) -> None:
    manager = make_manager()
    session_id = manager.create(Role.ADMIN, LAPTOP)
    metadata = manager.read("admin", session_id, LAPTOP)[0]
    assert type(metadata.subject) is str
    assert manager.read(Role.ADMIN, session_id, LAPTOP)[0].subject == "admin"
    assert set(manager.read_all(Role.ADMIN)) == {manager.hash(session_id)}
    assert manager.logout(Role.ADMIN, session_id) == 1


def test_not_found_carries_the_subject_and_never_says_it(make_manager: MakeManager) -> None:
    manager = make_manager()
    with pytest.raises(SessionNotFoundError) as caught:
        manager.read("alice@example.com", "no-such-session", LAPTOP)
    assert caught.value.subject == "alice@example.com"
    assert "alice" not in str(caught.value)
