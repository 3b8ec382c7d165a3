"""The Redis read script judges a read where the data is (one round trip).
The rules are Python's: `policy.read_verdict`, `policy.deadline` and
`manager.check_same_device`. lua/read.lua mirrors them, and this property
test holds the mirror to them: random stored sessions, clocks, timeouts and
readers go through both, on a real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.redis_server import RedisServer, unique_prefix
from usersession import Device, SessionContext, SessionDeviceMismatchError, SessionMetadata
from usersession.ids import session_handle
from usersession.manager import check_same_device
from usersession.policy import Verdict, deadline, read_verdict
from usersession.storage._redis_records import JsonSerializer, record_fields, superseded_field
from usersession.storage.protocol import ReadRules
from usersession.storage.redis import RedisSessionStorage

START = 1_700_000_000
DEVICES = [None, Device("a", "b"), Device("ab", ""), Device("", "ab"), Device("a", "b ")]


@pytest.fixture(scope="module")
def storage(redis_server: RedisServer) -> Iterator[RedisSessionStorage]:
    client = redis_server.client()
    yield RedisSessionStorage(client, key_prefix=unique_prefix())
    client.close()


@st.composite
def stored_sessions(draw: st.DrawFn) -> SessionMetadata:
    created_at = draw(st.integers(START - 100, START + 100))
    superseded = draw(st.integers(0, 3)) == 0
    return SessionMetadata(
        "10.0.0.1",
        draw(st.sampled_from(DEVICES)),
        None,
        created_at,
        draw(st.integers(created_at, created_at + 100)),
        draw(st.integers(created_at + 1, created_at + 300)),
        idle=draw(st.none() | st.integers(1, 300)),
        grace_ends_at=draw(st.integers(created_at, created_at + 300)) if superseded else None,
        renewed_by="elsewhere:1" if superseded else None,
        subject="uid1",
        authenticated_at=draw(st.integers(created_at - 200, created_at)),
    )


def store(
    client: redis.Redis, storage: RedisSessionStorage, session_id: str, meta: SessionMetadata
) -> str:
    """Write `meta` as the storage lays a session out; return its key."""
    handle = session_handle(session_id)
    key = storage.layout.session_key("uid1", handle)
    fields = record_fields(JsonSerializer(), meta)
    if meta._grace_ends_at is not None:
        fields += ["superseded", superseded_field(meta._grace_ends_at, "elsewhere:1")]
    client.hset(key, mapping=dict(zip(fields[::2], fields[1::2], strict=True)))  # type: ignore[arg-type]
    client.pexpire(key, 60_000)
    client.zadd(storage.layout.index_key("uid1"), {handle: deadline(meta)[0]})
    return key


def expected_verdict(
    meta: SessionMetadata,
    now: int,
    rules: ReadRules,
    reader: Device | None,
    renew_now: bool,
) -> Verdict:
    """What the Python side decides, in the read order of docs/behaviour.md."""
    verdict = read_verdict(meta, now, rules.renewal, rules.absolute)
    if renew_now and verdict is Verdict.TOUCH:
        verdict = Verdict.RENEW
    if verdict is Verdict.GONE or not rules.checks_device:
        return verdict
    try:
        check_same_device("uid1", "id", SessionContext("10.0.0.9", reader), meta)
    except SessionDeviceMismatchError:
        return Verdict.WRONG_DEVICE
    return verdict


def boundaries(meta: SessionMetadata, renewal: int | None, absolute: int | None) -> list[int]:
    """The seconds at which some rule changes its mind about `meta`."""
    seconds = [meta.created_at, meta.accessed_at, meta.expires_at]
    if meta._grace_ends_at is not None:
        seconds.append(meta._grace_ends_at)
    if meta._idle is not None:
        seconds.append(meta.accessed_at + meta._idle)
    if renewal is not None:
        seconds.append(meta.created_at + renewal)
    if absolute is not None:
        seconds.append(meta.authenticated_at + absolute)
    return seconds


@settings(max_examples=800, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    meta=stored_sessions(),
    renewal=st.none() | st.integers(1, 200),
    absolute=st.none() | st.none() | st.integers(1, 400),
    checks_device=st.sampled_from([True, True, False]),
    data=st.data(),
    renew_now=st.sampled_from([False, False, False, True]),
)
def test_the_read_script_judges_and_touches_exactly_as_the_python_policy(
    storage: RedisSessionStorage,
    meta: SessionMetadata,
    renewal: int | None,
    absolute: int | None,
    checks_device: bool,
    data: st.DataObject,
    renew_now: bool,
) -> None:
    """For every stored session, clock, timeout and reader: the script's
    verdict is the policy's; it writes only when it applies the verdict
    (the default read hook), and then a TOUCH sets accessed_at to
    max(accessed_at, now) and, with idle, the index score and TTL to
    `policy.deadline` of the touched session, an IDLE removes the session,
    and every other verdict leaves the session as it was."""
    # Mostly the seconds around a rule's boundary, where a mirror would slip.
    near = st.sampled_from(boundaries(meta, renewal, absolute)).flatmap(
        lambda second: st.integers(second - 1, second + 1)
    )
    alive = st.integers(meta.accessed_at + 1, max(meta.accessed_at + 1, meta.expires_at - 1))
    now = data.draw(near | alive | st.integers(START - 50, START + 500), label="now")
    reader = data.draw(st.just(meta.device) | st.sampled_from(DEVICES), label="reader")
    client: redis.Redis = storage.client
    session_id = uuid.uuid4().hex
    key = store(client, storage, session_id, meta)
    index = storage.layout.index_key("uid1")
    handle = session_handle(session_id)
    before = client.hgetall(key)
    rules = ReadRules(renewal, absolute, checks_device)

    verdict, found = storage.read_judged("uid1", session_id, now, rules, reader, renew_now)

    expected = expected_verdict(meta, now, rules, reader, renew_now)
    event(expected.name)
    assert verdict is expected
    if verdict in (Verdict.GONE, Verdict.WRONG_DEVICE):
        assert found is None
    else:
        assert found is not None
        assert found == meta or verdict is Verdict.TOUCH
        assert (found.created_at, found.expires_at, found._idle) == (
            meta.created_at,
            meta.expires_at,
            meta._idle,
        )
    applied = checks_device and verdict in (Verdict.TOUCH, Verdict.IDLE)
    if not applied:
        assert client.hgetall(key) == before
        assert client.zscore(index, handle) == deadline(meta)[0]
    elif verdict is Verdict.IDLE:
        assert client.exists(key) == 0
        assert client.zscore(index, handle) is None
    else:
        touched_at = max(meta.accessed_at, now)
        assert found is not None and found.accessed_at == touched_at
        assert client.hget(key, "accessed_at") == str(touched_at).encode()
        if meta._idle is not None and meta.accessed_at < now:
            meta._accessed_at = now
            new_deadline = deadline(meta)[0]
            assert client.zscore(index, handle) == new_deadline
            assert (
                (new_deadline - now) * 1000 - 1000 < client.pttl(key) <= (new_deadline - now) * 1000
            )
        else:
            assert client.zscore(index, handle) == deadline(meta)[0]
    client.delete(key, index)
