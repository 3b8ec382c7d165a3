"""The Redis storage on a real server: key layout, hashed ids, serialisation,
TTLs (checked with PTTL), index trimming, listeners and typed errors.

The behaviour shared with the in-memory storage is pinned down by the
`make_manager` tests (tests/test_manager.py), which run against "redis" and
"redis-async" too; this file covers what only the Redis storage has.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from tests.conftest import START
from tests.redis_server import RedisServer, unique_prefix
from usersession import (
    DeleteReason,
    Device,
    ErrorCode,
    InvalidOptionsError,
    InvalidTypeError,
    ManualClock,
    SessionContext,
    SessionDeviceMismatchError,
    SessionExpiredError,
    SessionMetadata,
    SessionNotFoundError,
    SessionStorageError,
    Timeouts,
    UserSessionManager,
    check_same_device_if_known,
)
from usersession.storage._redis_scripts import SOURCES
from usersession.storage.redis import JsonSerializer, RedisSessionStorage

LAPTOP = SessionContext("10.0.0.1", Device("Firefox", "desktop"), {"city": "Oslo", "lat": 59.9})
PHONE = SessionContext("10.0.0.2", Device("Safari", "mobile"))
RENEWING = Timeouts(renewal=600, renewal_grace=30)
TOLERANCE_MS = 500
"""How much real time a PTTL check may see pass since the script ran."""


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def storage(client: redis.Redis, clock: ManualClock) -> RedisSessionStorage:
    return RedisSessionStorage(client, key_prefix=unique_prefix(), clock=clock)


def manager_on(storage: RedisSessionStorage, **options: object) -> UserSessionManager:
    options.setdefault("session_ttl", 3600)
    return UserSessionManager(storage, **options)  # type: ignore[arg-type]


def stored_keys(client: redis.Redis, storage: RedisSessionStorage) -> list[bytes]:
    """The session and index keys (not the short-lived call markers)."""
    keys = client.scan_iter(match=f"{storage.key_prefix}:*", count=1000)
    return sorted(key for key in keys if b":call:" not in key)


def call_markers(client: redis.Redis, storage: RedisSessionStorage) -> list[bytes]:
    return sorted(client.scan_iter(match=f"{storage.key_prefix}:*:call:*", count=1000))


def dump(client: redis.Redis, storage: RedisSessionStorage) -> bytes:
    """Every key and value the storage wrote, as one byte string."""
    parts = []
    for key in stored_keys(client, storage):
        parts.append(key)
        if client.type(key) == b"hash":
            for field, value in client.hgetall(key).items():
                parts += [field, value]
        else:
            for member, score in client.zrange(key, 0, -1, withscores=True):
                parts += [member, str(score).encode()]
    return b"\n".join(parts)


def assert_pttl(client: redis.Redis, key: str, seconds: int) -> None:
    pttl = client.pttl(key)
    assert seconds * 1000 - TOLERANCE_MS < pttl <= seconds * 1000, (key, pttl, seconds)


# -- layout and hashed ids --------------------------------------------------------


def test_sessions_are_keyed_by_handle_under_the_subjects_hash_tag(
    client: redis.Redis, storage: RedisSessionStorage
) -> None:
    manager = manager_on(storage)
    session_id = manager.create("uid1", LAPTOP)
    prefix = storage.key_prefix
    handle = manager.hash(session_id)
    assert stored_keys(client, storage) == sorted(
        [f"{prefix}:{{uid1}}:index".encode(), f"{prefix}:{{uid1}}:session:{handle}".encode()]
    )
    fields = client.hgetall(f"{prefix}:{{uid1}}:session:{handle}")
    assert set(fields) == {b"metadata", b"accessed_at", b"static", b"call"}
    assert fields[b"static"] == f"{START} {START + 3600} {START} - 7:Firefoxdesktop".encode()
    assert client.zrange(f"{prefix}:{{uid1}}:index", 0, -1) == [handle.encode()]


def test_no_raw_session_id_is_stored_in_any_key_or_value(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage, timeouts=RENEWING)
    session_ids = [manager.create("uid1", LAPTOP) for _ in range(3)]
    clock.advance(600)
    renewed = manager.read("uid1", session_ids[0], LAPTOP)[1]
    assert renewed is not None
    everything = dump(client, storage)
    assert everything  # the sessions are there...
    for session_id in [*session_ids, renewed]:
        assert session_id.encode() not in everything  # ...but no id is


@pytest.mark.parametrize(
    "subject",
    ["uid1", "a:b", "{uid}", "}{", "a}b{c", "user:{42}:index", "üñí日本", "tab\there", "%7B"],
)
def test_all_keys_of_a_subject_share_one_cluster_slot(
    client: redis.Redis, storage: RedisSessionStorage, subject: str
) -> None:
    manager = manager_on(storage)
    for _ in range(3):
        manager.create(subject, LAPTOP)
    keys = stored_keys(client, storage)
    assert len(keys) == 4
    assert len({key_slot(key) for key in keys}) == 1
    assert all(key.count(b"{") == 1 and key.count(b"}") == 1 for key in keys)


def test_subjects_that_look_alike_never_share_keys(storage: RedisSessionStorage) -> None:
    manager = manager_on(storage)
    subjects = ["a", "a:b", "a:b:index", "{a}", "a}", "%61", "a ", "A"]
    created = {subject: manager.create(subject, LAPTOP) for subject in subjects}
    for subject, session_id in created.items():
        assert list(manager.read_all(subject)) == [manager.hash(session_id)]
        for other in subjects:
            if other != subject:
                with pytest.raises(SessionNotFoundError):
                    manager.read(other, session_id, LAPTOP)


def test_a_long_subject_costs_the_server_time_in_proportion_to_its_length(
    storage: RedisSessionStorage,
) -> None:
    # Keys hold the percent-encoded subject: 12,000 bytes here. Scripts that
    # scanned their keys in quadratic time spent about 0.9 s of the server's
    # single thread on each of these calls; now it is well under 1 ms.
    manager = manager_on(storage)
    subject = "é" * 2000
    started = time.perf_counter()
    session_id = manager.create(subject, LAPTOP)
    assert manager.read(subject, session_id, LAPTOP)[0].subject == subject
    assert list(manager.read_all(subject)) == [manager.hash(session_id)]
    assert manager.logout(subject, session_id) == 1
    assert time.perf_counter() - started < 1.0


def test_the_key_prefix_separates_two_apps_on_one_server(
    client: redis.Redis, clock: ManualClock
) -> None:
    first = manager_on(RedisSessionStorage(client, key_prefix=unique_prefix(), clock=clock))
    second = manager_on(RedisSessionStorage(client, key_prefix=unique_prefix(), clock=clock))
    session_id = first.create("uid1", LAPTOP)
    assert second.read_all("uid1") == {}
    assert second.delete_all("uid1") == 0
    assert first.read("uid1", session_id, LAPTOP)[0].ip == LAPTOP.ip


@pytest.mark.parametrize("prefix", ["", "app{1}", "a}", "{"])
def test_a_key_prefix_that_would_break_the_hash_tag_is_refused(
    client: redis.Redis, prefix: str
) -> None:
    with pytest.raises(InvalidOptionsError) as raised:
        RedisSessionStorage(client, key_prefix=prefix)
    assert raised.value.code is ErrorCode.INVALID_OPTION


# -- serialisation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        None,
        "Oslo",
        7,
        59.91,
        True,
        [1, "a", None],
        {"city": "Oslo", "pos": [59.9, 10.7]},
        "ü😀\x00\u2028",
    ],
)
def test_json_round_trips_every_field_of_the_metadata(location: object) -> None:
    original = SessionMetadata(
        "10.0.0.1",
        Device("Firefox", "desktop"),
        location,
        100,
        150,
        3700,
        idle=60,
        grace_ends_at=180,
        renewed_by="token:3",
        subject="uid:{1}",
    )
    copy = JsonSerializer().loads(JsonSerializer().dumps(original))
    for slot in ("_ip", "_device", "_location", "_created_at", "_accessed_at", "_expires_at"):
        assert getattr(copy, slot) == getattr(original, slot), slot
    for slot in ("_idle", "_grace_ends_at", "_renewed_by", "_subject"):
        assert getattr(copy, slot) == getattr(original, slot), slot


def test_metadata_and_renewal_bookkeeping_round_trip_through_redis(
    storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage, timeouts=Timeouts(idle=300, renewal=200, renewal_grace=30))
    old = manager.create("uid1", LAPTOP)
    clock.advance(200)
    renewed = manager.read("uid1", old, LAPTOP)[1]
    assert renewed is not None
    metadata = storage.read("uid1", old, clock())
    assert metadata is not None
    assert (metadata.ip, metadata.device, metadata.location) == (
        LAPTOP.ip,
        LAPTOP.device,
        LAPTOP.location,
    )
    assert (metadata.created_at, metadata.expires_at) == (clock() - 200, clock() - 200 + 3600)
    assert metadata._idle == 300
    assert metadata._grace_ends_at == clock() + 30
    assert metadata._renewed_by is not None
    assert metadata.subject == "uid1"
    assert metadata.renewed


def test_a_location_json_cannot_carry_is_refused_and_nothing_is_stored(
    client: redis.Redis, storage: RedisSessionStorage
) -> None:
    manager = manager_on(storage)
    with pytest.raises(InvalidTypeError) as raised:
        manager.create("uid1", SessionContext("10.0.0.1", location={1, 2}))
    assert raised.value.code is ErrorCode.INVALID_CONTEXT
    assert stored_keys(client, storage) == []


@pytest.mark.parametrize("text", ["\ud83d\ude00", "ü\ud800", "\udfff"])
def test_a_string_with_a_surrogate_is_refused_and_nothing_is_stored(
    client: redis.Redis, storage: RedisSessionStorage, text: str
) -> None:
    """Issue 12, point 10: JSON writes a surrogate pair with the same escapes
    as the character it stands for, so "\ud83d\ude00" would come back as
    "😀", another string. Refused instead, before anything is stored."""
    manager = manager_on(storage)
    with pytest.raises(InvalidTypeError) as raised:
        manager.create("uid1", SessionContext("10.0.0.1", location={"place": [text]}))
    assert raised.value.code is ErrorCode.INVALID_CONTEXT
    assert stored_keys(client, storage) == []


def test_every_string_the_json_serializer_accepts_comes_back_exactly(
    storage: RedisSessionStorage,
) -> None:
    manager = manager_on(storage)
    location = {"😀": ["ü", "\x00", "\u2028", "日本", "\U0010ffff"]}
    context = SessionContext("10.0.0.1", Device("Fire😀fox", "desk\u2028top"), location)
    session_id = manager.create("uid1", context)
    metadata, _ = manager.read("uid1", session_id, context)
    assert (metadata.location, metadata.device) == (location, context.device)


class PickleSerializer:
    def dumps(self, metadata: SessionMetadata) -> bytes:
        fields = ("_ip", "_device", "_location", "_created_at", "_accessed_at", "_expires_at")
        return pickle.dumps(
            [getattr(metadata, field) for field in fields] + [metadata._idle, metadata._subject]
        )

    def loads(self, data: bytes) -> SessionMetadata:
        *public, idle, subject = pickle.loads(data)
        return SessionMetadata(*public, idle=idle, subject=subject)


def test_the_serializer_is_pluggable(client: redis.Redis, clock: ManualClock) -> None:
    storage = RedisSessionStorage(
        client, key_prefix=unique_prefix(), serializer=PickleSerializer(), clock=clock
    )
    manager = manager_on(storage)
    context = SessionContext("10.0.0.1", location=("a", frozenset({1})))  # not JSON
    session_id = manager.create("uid1", context)
    key = storage.layout.session_key("uid1", manager.hash(session_id))
    assert client.hget(key, "metadata").startswith(b"\x80")  # type: ignore[union-attr]
    assert manager.read("uid1", session_id, context)[0].location == ("a", frozenset({1}))


def test_a_client_that_decodes_responses_works_too(
    redis_server: RedisServer, clock: ManualClock
) -> None:
    client = redis_server.client(decode_responses=True)
    storage = RedisSessionStorage(client, key_prefix=unique_prefix(), clock=clock)
    manager = manager_on(storage, timeouts=RENEWING)
    session_id = manager.create("uid1", LAPTOP)
    assert manager.read("uid1", session_id, LAPTOP)[0].location == LAPTOP.location
    clock.advance(600)
    assert manager.read("uid1", session_id, LAPTOP)[1] is not None
    assert len(manager.read_all("uid1")) == 1
    assert manager.delete_all("uid1") == 2
    client.close()


# -- TTLs -------------------------------------------------------------------------


def test_a_new_session_lives_its_ttl_in_redis(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage, session_ttl=3600)
    session_id = manager.create("uid1", LAPTOP)
    handle = manager.hash(session_id)
    assert_pttl(client, storage.layout.session_key("uid1", handle), 3600)
    # The index outlives its last member by one second.
    assert_pttl(client, storage.layout.index_key("uid1"), 3601)
    assert client.zscore(storage.layout.index_key("uid1"), handle) == clock() + 3600
    other = manager.create("uid1", LAPTOP, ttl=7200)
    assert_pttl(client, storage.layout.session_key("uid1", manager.hash(other)), 7200)
    assert_pttl(client, storage.layout.index_key("uid1"), 7201)


def test_with_idle_on_a_touch_moves_the_ttl_to_the_idle_deadline(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage, session_ttl=3600, timeouts=Timeouts(idle=300))
    session_id = manager.create("uid1", LAPTOP)
    key = storage.layout.session_key("uid1", manager.hash(session_id))
    assert_pttl(client, key, 300)
    clock.advance(200)
    manager.read("uid1", session_id, LAPTOP)
    assert_pttl(client, key, 300)
    assert (
        client.zscore(storage.layout.index_key("uid1"), manager.hash(session_id)) == clock() + 300
    )
    assert client.hget(key, "accessed_at") == str(clock()).encode()


def test_a_touch_never_extends_a_session_past_its_expiry(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage, session_ttl=3600, timeouts=Timeouts(idle=300))
    session_id = manager.create("uid1", LAPTOP)
    key = storage.layout.session_key("uid1", manager.hash(session_id))
    for _ in range(12):  # 3480 s, read every 290 s
        clock.advance(290)
        manager.read("uid1", session_id, LAPTOP)
    assert_pttl(client, key, 3600 - 3480)


def test_without_idle_a_touch_leaves_the_ttl_alone(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage, session_ttl=3600)
    session_id = manager.create("uid1", LAPTOP)
    key = storage.layout.session_key("uid1", manager.hash(session_id))
    clock.advance(1000)
    manager.read("uid1", session_id, LAPTOP)
    assert_pttl(client, key, 3600)  # as set by create, relative to its `now`
    assert client.hget(key, "accessed_at") == str(clock()).encode()


def test_a_renewal_gives_the_old_session_its_grace_and_the_new_one_a_full_life(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage, session_ttl=3600, timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    clock.advance(600)
    new = manager.read("uid1", old, SessionContext("10.0.0.3", LAPTOP.device))[1]
    assert new is not None
    layout = storage.layout
    assert_pttl(client, layout.session_key("uid1", manager.hash(old)), 30)
    assert_pttl(client, layout.session_key("uid1", manager.hash(new)), 3600)
    scores = dict(client.zrange(layout.index_key("uid1"), 0, -1, withscores=True))
    assert scores == {
        manager.hash(old).encode(): clock() + 30,
        manager.hash(new).encode(): clock() + 3600,
    }
    # A read inside the grace does not touch the old session.
    clock.advance(10)
    assert manager.read("uid1", old, LAPTOP)[1] is None
    assert_pttl(client, layout.session_key("uid1", manager.hash(old)), 30)


def test_the_grace_never_outlasts_the_old_sessions_expiry(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(
        storage, session_ttl=3600, timeouts=Timeouts(renewal=600, renewal_grace=100)
    )
    old = manager.create("uid1", LAPTOP, ttl=650)
    clock.advance(600)
    assert manager.read("uid1", old, LAPTOP)[1] is not None
    assert_pttl(client, storage.layout.session_key("uid1", manager.hash(old)), 50)


def test_redis_expires_sessions_and_the_index_on_its_own(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    """Real time: a 1 s session and a 1 s idle session are gone after 2.2 s,
    and so is the subject's index."""
    storage = RedisSessionStorage(client, key_prefix=unique_prefix())  # system clock
    expiring = manager_on(storage, session_ttl=1)
    idling = manager_on(storage, session_ttl=60, timeouts=Timeouts(idle=1))
    short = expiring.create("uid1", LAPTOP)
    idle = idling.create("uid1", LAPTOP)
    assert len(idling.read_all("uid1")) == 2
    time.sleep(2.2)
    assert stored_keys(client, storage) == []
    with pytest.raises(SessionNotFoundError):
        expiring.read("uid1", short, LAPTOP)
    with pytest.raises(SessionNotFoundError):  # Redis reclaimed it before a read saw it idle
        idling.read("uid1", idle, LAPTOP)


# -- the index --------------------------------------------------------------------


def test_scripts_drop_dead_index_members_and_leave_their_keys_to_their_ttl(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    """A script touches only the keys it declares (Redis Cluster), so a dead
    member's key is not deleted by the trim: its TTL, set to the same
    deadline, removes it; meanwhile it reads as not found (unlisted)."""
    manager = manager_on(storage, session_ttl=100)
    dead = [manager.create("uid1", LAPTOP) for _ in range(3)]
    clock.advance(100)
    alive = manager.create("uid1", LAPTOP)
    index = storage.layout.index_key("uid1")
    assert client.zrange(index, 0, -1) == [manager.hash(alive).encode()]
    for session_id in dead:
        key = storage.layout.session_key("uid1", manager.hash(session_id))
        assert 0 < client.pttl(key) <= 100_000
        assert storage.read("uid1", session_id, clock() - 100) is None


def test_read_all_drops_members_whose_key_redis_already_expired(
    client: redis.Redis, storage: RedisSessionStorage
) -> None:
    manager = manager_on(storage)
    gone = manager.create("uid1", LAPTOP)
    kept = manager.create("uid1", LAPTOP)
    client.delete(storage.layout.session_key("uid1", manager.hash(gone)))  # as a TTL would
    assert list(manager.read_all("uid1")) == [manager.hash(kept)]


def test_a_delete_leaves_only_a_short_lived_marker_for_a_retry_of_itself(
    client: redis.Redis, storage: RedisSessionStorage
) -> None:
    manager = manager_on(storage)
    session_id = manager.create("uid1", LAPTOP)
    manager.delete("uid1", session_id)
    assert stored_keys(client, storage) == []
    (marker,) = call_markers(client, storage)
    assert 0 < client.pttl(marker) <= 15_000
    assert session_id.encode() not in client.get(marker)  # type: ignore[operator]


def test_delete_all_removes_the_index_too(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage, timeouts=RENEWING)
    old = manager.create("uid1", LAPTOP)
    manager.create("uid1", PHONE)
    clock.advance(600)
    assert manager.read("uid1", old, LAPTOP)[1] is not None
    assert manager.delete_all("uid1") == 3  # the superseded one included
    assert stored_keys(client, storage) == []


# -- the storage protocol, directly -----------------------------------------------


def test_a_touch_does_not_bring_back_a_deleted_session(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage, timeouts=Timeouts(idle=300))
    session_id = manager.create("uid1", LAPTOP)
    metadata = storage.read("uid1", session_id, clock())
    assert metadata is not None
    manager.delete("uid1", session_id)
    storage.touch("uid1", session_id, metadata, clock() + 10)
    assert stored_keys(client, storage) == []


def test_a_touch_does_not_extend_a_superseded_session(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage, timeouts=Timeouts(idle=300, renewal=200, renewal_grace=30))
    old = manager.create("uid1", LAPTOP)
    clock.advance(200)
    metadata = storage.read("uid1", old, clock())
    assert metadata is not None
    assert manager.read("uid1", old, LAPTOP)[1] is not None
    storage.touch("uid1", old, metadata, clock() + 5)  # a reader that lost the race
    key = storage.layout.session_key("uid1", manager.hash(old))
    assert_pttl(client, key, 30)
    assert client.hget(key, "accessed_at") == str(clock() - 200).encode()


def test_renew_has_exactly_one_winner_and_tells_the_others(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    manager = manager_on(storage)
    old = manager.create("uid1", LAPTOP)
    metadata = storage.read("uid1", old, clock())
    assert metadata is not None
    successor = SessionMetadata("10.0.0.1", None, None, clock(), clock(), clock() + 3600)
    assert storage.renew("uid1", old, clock() + 30, "first", "new-1" * 8, successor) == "first"
    assert storage.renew("uid1", old, clock() + 30, "second", "new-2" * 8, successor) == "first"
    assert storage.renew("uid1", "never stored", clock() + 30, "x", "new-3" * 8, successor) is None
    index = storage.layout.index_key("uid1")
    assert client.zcard(index) == 2  # the old one and the first successor only


def test_storing_an_id_twice_is_refused(storage: RedisSessionStorage, clock: ManualClock) -> None:
    metadata = SessionMetadata("10.0.0.1", None, None, clock(), clock(), clock() + 60)
    storage.insert("uid1", "the-same-id" * 3, metadata)
    with pytest.raises(SessionStorageError) as raised:
        storage.insert("uid1", "the-same-id" * 3, metadata)
    assert raised.value.code is ErrorCode.STORAGE_FAILURE
    assert "the-same-id" not in str(raised.value)


# -- listeners --------------------------------------------------------------------


def test_listeners_hear_explicit_deletes_by_handle(
    storage: RedisSessionStorage, clock: ManualClock
) -> None:
    events: list[tuple[str, str, SessionMetadata, DeleteReason]] = []
    storage.add_listener(lambda *event: events.append(event))  # type: ignore[arg-type]
    manager = manager_on(storage)
    first, second, third, fourth = (manager.create("uid1", LAPTOP) for _ in range(4))
    manager.delete("uid1", first)
    manager.delete("uid1", first)  # a no-op: no event
    assert manager.revoke("uid1", manager.hash(second))
    assert manager.delete_all("uid1") == 2
    assert [(subject, handle, reason) for subject, handle, _, reason in events] == [
        ("uid1", manager.hash(first), DeleteReason.DELETED),
        ("uid1", manager.hash(second), DeleteReason.DELETED),
        *sorted(
            [
                ("uid1", manager.hash(third), DeleteReason.DELETED),
                ("uid1", manager.hash(fourth), DeleteReason.DELETED),
            ]
        ),
    ]
    assert all(metadata.ip == LAPTOP.ip for _, _, metadata, _ in events)


def test_a_read_that_finds_a_session_idle_emits_idle(
    storage: RedisSessionStorage, clock: ManualClock
) -> None:
    events: list[tuple[str, str, SessionMetadata, DeleteReason]] = []
    storage.add_listener(lambda *event: events.append(event))  # type: ignore[arg-type]
    manager = manager_on(storage, timeouts=Timeouts(idle=100))
    session_id = manager.create("uid1", LAPTOP)
    clock.advance(100)
    with pytest.raises(SessionExpiredError):
        manager.read("uid1", session_id, LAPTOP)
    assert [(handle, reason) for _, handle, _, reason in events] == [
        (manager.hash(session_id), DeleteReason.IDLE)
    ]


def test_expiry_and_the_end_of_a_grace_are_silent(
    storage: RedisSessionStorage, clock: ManualClock
) -> None:
    """Documented limit: what Redis (or a script's trim) removes for being
    past its deadline emits no event."""
    events: list[object] = []
    storage.add_listener(lambda *event: events.append(event))  # type: ignore[arg-type]
    manager = manager_on(storage, timeouts=RENEWING)
    expiring = manager.create("uid1", LAPTOP, ttl=60)
    old = manager.create("uid1", LAPTOP)
    clock.advance(600)
    assert manager.read("uid1", old, LAPTOP)[1] is not None
    clock.advance(30)
    assert len(manager.read_all("uid1")) == 1  # the trim removed two sessions
    for session_id in (expiring, old):
        with pytest.raises(SessionNotFoundError):
            manager.read("uid1", session_id, LAPTOP)
    assert events == []


def test_a_failing_listener_is_logged_and_the_delete_still_happens(
    storage: RedisSessionStorage, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*event: object) -> None:
        raise RuntimeError("listener bug")

    storage.add_listener(broken)
    manager = manager_on(storage)
    session_id = manager.create("uid1", LAPTOP)
    manager.delete("uid1", session_id)
    assert manager.read_all("uid1") == {}
    assert "listener" in caplog.text
    assert session_id not in caplog.text


def test_a_listener_that_cannot_be_called_is_refused(storage: RedisSessionStorage) -> None:
    with pytest.raises(InvalidTypeError):
        storage.add_listener(5)  # type: ignore[arg-type]


# -- errors -----------------------------------------------------------------------


def chain_text(error: BaseException) -> str:
    """The messages of an exception and everything chained to it."""
    parts = []
    seen: BaseException | None = error
    while seen is not None:
        parts.append(f"{type(seen).__name__}: {seen!r} {seen}")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def test_a_redis_error_is_a_storage_error_without_the_session_id(
    client: redis.Redis, storage: RedisSessionStorage
) -> None:
    manager = manager_on(storage)
    session_id = manager.create("uid1", LAPTOP)
    key = storage.layout.session_key("uid1", manager.hash(session_id))
    client.delete(key)
    client.set(key, "not a hash")  # WRONGTYPE for HMGET
    with pytest.raises(SessionStorageError) as raised:
        manager.read("uid1", session_id, LAPTOP)
    assert raised.value.code is ErrorCode.STORAGE_FAILURE
    message = str(raised.value)
    assert message.startswith("Redis failed to read session '")
    assert manager.hash(session_id) in message
    assert "WRONGTYPE" in message
    assert session_id not in chain_text(raised.value)


def test_a_failed_script_writes_nothing(client: redis.Redis, storage: RedisSessionStorage) -> None:
    manager = manager_on(storage)
    client.set(storage.layout.index_key("uid1"), "not a sorted set")
    with pytest.raises(SessionStorageError) as raised:
        manager.create("uid1", LAPTOP)
    assert "Redis failed to store session" in str(raised.value)
    assert stored_keys(client, storage) == [storage.layout.index_key("uid1").encode()]
    for operation in (manager.read_all, manager.delete_all):
        with pytest.raises(SessionStorageError):
            operation("uid1")


def test_data_that_cannot_be_read_back_is_a_storage_error(
    client: redis.Redis, storage: RedisSessionStorage
) -> None:
    manager = manager_on(storage)
    session_id = manager.create("uid1", LAPTOP)
    key = storage.layout.session_key("uid1", manager.hash(session_id))
    client.hset(key, "metadata", b"\xff not json")
    with pytest.raises(SessionStorageError) as raised:
        manager.read("uid1", session_id, LAPTOP)
    assert "cannot be read back" in str(raised.value)
    assert session_id not in chain_text(raised.value)


# -- fail closed (issue 12: points 13 and 14) ---------------------------------------


def test_a_session_its_index_no_longer_lists_reads_as_not_found(
    client: redis.Redis, storage: RedisSessionStorage
) -> None:
    """Under maxmemory with an allkeys-* or volatile-lru/lfu/random policy,
    Redis may evict a subject's index and keep its sessions. Those sessions
    must not outlive "log out everywhere" unseen: a session its index does
    not list reads as not found, is not listed, and is not renewed."""
    manager = manager_on(storage, timeouts=RENEWING)
    session_ids = [manager.create("uid1", LAPTOP) for _ in range(3)]
    client.delete(storage.layout.index_key("uid1"))  # what an eviction does
    for session_id in session_ids:
        with pytest.raises(SessionNotFoundError):
            manager.read("uid1", session_id, LAPTOP)
        with pytest.raises(SessionNotFoundError):
            manager.renew("uid1", session_id, SessionMetadata("", None, None, 0, 0, 1), LAPTOP)
    assert manager.read_all("uid1") == {}
    assert manager.delete_all("uid1") == 0
    assert manager.logout("uid1", session_ids[0]) == 0
    for session_id in session_ids:
        with pytest.raises(SessionNotFoundError):
            manager.read("uid1", session_id, LAPTOP)


def test_the_index_outlives_every_session_even_when_clocks_disagree(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    """A host whose clock runs 50 minutes ahead stores a short session: the
    index must not expire before the long session another host stored."""
    manager = manager_on(storage, session_ttl=3600)
    ahead = UserSessionManager(storage, session_ttl=3600, clock=lambda: clock() + 3000)
    long_lived = manager.create("uid1", LAPTOP)
    ahead.create("uid1", LAPTOP, ttl=60)
    key = storage.layout.session_key("uid1", manager.hash(long_lived))
    assert client.pttl(storage.layout.index_key("uid1")) >= client.pttl(key) + 500
    assert manager.read("uid1", long_lived, LAPTOP)[1] is None


def corrupt_record(client: redis.Redis, key: str, field: str, value: object) -> None:
    record = json.loads(client.hget(key, "metadata"))  # type: ignore[arg-type]
    record[field] = value
    client.hset(key, "metadata", json.dumps(record))


@pytest.mark.parametrize(
    ("field", "value"),
    [("device", "Firefox"), ("device", ["Firefox"]), ("ip", 7), ("subject", None)],
)
def test_a_record_with_a_field_of_the_wrong_type_is_a_storage_error_and_hides_no_other(
    client: redis.Redis, storage: RedisSessionStorage, field: str, value: object
) -> None:
    manager = manager_on(storage)
    bad = manager.create("uid1", LAPTOP)
    good = manager.create("uid1", LAPTOP)
    corrupt_record(client, storage.layout.session_key("uid1", manager.hash(bad)), field, value)
    with pytest.raises(SessionStorageError) as raised:
        manager.read("uid1", bad, LAPTOP)
    assert raised.value.code is ErrorCode.STORAGE_FAILURE
    assert "cannot be read back" in str(raised.value)
    assert raised.value.subject == "uid1"
    assert list(manager.read_all("uid1")) == [manager.hash(good)]
    assert manager.read("uid1", good, LAPTOP)[1] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("static", f"{START} soon {START} 300 "),
        ("static", f"{START} {START + 3600} {START} soon "),
        ("static", "garbage"),
        ("accessed_at", "soon"),
        ("superseded", "soon elsewhere:1"),
    ],
)
def test_a_plain_field_that_is_not_a_number_is_a_storage_error_and_hides_no_other(
    client: redis.Redis, storage: RedisSessionStorage, field: str, value: str
) -> None:
    """The Lua judge and the Python decoder both refuse it: `expires_at`
    "soon" is not a session that never expires."""
    manager = manager_on(storage, timeouts=Timeouts(idle=300))
    bad = manager.create("uid1", LAPTOP)
    good = manager.create("uid1", LAPTOP)
    client.hset(storage.layout.session_key("uid1", manager.hash(bad)), field, value)
    with pytest.raises(SessionStorageError) as raised:
        manager.read("uid1", bad, LAPTOP)
    assert "cannot be read back" in str(raised.value)
    assert list(manager.read_all("uid1")) == [manager.hash(good)]


def test_every_script_ships_as_package_data() -> None:
    """The scripts are read with importlib.resources, as a wheel holds them."""
    from importlib import resources  # noqa: PLC0415

    from usersession.storage._redis_scripts import SCRIPT_NAMES  # noqa: PLC0415

    shipped = resources.files("usersession.storage") / "lua"
    for name in (*SCRIPT_NAMES, "common"):
        assert "redis.call" in (shipped / f"{name}.lua").read_text(encoding="utf-8"), name


# -- round trips ----------------------------------------------------------------------


class CountingRedis(redis.Redis):
    """A client that counts the commands it sends (one per round trip here:
    nothing is pipelined)."""

    sent: list[str]

    def execute_command(self, *args: object, **options: object) -> object:
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


@pytest.fixture
def counting(redis_server: RedisServer) -> Iterator[CountingRedis]:
    client = CountingRedis(port=redis_server.port)
    client.sent = []
    for source in SOURCES.values():  # loaded, as on a server in use
        client.script_load(source)
    yield client
    client.close()


def round_trips(client: CountingRedis, operation: object) -> int:
    client.sent.clear()
    assert callable(operation)
    operation()
    return len(client.sent)


def test_a_read_is_one_round_trip_whatever_it_finds(
    counting: CountingRedis, clock: ManualClock
) -> None:
    storage = RedisSessionStorage(counting, key_prefix=unique_prefix(), clock=clock)
    manager = manager_on(storage, timeouts=Timeouts(idle=100, renewal=600, renewal_grace=30))
    session_id = manager.create("uid1", LAPTOP)
    idle = manager.create("uid1", LAPTOP)
    assert round_trips(counting, lambda: manager.create("uid1", LAPTOP)) == 1
    clock.advance(50)
    assert round_trips(counting, lambda: manager.read("uid1", session_id, LAPTOP)) == 1
    clock.advance(60)  # 110 s: idle was read last at 0

    def read_idle() -> None:
        with pytest.raises(SessionExpiredError):
            manager.read("uid1", idle, LAPTOP)

    def read_from_another_device() -> None:
        with pytest.raises(SessionDeviceMismatchError):
            manager.read("uid1", session_id, PHONE)

    def read_unknown() -> None:
        with pytest.raises(SessionNotFoundError):
            manager.read("uid1", "no such session", LAPTOP)

    assert round_trips(counting, read_idle) == 1
    assert round_trips(counting, read_from_another_device) == 1
    assert round_trips(counting, read_unknown) == 1
    assert round_trips(counting, lambda: manager.delete("uid1", session_id)) == 1


def test_a_custom_read_hook_costs_a_read_a_second_round_trip(
    counting: CountingRedis, clock: ManualClock
) -> None:
    storage = RedisSessionStorage(counting, key_prefix=unique_prefix(), clock=clock)
    manager = manager_on(storage, read_hook=check_same_device_if_known)
    session_id = manager.create("uid1", LAPTOP)
    clock.advance(1)
    assert round_trips(counting, lambda: manager.read("uid1", session_id, LAPTOP)) == 2
    assert manager.read("uid1", session_id, LAPTOP)[0].accessed_at == clock()


def test_a_read_that_finds_nothing_due_writes_nothing(
    client: redis.Redis, storage: RedisSessionStorage, clock: ManualClock
) -> None:
    """A session read twice in one second: the second read's script runs
    no write command (nothing to replicate, nothing to persist)."""
    manager = manager_on(storage)
    session_id = manager.create("uid1", LAPTOP)
    clock.advance(1)
    manager.read("uid1", session_id, LAPTOP)
    changes = client.info("persistence")["rdb_changes_since_last_save"]
    assert manager.read("uid1", session_id, LAPTOP)[0].accessed_at == clock()
    assert client.info("persistence")["rdb_changes_since_last_save"] == changes
