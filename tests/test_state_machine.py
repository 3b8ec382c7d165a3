"""Random sequences of operations against a small reference model.

Hypothesis drives create / read / read_all / delete / logout / revoke /
delete_all (with and without keep) / advance-clock / collect on a manager over
the in-memory storage, and a plain reference model predicts every outcome.
The model is written independently of `usersession.policy`: if a rule there
is wrong, the two disagree.

After every step the invariants (docs/behaviour.md) are checked:
- T1 no session is returned by read/read_all at or after its expires_at;
- T2 no session idle for >= idle is returned or listed (a superseded one is
  exempt from idle and never listed);
- T3 no premature loss: every session the model says is live is stored;
- T4 after collect() nothing with a deadline <= now is held, len == live count;
- T5 the subject index equals the stored sessions grouped by subject, with no
  empty entries;
- R1 a renewal yields a new id exactly once per old session;
- R2 the renewed session keeps subject and lifetime length; R3 the old one
  lives exactly renewal_grace more (or until its expires_at), untouched by
  idle, never renewed twice; R4 deleting a renewed session is safe;
- L1 no session is returned at or after its login's authenticated_at + absolute;
- L2 logout and revoke remove exactly the sessions of one login (the model's
  login is the id of its first session), nothing of another login.
Each removal emits exactly one delete event, with the reason the model expects.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from usersession import (
    DeleteReason,
    Device,
    InMemorySessionStorage,
    ManualClock,
    SessionContext,
    SessionDeviceMismatchError,
    SessionExpiredError,
    SessionMetadata,
    SessionNotFoundError,
    Timeouts,
    UserSessionManager,
)

from .conftest import START

SUBJECTS = st.sampled_from(["alice", "bob", "c:d:e", "ünï code"])
DEVICES = st.sampled_from([None, Device("Firefox", "desktop"), Device("Safari", "mobile")])


@dataclass
class Expected:
    """The model's record of one stored session."""

    subject: str
    device: Device | None
    created_at: int
    accessed_at: int
    expires_at: int
    idle: int | None
    login: str
    authenticated_at: int
    grace_ends_at: int | None = None

    def deadline(self) -> tuple[int, DeleteReason]:
        if self.grace_ends_at is not None:
            if self.grace_ends_at < self.expires_at:
                return self.grace_ends_at, DeleteReason.RENEWED
            return self.expires_at, DeleteReason.EXPIRED
        if self.idle is not None and self.accessed_at + self.idle < self.expires_at:
            return self.accessed_at + self.idle, DeleteReason.IDLE
        return self.expires_at, DeleteReason.EXPIRED

    def readable(self, now: int) -> bool:
        return now < self.deadline()[0]

    def gone(self, now: int) -> bool:
        """Past expires_at, or past the grace of a renewal."""
        if now >= self.expires_at:
            return True
        return self.grace_ends_at is not None and now >= self.grace_ends_at

    def idle_at(self, now: int) -> bool:
        """Idle at `now` (a superseded session never is)."""
        return (
            self.grace_ends_at is None
            and self.idle is not None
            and now - self.accessed_at >= self.idle
        )

    def active(self, now: int) -> bool:
        return self.grace_ends_at is None and self.readable(now)


class SessionLifecycle(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(START)
        self.storage = InMemorySessionStorage(clock=self.clock)
        self.events: list[tuple[str, str, DeleteReason]] = []
        self.storage.add_listener(self._record)
        self.model: dict[str, Expected] = {}
        self.expected_events: list[tuple[str, str, DeleteReason]] = []
        self.swept_at = -1
        self.renewed: set[str] = set()

    def _record(
        self, subject: str, session_id: str, _: SessionMetadata, reason: DeleteReason
    ) -> None:
        self.events.append((subject, session_id, reason))

    # Timeouts short against the clock steps, so that idle, renewal and
    # grace all come into play within a few dozen steps.
    @initialize(
        ttl=st.integers(5, 40),
        idle=st.one_of(st.none(), st.integers(1, 15)),
        renewal=st.one_of(st.none(), st.integers(1, 15)),
        grace=st.integers(1, 10),
        absolute=st.one_of(st.none(), st.integers(1, 60)),
    )
    def configure(
        self, ttl: int, idle: int | None, renewal: int | None, grace: int, absolute: int | None
    ) -> None:
        idle = idle if idle is None or idle < ttl else ttl - 1
        renewal = renewal if renewal is None or renewal < ttl else ttl - 1
        grace = min(grace, ttl - 1)
        self.ttl, self.idle, self.renewal, self.grace = ttl, idle, renewal, grace
        self.absolute = absolute
        self.manager = UserSessionManager(
            self.storage,
            session_ttl=ttl,
            timeouts=Timeouts(idle=idle, renewal=renewal, renewal_grace=grace, absolute=absolute),
        )

    # -- the model's own bookkeeping ---------------------------------------------------

    def _remove(self, session_id: str, reason: DeleteReason) -> None:
        record = self.model.pop(session_id)
        self.expected_events.append((record.subject, session_id, reason))

    def _sweep_if_new_second(self) -> None:
        now = self.clock()
        if now > self.swept_at:
            self._sweep(now)

    def _sweep(self, now: int) -> int:
        self.swept_at = now
        due = [(i, r.deadline()) for i, r in self.model.items() if r.deadline()[0] <= now]
        for session_id, (_, reason) in due:
            self._remove(session_id, reason)
        return len(due)

    # -- rules ---------------------------------------------------------------------------

    @rule(target=sessions, subject=SUBJECTS, device=DEVICES, ttl=st.none() | st.integers(1, 90))
    def create(self, subject: str, device: Device | None, ttl: int | None) -> str:
        now = self.clock()
        session_id = self.manager.create(subject, SessionContext("10.0.0.1", device), ttl)
        assert session_id not in self.model
        lifetime = ttl or self.ttl
        if self.absolute is not None:
            lifetime = min(lifetime, self.absolute)
        self.model[session_id] = Expected(
            subject, device, now, now, now + lifetime, self.idle, session_id, now
        )
        self._sweep_if_new_second()
        return session_id

    # Mostly reads by the session's own subject: a foreign subject is "not found".
    @rule(
        target=sessions,
        session_id=sessions,
        subject=SUBJECTS,
        device=DEVICES,
        own=st.sampled_from([True, True, True, False]),
    )
    def read(self, session_id: str, subject: str, device: Device | None, own: bool) -> object:
        return self._read(session_id, subject, device, own)

    # A session read a while after its last read is where idle, renewal and
    # the lazy re-filing of touched sessions meet: make that common.
    @rule(target=sessions, session_id=sessions, seconds=st.integers(1, 12))
    def wait_then_read(self, session_id: str, seconds: int) -> object:
        self.clock.advance(seconds)
        record = self.model.get(session_id)
        device = None if record is None else record.device
        return self._read(session_id, "alice", device, own=True)

    def _read(self, session_id: str, subject: str, device: Device | None, own: bool) -> object:
        now = self.clock()
        record = self.model.get(session_id)
        if own and record is not None:
            subject = record.subject
        context = SessionContext("10.0.0.2", device)
        # The read order: gone, then the device (bound at login, fails
        # closed), then idle.
        expected: type[Exception] | None
        if record is None or record.subject != subject or record.gone(now):
            expected = SessionNotFoundError
        elif record.device is not None and device != record.device:
            expected = SessionDeviceMismatchError
        elif record.idle_at(now):
            expected = SessionExpiredError
        else:
            expected = None
        try:
            metadata, renewed = self.manager.read(subject, session_id, context)
        except (SessionNotFoundError, SessionExpiredError, SessionDeviceMismatchError) as error:
            assert type(error) is expected, f"got {error!r}, model expected {expected}"
            if expected is SessionExpiredError:
                assert record is not None
                self._remove(session_id, DeleteReason.IDLE)
            self._sweep_if_new_second()
            return multiple()
        assert expected is None, f"read succeeded, model expected {expected}"
        assert record is not None
        # T1, T2: what a read returns is within its lifetime and not idle.
        assert now < metadata.expires_at
        # L1: nor past its login's absolute timeout.
        assert metadata.authenticated_at == record.authenticated_at
        assert self.absolute is None or now < record.authenticated_at + self.absolute
        assert (
            record.grace_ends_at is not None
            or record.idle is None
            or (now - record.accessed_at < record.idle)
        )
        new_sessions = []
        if record.grace_ends_at is not None:
            # R3: inside its grace a superseded session is returned as it is.
            assert renewed is None
            assert metadata.accessed_at == record.accessed_at
        elif self.renewal is not None and now - record.created_at >= self.renewal:
            # R1: the first read past the renewal age renews, once.
            assert renewed is not None and session_id not in self.renewed
            self.renewed.add(session_id)
            record.grace_ends_at = now + self.grace
            expires_at = now + record.expires_at - record.created_at
            if self.absolute is not None:
                expires_at = min(expires_at, record.authenticated_at + self.absolute)
            self.model[renewed] = Expected(
                subject,
                record.device,
                now,
                now,
                expires_at,
                record.idle,
                record.login,
                record.authenticated_at,
            )
            new_sessions.append(renewed)
        else:
            assert renewed is None
            record.accessed_at = now
            assert metadata.accessed_at == now
        self._sweep_if_new_second()
        return multiple(*new_sessions)

    @rule(subject=SUBJECTS)
    def read_all(self, subject: str) -> None:
        now = self.clock()
        listed = self.manager.read_all(subject)
        expected = {
            UserSessionManager.hash(i)
            for i, r in self.model.items()
            if r.subject == subject and r.active(now)
        }
        assert set(listed) == expected
        for metadata in listed.values():
            assert now < metadata.expires_at and not metadata.renewed
        self._sweep_if_new_second()

    @rule(session_id=sessions, subject=SUBJECTS, own=st.sampled_from([True, True, True, False]))
    def delete(self, session_id: str, subject: str, own: bool) -> None:
        record = self.model.get(session_id)
        if own and record is not None:
            subject = record.subject
        self.manager.delete(subject, session_id)
        if record is not None and record.subject == subject:
            self._remove(session_id, DeleteReason.DELETED)

    def _login_of(self, session_id: str) -> list[str]:
        record = self.model[session_id]
        return [
            i
            for i, r in self.model.items()
            if r.subject == record.subject and r.login == record.login
        ]

    @rule(session_id=sessions, subject=SUBJECTS, own=st.sampled_from([True, True, True, False]))
    def logout(self, session_id: str, subject: str, own: bool) -> None:
        record = self.model.get(session_id)
        if own and record is not None:
            subject = record.subject
        mine = [] if record is None or record.subject != subject else self._login_of(session_id)
        # L2: exactly the sessions of that login, and nothing else.
        assert self.manager.logout(subject, session_id) == len(mine)
        for removed in mine:
            self._remove(removed, DeleteReason.DELETED)

    @rule(session_id=sessions, subject=SUBJECTS)
    def revoke(self, session_id: str, subject: str) -> None:
        record = self.model.get(session_id)
        if record is not None:
            subject = record.subject
        mine = [] if record is None else self._login_of(session_id)
        removed = self.manager.revoke(subject, UserSessionManager.hash(session_id))
        assert removed == bool(mine)
        for session in mine:
            self._remove(session, DeleteReason.DELETED)

    @rule(subject=SUBJECTS)
    def delete_all(self, subject: str) -> None:
        mine = [i for i, r in self.model.items() if r.subject == subject]
        assert self.manager.delete_all(subject) == len(mine)
        for session_id in mine:
            self._remove(session_id, DeleteReason.DELETED)

    @rule(keep=sessions)
    def delete_all_but_one_login(self, keep: str) -> None:
        now = self.clock()
        record = self.model.get(keep)
        subject = "alice" if record is None else record.subject
        if record is None or not record.readable(now):
            try:
                self.manager.delete_all(subject, keep=keep)
            except SessionNotFoundError:
                return
            raise AssertionError("delete_all(keep=) of a dead session removed something")
        kept = set(self._login_of(keep))
        others = [i for i, r in self.model.items() if r.subject == subject and i not in kept]
        assert self.manager.delete_all(subject, keep=keep) == len(others)
        for session_id in others:
            self._remove(session_id, DeleteReason.DELETED)

    @rule(seconds=st.sampled_from([0, 1, 1, 2, 3, 5, 8, 13]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def collect(self) -> None:
        now = self.clock()
        assert self.storage.collect() == self._sweep(now)
        # T4: nothing due is held after a collect.
        assert len(self.storage) == len(self.model)
        assert all(r.deadline()[0] > now for r in self.model.values())

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def stored_sessions_are_exactly_the_models(self) -> None:
        # T3 (no premature loss) and no leftovers: the storage holds what the model holds.
        if not hasattr(self, "manager"):
            return
        assert set(self.storage._sessions) == set(self.model)

    @invariant()
    def subject_index_groups_the_stored_sessions(self) -> None:
        # T5
        grouped: dict[str, dict[str, SessionMetadata]] = {}
        for session_id, metadata in self.storage._sessions.items():
            grouped.setdefault(metadata.subject, {})[session_id] = metadata
        assert self.storage._subjects == grouped
        assert all(self.storage._subjects.values())

    @invariant()
    def each_removal_emitted_one_event_with_its_reason(self) -> None:
        assert Counter(self.events) == Counter(self.expected_events)


# Example counts come from the profile loaded in conftest.py ("ci" under CI).
TestSessionLifecycle = SessionLifecycle.TestCase
