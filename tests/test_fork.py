"""Fork safety of the pooled ids: a forked child starts with empty pools, so
it never hands out an id its parent hands out (both would otherwise cut the
same inherited buffer)."""

from __future__ import annotations

import json
import os

import pytest

from usersession import (
    InMemorySessionStorage,
    ManualClock,
    SessionContext,
    Timeouts,
    UserSessionManager,
)
from usersession.ids import IdGenerator

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

DRAWN = 500


def _ids_from_child(draw: object) -> list[str]:
    """Fork; the child sends back `DRAWN` ids from `draw()` and exits."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            os.close(read_end)
            ids = [draw() for _ in range(DRAWN)]  # type: ignore[operator]
            with os.fdopen(write_end, "w") as pipe:
                json.dump(ids, pipe)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        ids = json.load(pipe)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return list(ids)


def test_a_forked_child_never_produces_the_ids_its_parent_produces() -> None:
    generator = IdGenerator(24)
    generator._refill()  # the pool is full of ids the parent has not handed out yet
    assert len(generator._pool) > DRAWN
    child_ids = _ids_from_child(generator.new_id)
    parent_ids = [generator.new_id() for _ in range(DRAWN)]
    assert len(set(child_ids)) == DRAWN
    assert not set(child_ids) & set(parent_ids)


def test_a_manager_used_in_a_forked_child_creates_ids_its_parent_never_creates() -> None:
    manager = UserSessionManager(InMemorySessionStorage(), session_ttl=600)
    context = SessionContext(ip="10.0.0.1")
    manager.create("uid", context)
    child_ids = _ids_from_child(lambda: manager.create("uid", context))
    parent_ids = [manager.create("uid", context) for _ in range(DRAWN)]
    assert not set(child_ids) & set(parent_ids)


def test_two_children_of_one_parent_do_not_share_ids_either() -> None:
    generator = IdGenerator(16)
    generator.new_id()
    first = _ids_from_child(generator.new_id)
    second = _ids_from_child(generator.new_id)
    assert not set(first) & set(second)


def test_a_forked_manager_makes_renewal_claims_of_its_own() -> None:
    """A forked worker renewing the same session as its parent must not be
    told it won when the parent did: its claims and its token are its own."""
    clock = ManualClock(1_000)
    storage = InMemorySessionStorage(clock=clock)
    manager = UserSessionManager(
        storage, session_ttl=100, timeouts=Timeouts(renewal=10, renewal_grace=5)
    )
    context = SessionContext("10.0.0.1")
    session_id = manager.create("uid1", context)
    metadata = storage.read("uid1", session_id, clock())
    assert metadata is not None
    parent_claim = manager._successor(session_id, metadata, context, clock())[3]
    child_claims = _ids_from_child(
        lambda: manager._successor(session_id, metadata, context, clock())[3]
    )
    child_tokens = {claim.partition(":")[0] for claim in child_claims}
    assert parent_claim not in child_claims
    assert len(set(child_claims)) == DRAWN
    assert len(child_tokens) == 1
    assert manager._token not in child_tokens
