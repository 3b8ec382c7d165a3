"""Snapshots of the in-memory storage: what comes back, what is refused, and
that a crash while saving never costs the previous snapshot."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from tests.builds import is_mypyc_type_error
from usersession import (
    DeleteReason,
    Device,
    ErrorCode,
    InMemorySessionStorage,
    LimitPolicy,
    ManualClock,
    RenewHooks,
    SessionContext,
    SessionLimitError,
    SessionMetadata,
    SessionNotFoundError,
    SessionStorageError,
    SnapshotError,
    Timeouts,
    UserSessionManager,
)
from usersession.policy import deadline
from usersession.storage.snapshot import VERSION

from .conftest import START

LAPTOP = SessionContext(
    ip="10.0.0.1", device=Device("Firefox", "desktop"), location={"city": "Lyon"}
)
PHONE = SessionContext(
    ip="10.0.0.2", device=Device("Safari", "mobile"), location=["x", 1, 2.5, None]
)
TIMEOUTS = Timeouts(idle=1300, renewal=1200, renewal_grace=60)


def _write_own(path: Path, data: bytes) -> None:
    """Write a snapshot file by hand as `save` would leave it: the process's
    own, readable and writable by it alone (whatever the umask)."""
    path.write_bytes(data)
    path.chmod(0o600)


def _state(storage: InMemorySessionStorage) -> dict[str, tuple[object, ...]]:
    """Everything a stored session is made of, by id (not the filing second)."""
    return {
        session_id: (
            metadata._subject,
            metadata._ip,
            metadata._device,
            metadata._location,
            metadata._created_at,
            metadata._accessed_at,
            metadata._expires_at,
            metadata._idle,
            metadata._grace_ends_at,
            metadata._renewed_by,
            metadata._authenticated_at,
            metadata._login,
        )
        for session_id, metadata in storage._sessions.items()
    }


def _grouped(storage: InMemorySessionStorage) -> dict[str, dict[str, SessionMetadata]]:
    grouped: dict[str, dict[str, SessionMetadata]] = {}
    for session_id, metadata in storage._sessions.items():
        grouped.setdefault(metadata._subject, {})[session_id] = metadata
    return grouped


def _populated(clock: ManualClock) -> tuple[InMemorySessionStorage, UserSessionManager, list[str]]:
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(storage, session_ttl=3600, timeouts=TIMEOUTS)
    ids = [manager.create("alice", LAPTOP), manager.create("alice", PHONE)]
    ids.append(manager.create("bob", SessionContext(ip="::1"), ttl=7200))
    ids.append(manager.create("ünïcødé 🙂 \u200b", PHONE))
    clock.advance(500)
    manager.read("alice", ids[1], PHONE)  # touched
    clock.advance(700)
    _, renewed = manager.read("alice", ids[0], LAPTOP)  # renewed: ids[0] in its grace
    assert renewed is not None
    ids.append(renewed)
    return storage, manager, ids


def test_a_snapshot_brings_back_every_session_exactly(clock: ManualClock, tmp_path: Path) -> None:
    storage, _, _ = _populated(clock)
    path = tmp_path / "sessions.snapshot"
    assert storage.save(path) == len(storage)
    restored = InMemorySessionStorage(clock=clock)
    assert restored.load(path) == len(storage)
    assert _state(restored) == _state(storage)
    assert restored._subjects == storage._subjects == _grouped(restored)
    assert all(m._due == deadline(m)[0] for m in restored._sessions.values())


def test_the_renewal_grace_survives_a_restart(clock: ManualClock, tmp_path: Path) -> None:
    storage, _, ids = _populated(clock)
    old, renewed = ids[0], ids[-1]
    storage.save(tmp_path / "s")
    restored = InMemorySessionStorage(clock=clock)
    restored.load(tmp_path / "s")
    elsewhere: list[str] = []
    after = UserSessionManager(
        restored,
        session_ttl=3600,
        timeouts=TIMEOUTS,
        renew_hooks=RenewHooks(on_already_renewed_elsewhere=elsewhere.append),
    )
    metadata, again = after.read("alice", old, LAPTOP)
    assert again is None  # never renewed twice
    assert metadata.renewed
    assert elsewhere == [old]  # the renewal was made by the manager before the restart
    assert renewed not in after.read_all("alice")  # listed by handle, not by id
    assert after.hash(renewed) in after.read_all("alice")
    clock.advance(TIMEOUTS.renewal_grace or 0)
    with pytest.raises(SessionNotFoundError):
        after.read("alice", old, LAPTOP)
    after.read("alice", renewed, LAPTOP)


def test_a_renewed_login_is_still_one_login_after_a_restart(
    clock: ManualClock, tmp_path: Path
) -> None:
    storage, _, ids = _populated(clock)
    old, renewed = ids[0], ids[-1]
    storage.save(tmp_path / "s")
    restored = InMemorySessionStorage(clock=clock)
    restored.load(tmp_path / "s")
    after = UserSessionManager(restored, session_ttl=3600, timeouts=TIMEOUTS)
    assert after.read("alice", renewed, LAPTOP)[0].authenticated_at == clock() - 1200
    assert after.logout("alice", renewed) == 2
    with pytest.raises(SessionNotFoundError):
        after.read("alice", old, LAPTOP)


def test_a_snapshot_of_the_release_before_logins_still_loads(
    clock: ManualClock, tmp_path: Path
) -> None:
    now = clock()
    device = ["Firefox", "desktop"]
    # Version 1 rows: id, subject, ip, device, location, created_at,
    # accessed_at, expires_at, idle, grace_ends_at, renewed_by.
    first = ["first", "alice", "10.0.0.1", device, None, now - 700, now - 10, now + 2900]
    second = ["second", "alice", "10.0.0.1", device, None, now - 10, now - 10, now + 3590]
    rows = [[*first, None, now + 5, "elsewhere:1"], [*second, None, None, None]]
    body = json.dumps({"saved_at": now, "sessions": rows}).encode()
    header = {
        "format": "usersession-snapshot",
        "version": 1,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    _write_own(tmp_path / "s", json.dumps(header).encode() + b"\n" + body)
    storage = InMemorySessionStorage(clock=clock)
    assert storage.load(tmp_path / "s") == 2
    manager = UserSessionManager(storage, session_ttl=3600, timeouts=TIMEOUTS)
    context = SessionContext("10.0.0.1", Device("Firefox", "desktop"))
    assert manager.read("alice", "second", context)[0].authenticated_at == now - 10
    assert manager.read("alice", "first", context)[0].authenticated_at == now - 700
    # No links: each session is a login of its own.
    assert manager.logout("alice", "first") == 1
    manager.read("alice", "second", context)


def test_sessions_that_ended_while_down_are_dropped_on_load(
    clock: ManualClock, tmp_path: Path
) -> None:
    storage, _, ids = _populated(clock)
    storage.save(tmp_path / "s")
    # Saved at start+1200. At start+1799: ids[0] is past its grace
    # (+1260), ids[2] and ids[3] past their idle deadline (+1300); ids[1]
    # (read at +500, idle until +1800) and the renewed one live on.
    clock.advance(599)
    restored = InMemorySessionStorage(clock=clock)
    assert restored.load(tmp_path / "s") == 2
    assert set(restored._sessions) == {ids[1], ids[-1]}
    assert restored._subjects == _grouped(restored)
    clock.advance(10_000)
    empty = InMemorySessionStorage(clock=clock)
    assert empty.load(tmp_path / "s") == 0
    assert empty._subjects == {}


def test_a_snapshot_is_written_for_its_owner_only(clock: ManualClock, tmp_path: Path) -> None:
    storage, _, _ = _populated(clock)
    storage.save(tmp_path / "s")
    assert stat.S_IMODE(os.stat(tmp_path / "s").st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["s"]  # no temporary left


def test_a_snapshot_is_plain_versioned_json(clock: ManualClock, tmp_path: Path) -> None:
    storage, _, _ = _populated(clock)
    storage.save(tmp_path / "s")
    header, body = (tmp_path / "s").read_bytes().split(b"\n", 1)
    assert json.loads(header)["version"] == VERSION
    assert json.loads(header)["format"] == "usersession-snapshot"
    assert len(json.loads(body)["sessions"]) == len(storage)


def _assert_refused(path: Path, clock: ManualClock) -> None:
    storage = InMemorySessionStorage(clock=clock)
    before = UserSessionManager(storage, session_ttl=60).create("carol", LAPTOP)
    with pytest.raises(SnapshotError) as raised:
        storage.load(path)
    assert raised.value.code is ErrorCode.SNAPSHOT_INVALID
    assert set(storage._sessions) == {before}
    assert storage._subjects == {"carol": {before: storage._sessions[before]}}


def test_every_truncation_of_a_snapshot_is_refused(clock: ManualClock, tmp_path: Path) -> None:
    storage, _, _ = _populated(clock)
    storage.save(tmp_path / "s")
    data = (tmp_path / "s").read_bytes()
    for length in range(0, len(data), max(1, len(data) // 150)):
        _write_own(tmp_path / "cut", data[:length])
        _assert_refused(tmp_path / "cut", clock)


def test_a_corrupted_snapshot_is_refused(clock: ManualClock, tmp_path: Path) -> None:
    storage, _, _ = _populated(clock)
    storage.save(tmp_path / "s")
    data = (tmp_path / "s").read_bytes()
    rng = random.Random(4)
    for _ in range(150):
        corrupted = bytearray(data)
        corrupted[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        _write_own(tmp_path / "bad", bytes(corrupted))
        _assert_refused(tmp_path / "bad", clock)


def test_a_snapshot_of_another_version_is_refused(clock: ManualClock, tmp_path: Path) -> None:
    storage, _, _ = _populated(clock)
    storage.save(tmp_path / "s")
    header, body = (tmp_path / "s").read_bytes().split(b"\n", 1)
    for version in (VERSION + 1, 0, "1", None):
        changed = json.loads(header)
        changed["version"] = version
        _write_own(tmp_path / "v", json.dumps(changed).encode() + b"\n" + body)
        _assert_refused(tmp_path / "v", clock)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n",
        b"{}\n{}",
        b"null\nnull",
        b"\x80\x81\x82\n\xff",
        pickle.dumps({"sessions": []}),
        b'{"format":"usersession-snapshot","version":1,"length":2,"sha256":"x"}\n[]',
    ],
)
def test_a_file_that_is_not_a_snapshot_is_refused(
    content: bytes, clock: ManualClock, tmp_path: Path
) -> None:
    _write_own(tmp_path / "s", content)
    _assert_refused(tmp_path / "s", clock)


def test_a_well_checksummed_but_malformed_body_is_refused(
    clock: ManualClock, tmp_path: Path
) -> None:
    now = clock()
    good = ["id", "subj", "ip", None, None, now, now, now + 10, None, None, None, now, None]
    bodies = [
        {"sessions": [good, good]},  # an id twice
        {"sessions": [good[:-1]]},
        {"sessions": [good[:-2]]},  # a version 1 row in a version 2 file
        {"sessions": [[*good[:5], True, *good[6:]]]},  # bool time
        {"sessions": [[*good[:3], ["a"], *good[4:]]]},  # bad device
        {"sessions": [[*good[:8], -1, *good[9:]]]},  # bad idle
        {"sessions": [[*good[:9], now + 5, *good[10:]]]},  # grace without renewer
        {"sessions": [[good[0], "", *good[2:]]]},  # empty subject
        {"sessions": [[*good[:11], "yesterday", None]]},  # bad authenticated_at
        {"sessions": [[*good[:11], now, 42]]},  # bad login
        {"sessions": [[good[0], "\ud800", *good[2:]]]},  # a subject JSON escaped as a surrogate
        {"sessions": [[*good[:2], "\udfff", *good[3:]]]},  # such an ip
        {"sessions": [[*good[:3], ["\ud800", "x"], *good[4:]]]},  # such a device
        {"sessions": [[*good[:4], {"\ud800": 1}, *good[5:]]]},  # such a location
        {"sessions": [["\ud800", *good[1:]]]},  # such an id
        {"sessions": "all of them"},
        [],
    ]
    for body in bodies:
        encoded = json.dumps(body).encode()
        header = {
            "format": "usersession-snapshot",
            "version": VERSION,
            "length": len(encoded),
            "sha256": hashlib.sha256(encoded).hexdigest(),
        }
        _write_own(tmp_path / "s", json.dumps(header).encode() + b"\n" + encoded)
        _assert_refused(tmp_path / "s", clock)


@pytest.mark.parametrize(
    "location",
    [
        (1, 2),
        {1: "a"},
        {"a": {"b": (1,)}},
        object(),
        {1, 2},
        float("nan"),
        b"raw",
        Path("/"),
        "\ud83d\ude00",
        {"\ud800": 1},
        ["ok", "a\udfff"],
        pytest.param(10**5000, id="int-of-5001-digits"),
        pytest.param({"n": -(10**4400)}, id="nested-int-of-4401-digits"),
    ],
)
def test_a_location_json_cannot_represent_exactly_is_refused_at_save(
    location: object, clock: ManualClock, tmp_path: Path
) -> None:
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(storage, session_ttl=60)
    manager.create("alice", LAPTOP)
    storage.save(tmp_path / "s")
    previous = (tmp_path / "s").read_bytes()
    session_id = manager.create("alice", SessionContext(ip="1.2.3.4", location=location))
    with pytest.raises(SnapshotError) as raised:
        storage.save(tmp_path / "s")
    assert raised.value.code is ErrorCode.SNAPSHOT_UNSERIALIZABLE
    assert manager.hash(session_id) in str(raised.value)
    assert session_id not in str(raised.value)
    assert (tmp_path / "s").read_bytes() == previous


class _TurnsToFloats:
    """A clock that answers whole seconds once (when it is checked), then floats."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return START if self.calls == 1 else START + 0.5


def test_a_clock_gone_to_floats_makes_save_refuse_instead_of_writing_an_unloadable_file(
    clock: ManualClock, tmp_path: Path
) -> None:
    storage = InMemorySessionStorage(clock=clock)
    UserSessionManager(storage, session_ttl=60).create("alice", LAPTOP)
    storage.save(tmp_path / "s")
    previous = (tmp_path / "s").read_bytes()
    drifting = UserSessionManager(storage, session_ttl=60, clock=_TurnsToFloats())  # type: ignore[arg-type]
    try:
        drifting.create("bob", LAPTOP)
    except TypeError as error:
        # The compiled build checks the clock's int at the call: nothing is stored.
        assert is_mypyc_type_error(error)
        storage.save(tmp_path / "s")
        assert InMemorySessionStorage(clock=clock).load(tmp_path / "s") == 1
        return
    with pytest.raises(SnapshotError) as raised:
        storage.save(tmp_path / "s")
    assert raised.value.code is ErrorCode.SNAPSHOT_UNSERIALIZABLE
    assert (tmp_path / "s").read_bytes() == previous


def _metadata(now: int, **fields: object) -> SessionMetadata:
    metadata = SessionMetadata("10.0.0.1", None, None, now, now, now + 60)
    lineage: list[object] = [None, now, None, None]
    for name, value in fields.items():
        if name in _LINEAGE_FIELDS:
            lineage[_LINEAGE_FIELDS.index(name)] = value
            metadata._lineage = tuple(lineage)  # type: ignore[assignment]
        else:
            setattr(metadata, f"_{name}", value)
    return metadata


_LINEAGE_FIELDS = ("login", "authenticated_at", "grace_ends_at", "renewed_by")


@pytest.mark.parametrize(
    ("subject", "fields"),
    [
        ("", {}),
        ("\ud83d\ude00", {}),
        ("alice", {"ip": 5}),
        ("alice", {"ip": "\ud800"}),
        ("alice", {"expires_at": START + 60.5}),
        ("alice", {"expires_at": 10**5000}),
        ("alice", {"authenticated_at": None}),
        ("alice", {"renewed_by": "a claim without a grace"}),
        ("alice", {"login": 7}),
    ],
    ids=[
        "empty-subject",
        "surrogate-subject",
        "ip-not-str",
        "surrogate-ip",
        "float-time",
        "unprintable-time",
        "no-authenticated-at",
        "renewer-without-grace",
        "login-not-str",
    ],
)
def test_save_refuses_any_session_load_would_refuse_and_writes_nothing(
    subject: str, fields: dict[str, object], clock: ManualClock, tmp_path: Path
) -> None:
    # Stored directly, past the manager's checks: save applies load's rules.
    storage = InMemorySessionStorage(clock=clock)
    try:
        metadata = _metadata(clock(), **fields)
    except TypeError as error:
        assert is_mypyc_type_error(error)
        pytest.skip("compiled build: the attribute's type is enforced, no such session exists")
    storage.insert(subject, "the-id", metadata)
    with pytest.raises(SnapshotError) as raised:
        storage.save(tmp_path / "s")
    assert raised.value.code is ErrorCode.SNAPSHOT_UNSERIALIZABLE
    assert UserSessionManager.hash("the-id") in str(raised.value)
    assert "the-id" not in str(raised.value)
    assert not (tmp_path / "s").exists()


posix_only = pytest.mark.skipif(os.name != "posix", reason="file owners and modes are POSIX's")


def _saved(clock: ManualClock, path: Path) -> None:
    storage = InMemorySessionStorage(clock=clock)
    UserSessionManager(storage, session_ttl=600).create("alice", LAPTOP)
    storage.save(path)


def _assert_untrusted(path: Path, clock: ManualClock, why: str) -> None:
    storage = InMemorySessionStorage(clock=clock)
    with pytest.raises(SnapshotError) as raised:
        storage.load(path)
    assert raised.value.code is ErrorCode.SNAPSHOT_UNTRUSTED
    assert why in str(raised.value)
    assert len(storage) == 0


@posix_only
@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666], ids=["group", "others", "everyone"])
def test_a_snapshot_others_may_write_is_refused(
    mode: int, clock: ManualClock, tmp_path: Path
) -> None:
    _saved(clock, tmp_path / "s")
    (tmp_path / "s").chmod(mode)
    _assert_untrusted(tmp_path / "s", clock, "writable by others")


@posix_only
def test_a_snapshot_owned_by_another_user_is_refused(
    clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _saved(clock, tmp_path / "s")
    owner = os.stat(tmp_path / "s").st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # as if another user saved it
    _assert_untrusted(tmp_path / "s", clock, "owned by another user")


@posix_only
def test_a_snapshot_in_a_directory_others_may_write_is_refused(
    clock: ManualClock, tmp_path: Path
) -> None:
    # Whoever may write the directory may replace the file with their own.
    _saved(clock, tmp_path / "s")
    tmp_path.chmod(0o770)
    _assert_untrusted(tmp_path / "s", clock, "directory")


@posix_only
def test_a_snapshot_in_a_sticky_directory_like_tmp_loads(
    clock: ManualClock, tmp_path: Path
) -> None:
    # In a sticky directory nobody but its owner may replace the file.
    _saved(clock, tmp_path / "s")
    tmp_path.chmod(0o1777)
    assert InMemorySessionStorage(clock=clock).load(tmp_path / "s") == 1


@posix_only
def test_a_symbolic_link_at_the_snapshot_path_is_refused(
    clock: ManualClock, tmp_path: Path
) -> None:
    # save() replaces the path with a file of its own: a link is never its doing.
    _saved(clock, tmp_path / "real")
    (tmp_path / "s").symlink_to(tmp_path / "real")
    _assert_untrusted(tmp_path / "s", clock, "symbolic link")


@posix_only
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_something_other_than_a_regular_file_at_the_path_is_refused_without_blocking(
    kind: str, clock: ManualClock, tmp_path: Path
) -> None:
    path = tmp_path / "s"
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    else:
        path.mkdir(mode=0o700)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            InMemorySessionStorage(clock=clock).load(path)
        except BaseException as error:  # the outcome is what the test asserts
            outcome.append(error)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    loader.join(5)
    if loader.is_alive() and kind == "fifo":  # unblock it before failing
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert not loader.is_alive(), "load blocked on what is at the path"
    assert isinstance(outcome[0], SnapshotError)
    assert outcome[0].code is ErrorCode.SNAPSHOT_UNTRUSTED
    assert "not a regular file" in str(outcome[0])


@posix_only
def test_save_refuses_a_directory_others_may_write_and_writes_nothing(
    clock: ManualClock, tmp_path: Path
) -> None:
    # load() would refuse the file: save() says so before writing it.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o775)
    storage = InMemorySessionStorage(clock=clock)
    UserSessionManager(storage, session_ttl=600).create("alice", LAPTOP)
    with pytest.raises(SnapshotError) as raised:
        storage.save(shared / "s")
    assert raised.value.code is ErrorCode.SNAPSHOT_UNTRUSTED
    assert list(shared.iterdir()) == []


def test_loading_an_id_already_stored_changes_nothing(clock: ManualClock, tmp_path: Path) -> None:
    storage, _, _ = _populated(clock)
    storage.save(tmp_path / "s")
    before = _state(storage)
    with pytest.raises(SessionStorageError):
        storage.load(tmp_path / "s")
    assert _state(storage) == before


def test_a_missing_file_is_a_storage_error(clock: ManualClock, tmp_path: Path) -> None:
    with pytest.raises(SessionStorageError):
        InMemorySessionStorage(clock=clock).load(tmp_path / "absent")


def test_limits_apply_to_a_load(clock: ManualClock, tmp_path: Path) -> None:
    storage, _, _ = _populated(clock)  # 5 stored, alice has 2 in use + 1 superseded
    storage.save(tmp_path / "s")
    refusing = InMemorySessionStorage(clock=clock, max_sessions=4)
    with pytest.raises(SessionLimitError):
        refusing.load(tmp_path / "s")
    assert len(refusing) == 0
    per_subject = InMemorySessionStorage(clock=clock, max_sessions_per_subject=1)
    with pytest.raises(SessionLimitError):
        per_subject.load(tmp_path / "s")
    assert len(per_subject) == 0
    evicting = InMemorySessionStorage(
        clock=clock,
        max_sessions=4,
        max_sessions_policy=LimitPolicy.EVICT,
        max_sessions_per_subject=1,
        max_sessions_per_subject_policy=LimitPolicy.EVICT,
    )
    reasons: list[DeleteReason] = []
    evicting.add_listener(lambda subject, session_id, metadata, reason: reasons.append(reason))
    evicting.load(tmp_path / "s")
    assert len(evicting) <= 4
    for session_ids in evicting._subjects.values():
        assert sum(1 for sid in session_ids if not evicting._sessions[sid].renewed) <= 1
    assert reasons and set(reasons) == {DeleteReason.EVICTED}
    assert evicting._subjects == _grouped(evicting)


# -- crash during save ---------------------------------------------------------

BASE_SESSIONS = 1000
MAX_KILLS = 150
TIME_BUDGET = 10.0
"""Seconds the crash test may run; it stops early rather than run longer."""


def _generations(storage: InMemorySessionStorage) -> int:
    """How many generation sessions a snapshot holds; they must form a prefix."""
    numbers = sorted(
        int(session_id.split("-")[1])
        for session_id in storage._sessions
        if session_id.startswith("generation-")
    )
    assert numbers == list(range(len(numbers))), "a snapshot holds a torn set of sessions"
    assert len(storage) == BASE_SESSIONS + len(numbers)
    return len(numbers)


def _insert(storage: InMemorySessionStorage, session_id: str, now: int, index: int) -> None:
    storage.insert(
        f"user{index % 97}",
        session_id,
        SessionMetadata(
            "10.0.0.1", Device("Firefox", "desktop"), {"n": index}, now, now, now + 86_400
        ),
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_save_killed_at_any_point_leaves_the_previous_snapshot_whole(
    clock: ManualClock, tmp_path: Path
) -> None:
    """A child saves in a loop (each save one generation more) and is killed
    with SIGKILL at a random moment, again and again. After every kill the
    file must load, hold a whole generation (never a torn mix), and never go
    back to an older generation than the last one seen."""
    path = tmp_path / "sessions.snapshot"
    storage = InMemorySessionStorage(clock=clock)
    for index in range(BASE_SESSIONS):
        _insert(storage, f"base-{index}", clock(), index)
    storage.save(path)
    started = time.monotonic()
    storage.save(path)
    save_seconds = time.monotonic() - started
    rng = random.Random(20240601)
    seen = 0
    kills = 0
    changed = 0
    while kills < MAX_KILLS and time.monotonic() - started < TIME_BUDGET:
        ready_read, ready_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child until killed
            try:
                os.close(ready_read)
                os.write(ready_write, b"!")
                generation = seen
                while True:
                    _insert(storage, f"generation-{generation}", clock(), generation)
                    storage.save(path)
                    generation += 1
            finally:
                os._exit(0)
        # Time the kill from the child's start, not from the fork: on a busy
        # machine a child can take longer to get going than a save takes.
        os.close(ready_write)
        os.read(ready_read, 1)
        os.close(ready_read)
        time.sleep(rng.uniform(0, 3 * save_seconds))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        kills += 1
        storage = InMemorySessionStorage(clock=clock)
        storage.load(path)  # raises if the file is not whole
        generations = _generations(storage)
        assert generations >= seen, "a kill took the file back to an older snapshot"
        changed += generations > seen
        seen = generations
    strays = len(list(tmp_path.glob(".sessions.snapshot.*.tmp")))
    print(
        f"\ncrash test: {kills} kills, {kills} snapshots loaded intact, "
        f"{changed} kills after a completed save, {strays} interrupted writes left a "
        f"temporary file, {seen} generations, one save {save_seconds * 1000:.1f} ms"
    )
    assert kills >= 30
    assert strays > 0, "no kill landed inside a write: the test did not test anything"
