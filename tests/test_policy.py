"""The rules as plain functions: one test per rule of the read order (docs/behaviour.md)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from usersession import DeleteReason, SessionContext, SessionMetadata
from usersession.policy import (
    Verdict,
    deadline,
    is_active,
    login_key,
    new_metadata,
    read_verdict,
    renewed_metadata,
    same_login,
)

NOW = 1_000


def session(
    created_at: int = NOW,
    accessed_at: int | None = None,
    expires_at: int = NOW + 100,
    idle: int | None = None,
    grace_ends_at: int | None = None,
) -> SessionMetadata:
    accessed = created_at if accessed_at is None else accessed_at
    return SessionMetadata(
        "10.0.0.1",
        None,
        None,
        created_at,
        accessed,
        expires_at,
        idle=idle,
        grace_ends_at=grace_ends_at,
        subject="uid1",
    )


def test_a_session_is_gone_at_its_expiry_second() -> None:
    assert read_verdict(session(), NOW + 99, None) is Verdict.TOUCH
    assert read_verdict(session(), NOW + 100, None) is Verdict.GONE


def test_a_superseded_session_is_served_as_is_until_its_grace_ends() -> None:
    superseded = session(grace_ends_at=NOW + 5, idle=1)
    assert read_verdict(superseded, NOW + 4, renewal=1) is Verdict.GRACE
    assert read_verdict(superseded, NOW + 5, renewal=1) is Verdict.GONE


def test_expiry_beats_a_grace_that_would_outlive_it() -> None:
    assert read_verdict(session(grace_ends_at=NOW + 500), NOW + 100, None) is Verdict.GONE


def test_idle_is_judged_before_renewal() -> None:
    assert read_verdict(session(idle=10), NOW + 10, renewal=5) is Verdict.IDLE
    assert read_verdict(session(idle=10, accessed_at=NOW + 6), NOW + 10, 5) is Verdict.RENEW


def test_renewal_is_due_from_the_renewal_age_on() -> None:
    assert read_verdict(session(), NOW + 49, renewal=50) is Verdict.TOUCH
    assert read_verdict(session(), NOW + 50, renewal=50) is Verdict.RENEW


def test_a_session_due_for_renewal_is_still_active() -> None:
    assert is_active(session(), NOW + 50)
    assert not is_active(session(grace_ends_at=NOW + 5), NOW + 1)
    assert not is_active(session(idle=10), NOW + 10)


def test_the_deadline_is_the_earliest_of_expiry_idle_and_grace() -> None:
    assert deadline(session()) == (NOW + 100, DeleteReason.EXPIRED)
    assert deadline(session(idle=30, accessed_at=NOW + 10)) == (NOW + 40, DeleteReason.IDLE)
    assert deadline(session(idle=30, accessed_at=NOW + 70)) == (NOW + 100, DeleteReason.EXPIRED)
    assert deadline(session(idle=5, grace_ends_at=NOW + 20)) == (NOW + 20, DeleteReason.RENEWED)
    assert deadline(session(grace_ends_at=NOW + 100)) == (NOW + 100, DeleteReason.EXPIRED)


def test_a_renewed_session_keeps_subject_lifetime_idle_device_and_login() -> None:
    old = session(created_at=NOW, expires_at=NOW + 7200, idle=60)
    new = renewed_metadata(old, "old-handle", SessionContext("10.9.9.9"), NOW + 600)
    assert (new.subject, new.ip, new.created_at, new.accessed_at) == (
        "uid1",
        "10.9.9.9",
        NOW + 600,
        NOW + 600,
    )
    assert new.expires_at - new.created_at == 7200
    assert new._idle == 60
    assert new.device == old.device
    assert new.authenticated_at == old.authenticated_at == NOW
    assert login_key("new-handle", new) == login_key("old-handle", old) == "old-handle"
    assert not new.renewed


def test_the_absolute_timeout_caps_a_first_session_and_every_successor() -> None:
    first = new_metadata("uid1", SessionContext("10.0.0.1"), NOW, 100, None, absolute=150)
    assert first.expires_at == NOW + 100
    second = renewed_metadata(first, "h1", SessionContext("10.0.0.1"), NOW + 90, absolute=150)
    assert second.expires_at == NOW + 150
    short = new_metadata("uid1", SessionContext("10.0.0.1"), NOW, 100, None, absolute=40)
    assert short.expires_at == NOW + 40


def test_a_session_past_the_readers_absolute_timeout_is_gone_whatever_its_expiry() -> None:
    stored_elsewhere = session(created_at=NOW, expires_at=NOW + 1000)
    assert read_verdict(stored_elsewhere, NOW + 199, None, absolute=200) is Verdict.TOUCH
    assert read_verdict(stored_elsewhere, NOW + 200, None, absolute=200) is Verdict.GONE
    assert not is_active(stored_elsewhere, NOW + 200, absolute=200)


def test_a_renewed_logins_sessions_share_one_lineage_and_a_new_login_has_none() -> None:
    # Memory per renewed login, not per session: the successors of a
    # successor carry the very lineage of the first one.
    first = session()
    assert first._lineage is None
    successor = renewed_metadata(first, "h1", SessionContext("10.0.0.1"), NOW + 1)
    assert successor._lineage == ("h1", NOW, None, None)
    third = renewed_metadata(successor, "h2", SessionContext("10.0.0.1"), NOW + 2)
    assert third._lineage is successor._lineage
    assert third.authenticated_at == first.created_at


def test_sessions_of_one_login_share_its_key_and_others_do_not() -> None:
    first = session()
    successor = renewed_metadata(first, "h1", SessionContext("10.0.0.1"), NOW + 1)
    assert same_login("h2", successor, "h1", first)
    first._supersede(NOW + 5, "claim", successor)  # what storage.renew does
    assert same_login("h2", successor, "h1", first)
    assert not same_login("h3", session(), "h1", first)
    assert not same_login("h3", session(), "h2", successor)


@given(
    created_at=st.integers(0, 100),
    accessed_after=st.integers(0, 100),
    lifetime=st.integers(1, 200),
    idle=st.none() | st.integers(1, 100),
    grace=st.none() | st.integers(0, 100),
    absolute=st.none() | st.integers(1, 300),
    now=st.integers(0, 400),
)
def test_is_active_is_a_touch_verdict_without_renewal(
    created_at: int,
    accessed_after: int,
    lifetime: int,
    idle: int | None,
    grace: int | None,
    absolute: int | None,
    now: int,
) -> None:
    """is_active is spelled out for speed; it must judge exactly as read_verdict."""
    meta = session(
        created_at=created_at,
        accessed_at=created_at + accessed_after,
        expires_at=created_at + lifetime,
        idle=idle,
        grace_ends_at=None if grace is None else created_at + grace,
    )
    assert is_active(meta, now, absolute) == (
        read_verdict(meta, now, None, absolute) is Verdict.TOUCH
    )
