"""What scaling out costs per operation: the Redis storages beside the in-memory one.

    .venv/bin/python benchmarks/bench_redis.py            # own redis-server; N = 5000, 3 rounds
    .venv/bin/python benchmarks/bench_redis.py --url redis://host:6379/0
    .venv/bin/python benchmarks/bench_redis.py --smoke    # tiny N, one round

Measures operations per second of the manager's create, read, read_all and
delete on four sides, in one run and in interleaved rounds (each round runs
every side once, the order rotating, so that a noisy machine slows all alike):

- `memory`: `UserSessionManager` on `InMemorySessionStorage` (the floor);
- `redis`: `UserSessionManager` on `RedisSessionStorage`, one call at a time;
- `redis-async`: `AsyncUserSessionManager` on `AsyncRedisSessionStorage`, one
  call at a time (latency-bound, like a single request handler);
- `redis-async x32`: the same with 32 coroutines at once (what an async web
  server with concurrent requests sees: round trips overlap).

Each round creates N sessions (10 per subject), reads each once in random
order, lists each subject once (`read_all`: ops/s counts calls, 10 sessions
each), then deletes each session. A `ManualClock` keeps everything alive.
Without `--url` a throwaway `redis-server` is started on a free loopback port
(no persistence), as the tests do. Figures: median ops/s over the rounds, with
min-max, and the median's ratio to the in-memory side.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from usersession import (
    AsyncUserSessionManager,
    Device,
    InMemorySessionStorage,
    ManualClock,
    SessionContext,
    UserSessionManager,
)
from usersession.storage.redis import AsyncRedisSessionStorage, RedisSessionStorage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.redis_server import RedisServer  # the tests' throwaway server

START = 1_700_000_000
SESSION_TTL = 3600
PER_SUBJECT = 10
CONCURRENCY = 32
CONTEXT = SessionContext("203.0.113.7", Device("Firefox", "desktop"))
OPERATIONS = ("create", "read", "read_all", "delete")
SIDES = ("memory", "redis", "redis-async", f"redis-async x{CONCURRENCY}")


@contextmanager
def timed(into: dict[str, float], operation: str, count: int) -> Iterator[None]:
    """Record `count / seconds` under `operation`; the GC is off meanwhile."""
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        gc.enable()
        into[operation] = count / elapsed


def workload(n: int) -> tuple[list[str], list[int]]:
    """The subject of each session to create, and a shuffled read order."""
    subjects = [f"user:{index // PER_SUBJECT}" for index in range(n)]
    order = list(range(n))
    random.Random(n).shuffle(order)
    return subjects, order


def run_sync(manager: UserSessionManager, n: int) -> dict[str, float]:
    subjects, order = workload(n)
    distinct = sorted(set(subjects))
    figures: dict[str, float] = {}
    create, read, read_all, delete = (
        manager.create,
        manager.read,
        manager.read_all,
        manager.delete,
    )
    with timed(figures, "create", n):
        ids = [create(subject, CONTEXT) for subject in subjects]
    with timed(figures, "read", n):
        for index in order:
            read(subjects[index], ids[index], CONTEXT)
    with timed(figures, "read_all", len(distinct)):
        for subject in distinct:
            read_all(subject)
    with timed(figures, "delete", n):
        for index in order:
            delete(subjects[index], ids[index])
    return figures


async def in_parallel(calls: Sequence[Callable[[], Awaitable[Any]]], width: int) -> list[Any]:
    """Run `calls` with at most `width` in flight; results in order."""
    results: list[Any] = [None] * len(calls)
    position = iter(range(len(calls)))

    async def worker() -> None:
        for index in position:
            results[index] = await calls[index]()

    await asyncio.gather(*(worker() for _ in range(width)))
    return results


async def run_async(manager: AsyncUserSessionManager, n: int, width: int) -> dict[str, float]:
    subjects, order = workload(n)
    distinct = sorted(set(subjects))
    figures: dict[str, float] = {}

    def creating(subject: str) -> Callable[[], Awaitable[str]]:
        return lambda: manager.create(subject, CONTEXT)

    with timed(figures, "create", n):
        ids = await in_parallel([creating(subject) for subject in subjects], width)

    def reading(index: int) -> Callable[[], Awaitable[Any]]:
        return lambda: manager.read(subjects[index], ids[index], CONTEXT)

    with timed(figures, "read", n):
        await in_parallel([reading(index) for index in order], width)

    def listing(subject: str) -> Callable[[], Awaitable[Any]]:
        return lambda: manager.read_all(subject)

    with timed(figures, "read_all", len(distinct)):
        await in_parallel([listing(subject) for subject in distinct], width)

    def deleting(index: int) -> Callable[[], Awaitable[None]]:
        return lambda: manager.delete(subjects[index], ids[index])

    with timed(figures, "delete", n):
        await in_parallel([deleting(index) for index in order], width)
    return figures


def prefix() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}"


def measure(side: str, url: str, n: int, loop: asyncio.AbstractEventLoop) -> dict[str, float]:
    clock = ManualClock(START)
    if side == "memory":
        storage = InMemorySessionStorage(clock=clock)
        return run_sync(UserSessionManager(storage, session_ttl=SESSION_TTL), n)
    if side == "redis":
        client = redis.Redis.from_url(url)
        try:
            redis_storage = RedisSessionStorage(client, key_prefix=prefix(), clock=clock)
            return run_sync(UserSessionManager(redis_storage, session_ttl=SESSION_TTL), n)
        finally:
            client.close()

    width = CONCURRENCY if side.endswith(f"x{CONCURRENCY}") else 1

    async def measure_async() -> dict[str, float]:
        client = redis.asyncio.Redis.from_url(url, max_connections=CONCURRENCY)
        try:
            async_storage = AsyncRedisSessionStorage(client, key_prefix=prefix(), clock=clock)
            manager = AsyncUserSessionManager(async_storage, session_ttl=SESSION_TTL)
            return await run_async(manager, n, width)
        finally:
            await client.aclose()

    return loop.run_until_complete(measure_async())


def ping_rate(url: str, count: int) -> float:
    """PINGs per second on one connection: the round-trip floor of this machine."""
    client = redis.Redis.from_url(url)
    try:
        client.ping()
        started = time.perf_counter()
        for _ in range(count):
            client.ping()
        return count / (time.perf_counter() - started)
    finally:
        client.close()


def table(samples: dict[str, dict[str, list[float]]]) -> str:
    def number(value: float) -> str:
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"

    header = ["operation", *SIDES]
    rows = [header]
    for operation in OPERATIONS:
        floor = statistics.median(samples["memory"][operation])
        cells = [operation]
        for side in SIDES:
            values = samples[side][operation]
            median = statistics.median(values)
            cell = f"{number(median)}/s ({number(min(values))}-{number(max(values))})"
            if side != "memory":
                cell += f" {floor / median:.0f}x slower"
            cells.append(cell)
        rows.append(cells)
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="use this Redis server instead of starting one")
    parser.add_argument("-n", type=int, default=5000, help="sessions per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--smoke", action="store_true", help="tiny N, one round (a quick check)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.rounds = 50, 1
    if args.n < PER_SUBJECT or args.rounds < 1:
        parser.error(f"-n must be >= {PER_SUBJECT} and --rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    server: RedisServer | None = None
    url = args.url
    if url is None:
        import shutil  # noqa: PLC0415

        binary = shutil.which("redis-server")
        if binary is None:
            print(
                "bench_redis: no redis-server installed; pass --url or install it", file=sys.stderr
            )
            return 2
        server = RedisServer(binary)
        server.start()
        url = server.url
    loop = asyncio.new_event_loop()
    try:
        info = redis.Redis.from_url(url).info("server")
        print(
            f"usersession Redis benchmark: N = {args.n}, {args.rounds} round(s), "
            f"redis {info['redis_version']} at {url}, Python {platform.python_version()}, "
            f"{platform.machine()}"
        )
        samples: dict[str, dict[str, list[float]]] = {
            side: {operation: [] for operation in OPERATIONS} for side in SIDES
        }
        pings = []
        for round_index in range(args.rounds):
            shift = round_index % len(SIDES)
            for side in SIDES[shift:] + SIDES[:shift]:
                for operation, value in measure(side, url, args.n, loop).items():
                    samples[side][operation].append(value)
            pings.append(ping_rate(url, args.n))
        print(table(samples))
        print(
            f"round-trip floor: {statistics.median(pings) / 1e3:.1f}k PING/s on one connection "
            f"(a create, a delete: one round trip; a read: two, HMGET then the touch script)"
        )
    finally:
        loop.close()
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
