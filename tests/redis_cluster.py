"""Redis Cluster and Sentinel on loopback, for the tests.

- `RedisClusterOnLoopback`: three `redis-server --cluster-enabled yes`
  masters on free ports, joined by `redis-cli --cluster create`; one per
  test session (`redis_cluster` fixture), shared by every test that needs
  it, which isolate by key prefix.
- `SentinelOnLoopback`: a primary, a replica and one sentinel
  (`redis-server --sentinel`, so no separate binary is needed), with a
  short `down-after-milliseconds` so that a failover takes a second or two.

Without the binaries the tests that need them are skipped, saying why, or
fail under CI (.ci/run installs redis-server, which brings redis-cli).

`strict_scripts` registers the storage's scripts behind a guard that makes
a script fail if it touches a key it did not declare in KEYS: the cluster
kinds of `make_manager` run with it, so the whole behaviour suite checks
that Redis Cluster (and Dragonfly) get every key they must route.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
import redis.sentinel

from tests.redis_server import (
    EventLoopThread,
    RedisServer,
    SyncFacade,
    free_port,
    server_binary,
    unique_prefix,
)
from usersession import AsyncUserSessionManager, ManualClock, UserSessionManager
from usersession.storage._redis_scripts import SCRIPT_NAMES, SOURCES, Scripts
from usersession.storage.redis import AsyncRedisSessionStorage, RedisSessionStorage


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class RedisClusterOnLoopback:
    """Three cluster masters on 127.0.0.1, slots split evenly, no replicas."""

    def __init__(self, binary: str, cli: str) -> None:
        self.cli = cli
        self.nodes = [
            RedisServer(
                binary,
                None,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                str(free_port()),
                "--cluster-node-timeout",
                "2000",
            )
            for _ in range(3)
        ]

    @property
    def port(self) -> int:
        """The port of one node (a client discovers the others)."""
        return self.nodes[0].port

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{node.port}" for node in self.nodes),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            for node in self.nodes:
                client = node.client()
                wait_for(
                    lambda client=client: client.cluster("info")["cluster_state"] == "ok",
                    30,
                    "the cluster to settle",
                )
                client.close()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def client(self, **options: Any) -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster(host="127.0.0.1", port=self.port, **options)

    def async_client(self, **options: Any) -> redis.asyncio.cluster.RedisCluster:
        return redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=self.port, **options)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterOnLoopback]:
    """The test session's 3-master cluster, shared; tests isolate by key prefix."""
    cluster = RedisClusterOnLoopback(server_binary(), server_binary("redis-cli"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


class SentinelOnLoopback:
    """A primary, its replica and one sentinel watching them (quorum 1)."""

    NAME = "usersession"

    def __init__(self, binary: str) -> None:
        # No 5 s wait before the replica's first sync.
        self.primary = RedisServer(binary, None, "--repl-diskless-sync-delay", "0")
        self.replica = RedisServer(binary, None, "--replicaof", "127.0.0.1", str(self.primary_port))
        self.sentinel = RedisServer(binary)

    @property
    def primary_port(self) -> int:
        return self.primary.port

    def start(self) -> None:
        try:
            self.primary.start()
            self.replica.start()
            replica = self.replica.client()
            wait_for(
                lambda: replica.info("replication")["master_link_status"] == "up",
                30,
                "the replica to sync",
            )
            replica.close()
            config = f"{self.sentinel.dir}/sentinel.conf"
            with open(config, "w") as file:
                file.write(
                    f"port {self.sentinel.port}\n"
                    "bind 127.0.0.1\n"
                    f"sentinel monitor {self.NAME} 127.0.0.1 {self.primary.port} 1\n"
                    f"sentinel down-after-milliseconds {self.NAME} 300\n"
                    f"sentinel failover-timeout {self.NAME} 3000\n"
                )
            self.sentinel.config_file = [config]
            self.sentinel.options = ["--sentinel"]
            self.sentinel.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.primary):
            server.stop()

    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.sentinel.port)]


# -- scripts that refuse undeclared keys -------------------------------------------

_STRICT_PRELUDE = """
local declared = {}
for i = 1, #KEYS do declared[KEYS[i]] = true end
local real_redis = redis
local redis = setmetatable({
  call = function(command, key, ...)
    if key ~= nil and not declared[key] then
      error('undeclared key ' .. key .. ' in ' .. command)
    end
    return real_redis.call(command, key, ...)
  end,
}, {__index = real_redis})
"""


def strict_scripts(register: Callable[[str], Any]) -> Scripts[Any]:
    """The storage's scripts, each failing on a key it did not declare."""
    return Scripts(*(register(_STRICT_PRELUDE + SOURCES[name]) for name in SCRIPT_NAMES))


def cluster_managers(
    request: pytest.FixtureRequest, clock: ManualClock, kind: str
) -> Iterator[Callable[..., Any]]:
    """`make_manager` for the kinds "cluster" and "cluster-async": a fresh
    storage (its own key prefix) on the session's cluster, with scripts
    that refuse undeclared keys."""
    cluster: RedisClusterOnLoopback = request.getfixturevalue("redis_cluster")
    if kind == "cluster":
        client = cluster.client()

        def make(**options: Any) -> UserSessionManager:
            options.setdefault("session_ttl", 3600)
            storage = RedisSessionStorage(client, key_prefix=unique_prefix(), clock=clock)
            storage._scripts = strict_scripts(client.register_script)
            return UserSessionManager(storage, **options)

        try:
            yield make
        finally:
            client.close()
        return

    loop = EventLoopThread()
    async_client = cluster.async_client()

    def make_async(**options: Any) -> SyncFacade:
        options.setdefault("session_ttl", 3600)
        storage = AsyncRedisSessionStorage(async_client, key_prefix=unique_prefix(), clock=clock)
        storage._scripts = strict_scripts(async_client.register_script)
        return SyncFacade(AsyncUserSessionManager(storage, **options), loop)

    try:
        yield make_async
    finally:
        loop.run(async_client.aclose())
        loop.close()
