"""Shared fixtures: a manual clock, and managers over every storage that
implements the contract.

`make_manager` is parametrized by storage kind; behaviour tests that take it
run once per kind, so every storage is held to the same contract.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import usersession
from tests.redis_cluster import (  # noqa: F401  (redis_cluster is a fixture)
    cluster_managers,
    redis_cluster,
)
from tests.redis_server import (  # noqa: F401  (redis_server is a fixture)
    EventLoopThread,
    SyncFacade,
    redis_managers,
    redis_server,
)
from usersession import (
    AsyncUserSessionManager,
    InMemorySessionStorage,
    ManualClock,
    UserSessionManager,
)

if os.environ.get("USERSESSION_EXPECT_COMPILED") == "1" and not usersession.compiled:
    # .ci/run's compiled run: passing on the pure modules would prove nothing.
    raise pytest.UsageError(
        f"USERSESSION_EXPECT_COMPILED=1 but {usersession.__file__} is not the compiled build "
        f"(modules: {usersession._build.compiled_modules()})"
    )

settings.register_profile(
    "ci",
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, stateful_step_count=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

START = 1_700_000_000
"""Tests start at a realistic Unix time, so no rule can lean on `now` being small."""

MakeManager = Callable[..., Any]
"""`make_manager(session_ttl=..., timeouts=..., ...)`: a manager on a fresh storage
driven by the test's `clock`. Returns an object with the sync manager's methods."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


STORAGE_KINDS = ["memory", "memory-async", "redis", "redis-async", "cluster", "cluster-async"]
""""memory-async" is `AsyncUserSessionManager` over `InMemorySessionStorage`;
"cluster" and "cluster-async" run on a 3-master Redis Cluster on loopback,
with scripts that fail on any key they do not declare."""


@pytest.fixture(params=STORAGE_KINDS)
def make_manager(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[MakeManager]:
    kind = request.param
    if kind == "memory":

        def make(**options: Any) -> UserSessionManager:
            options.setdefault("session_ttl", 3600)
            return UserSessionManager(InMemorySessionStorage(clock=clock), **options)

        yield make
    elif kind == "memory-async":
        loop = EventLoopThread()

        def make_async(**options: Any) -> SyncFacade:
            options.setdefault("session_ttl", 3600)
            storage = InMemorySessionStorage(clock=clock)
            return SyncFacade(AsyncUserSessionManager(storage, **options), loop)

        try:
            yield make_async
        finally:
            loop.close()
    elif kind in ("redis", "redis-async"):
        yield from redis_managers(request, clock, kind)
    elif kind in ("cluster", "cluster-async"):
        yield from cluster_managers(request, clock, kind)
    else:  # pragma: no cover - a new kind must be wired here
        raise AssertionError(f"unknown storage kind {kind}")
