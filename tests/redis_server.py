"""A throwaway `redis-server` for the tests (and benchmarks/bench_redis.py).

The server listens on a free loopback port, keeps nothing on disk
(`--save '' --appendonly no`) and is stopped when the test session ends.
Without a `redis-server` binary the Redis tests fail with a clear message
when the environment variable CI is set (.ci/run installs the server), and
are skipped, saying why, otherwise.

Also here: the `make_manager` factories for the "redis" and "redis-async"
storage kinds of tests/conftest.py, and `SyncFacade`, which lets the sync
behaviour tests drive an `AsyncUserSessionManager`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio

from usersession import AsyncUserSessionManager, ManualClock, UserSessionManager
from usersession.storage.redis import AsyncRedisSessionStorage, RedisSessionStorage

T = TypeVar("T")

NO_SERVER = (
    "redis-server is not installed: the Redis tests need a real server "
    "(apt-get install redis-server; .ci/run installs it)."
)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One `redis-server` process on 127.0.0.1, restartable on the same port."""

    def __init__(self, binary: str, port: int | None = None, *options: str) -> None:
        self.binary = binary
        self.port = free_port() if port is None else port
        self.options = list(options)
        self.config_file: list[str] = []
        self.dir = tempfile.mkdtemp(prefix="usersession-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        # A config file (a sentinel's) must come first on the command line.
        command = [self.binary, *self.config_file]
        command += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        if not self.config_file:
            command += ["--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            [*command, *self.options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"redis-server did not start on port {self.port}"
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM; it saves nothing) and wait for it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop and start again on the same port: an empty server."""
        self.stop()
        self.start()

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(port=self.port, **options)

    def async_client(self, **options: Any) -> redis.asyncio.Redis:
        return redis.asyncio.Redis(port=self.port, **options)


def server_binary(name: str = "redis-server") -> str:
    """The path of `redis-server` (or `redis-cli`); fails (CI) or skips
    (locally) without one."""
    binary = shutil.which(name)
    if binary is None:
        why = NO_SERVER.replace("redis-server is", f"{name} is")
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return binary


def start_server() -> Iterator[RedisServer]:
    """A started server, stopped afterwards (the body of the fixtures)."""
    server = RedisServer(server_binary())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The test session's Redis server, shared; tests isolate by key prefix."""
    yield from start_server()


_prefixes = itertools.count()


def unique_prefix() -> str:
    """A key prefix no other test (or test run on this server) uses."""
    return f"test-{uuid.uuid4().hex[:8]}-{next(_prefixes)}"


class EventLoopThread:
    """One event loop running in a daemon thread; `run(coroutine)` waits for
    the result from any thread. Several threads calling at once interleave
    their coroutines on that one loop, as requests would in an async server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SyncFacade:
    """An `AsyncUserSessionManager` (or its storage) with the sync calling
    convention: each coroutine method runs to completion on one event loop,
    so the sync behaviour tests drive the async manager unchanged. Its
    `storage` is wrapped too, so a test can put a second (sync) manager on it."""

    def __init__(self, wrapped: Any, loop: EventLoopThread) -> None:
        self._wrapped = wrapped
        self._loop = loop

    @property
    def wrapped(self) -> Any:
        return self._wrapped

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._wrapped, name)
        if name == "storage":
            return SyncFacade(value, self._loop)
        if inspect.iscoroutinefunction(value):
            loop = self._loop

            def run(*args: Any, **kwargs: Any) -> Any:
                return loop.run(value(*args, **kwargs))

            return run
        return value


def redis_managers(
    request: pytest.FixtureRequest, clock: ManualClock, kind: str
) -> Iterator[Callable[..., Any]]:
    """`make_manager` for the kinds "redis" and "redis-async": each call gets
    a fresh storage (its own key prefix) on the session's server."""
    server: RedisServer = request.getfixturevalue("redis_server")
    if kind == "redis":
        client = server.client()

        def make(**options: Any) -> UserSessionManager:
            options.setdefault("session_ttl", 3600)
            storage = RedisSessionStorage(client, key_prefix=unique_prefix(), clock=clock)
            return UserSessionManager(storage, **options)

        try:
            yield make
        finally:
            client.close()
        return

    loop = EventLoopThread()
    async_client = server.async_client()

    def make_async(**options: Any) -> SyncFacade:
        options.setdefault("session_ttl", 3600)
        storage = AsyncRedisSessionStorage(async_client, key_prefix=unique_prefix(), clock=clock)
        return SyncFacade(AsyncUserSessionManager(storage, **options), loop)

    try:
        yield make_async
    finally:
        loop.run(async_client.aclose())
        loop.close()


class LossyProxy:
    """A TCP proxy on loopback in front of a Redis server that can lose a
    reply: `lose_reply(b"EVALSHA", skip=n)` lets the server run the
    (n+1)-th EVALSHA sent from now on, then drops its reply and closes the
    client's connection, as a network failure after the fact would. The
    client sees a ConnectionError for a command the server did run, and
    redis-py retries it on a new connection."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._command: bytes | None = None
        self._skip = 0
        self._armed: set[int] = set()
        self.lost = 0
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_reply(self, command: bytes = b"EVALSHA", skip: int = 0) -> None:
        """Lose the reply to the (skip+1)-th `command` sent from now on."""
        with self._lock:
            self._command, self._skip = command, skip

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._target_port))
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._upstream, args=(client, server), daemon=True).start()
            threading.Thread(target=self._downstream, args=(client, server), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket) -> None:
        marker = b""
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._close(client, server)
                return
            with self._lock:
                if self._command is not None:
                    marker = f"${len(self._command)}\r\n".encode() + self._command + b"\r\n"
                    if marker in data.upper():
                        if self._skip == 0:
                            self._armed.add(id(server))
                            self._command = None
                        else:
                            self._skip -= 1
            try:
                server.sendall(data)
            except OSError:
                self._close(client, server)
                return

    def _downstream(self, client: socket.socket, server: socket.socket) -> None:
        while True:
            try:
                data = server.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._close(client, server)
                return
            with self._lock:
                lose = id(server) in self._armed
                self._armed.discard(id(server))
                if lose:
                    self.lost += 1
            if lose:
                self._close(client, server)
                return
            try:
                client.sendall(data)
            except OSError:
                self._close(client, server)
                return

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        self._close(*sockets)
