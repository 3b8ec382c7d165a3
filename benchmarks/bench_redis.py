"""What a session costs on Redis, beside a hand-written floor and a peer.

    .venv/bin/python benchmarks/bench_redis.py            # own redis-server; N = 5000, 3 rounds
    .venv/bin/python benchmarks/bench_redis.py --url redis://host:6379/0
    .venv/bin/python benchmarks/bench_redis.py --smoke    # tiny N, one round

Three sides, on the same asyncio client (redis-py, hiredis when installed,
a `BlockingConnectionPool` as wide as the concurrency) and the same server,
in one run, at 1, 32 and 128 calls in flight:

- `floor`: what a session store cannot beat, one key per session:
  `SET key blob EX ttl`, `GET key`, `DEL key` (blob: the JSON of a session,
  the size of ours);
- `usersession`: `AsyncUserSessionManager` on `AsyncRedisSessionStorage`
  (default options: device binding on; the reads come one second after the
  creates, so each read's script also writes the touch);
- `starsessions`: `starsessions.stores.redis.RedisStore` (the store behind
  Starlette's server-side sessions), with the JSON a middleware would
  serialise: write, read, remove.

Rounds interleave the sides (the order rotates), so a noisy machine slows
all alike. Each round creates N sessions (10 per subject), reads each once
in random order, lists each subject once (usersession only), then deletes
each. Figures: median ops/s over the rounds, the ratio to the floor (same
round), and the server's CPU per operation (`INFO cpu`, user + system,
around each phase) with the `INFO commandstats` microseconds of the
commands the phase sent. `--json` writes everything.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import random
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from usersession import AsyncUserSessionManager, Device, ManualClock, SessionContext
from usersession.storage.redis import AsyncRedisSessionStorage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.redis_server import RedisServer  # the tests' throwaway server

try:
    from starsessions.stores.redis import RedisStore
except ImportError:  # the bench extra brings it
    RedisStore = None

START = 1_700_000_000
SESSION_TTL = 3600
PER_SUBJECT = 10
CONTEXT = SessionContext("203.0.113.7", Device("Firefox", "desktop"))
OPERATIONS = ("create", "read", "read_all", "delete")
SIDES = ("floor", "usersession", "starsessions")
BLOB = json.dumps(
    {
        "subject": "user:1234",
        "ip": CONTEXT.ip,
        "device": ["Firefox", "desktop"],
        "location": None,
        "created_at": START,
        "accessed_at": START,
        "expires_at": START + SESSION_TTL,
        "idle": None,
        "grace_ends_at": None,
        "renewed_by": None,
        "authenticated_at": START,
        "login": None,
    },
    separators=(",", ":"),
).encode()


async def in_parallel(calls: Sequence[Callable[[], Awaitable[Any]]], width: int) -> list[Any]:
    """Run `calls` with at most `width` in flight; results in order."""
    results: list[Any] = [None] * len(calls)
    position = iter(range(len(calls)))

    async def worker() -> None:
        for index in position:
            results[index] = await calls[index]()

    await asyncio.gather(*(worker() for _ in range(width)))
    return results


class ServerMeter:
    """Server CPU and per-command microseconds around a phase."""

    def __init__(self, admin: redis.Redis) -> None:
        self._admin = admin

    def snapshot(self) -> tuple[float, dict[str, tuple[int, int]]]:
        cpu = self._admin.info("cpu")
        stats = self._admin.info("commandstats")
        commands = {
            name.removeprefix("cmdstat_"): (int(value["calls"]), int(value["usec"]))
            for name, value in stats.items()
        }
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), commands

    @staticmethod
    def delta(
        before: tuple[float, dict[str, tuple[int, int]]],
        after: tuple[float, dict[str, tuple[int, int]]],
        count: int,
    ) -> tuple[float, float]:
        """Server CPU per operation (us) and commandstats us per operation."""
        usec = 0
        for name, (calls, spent) in after[1].items():
            if name in ("info",):
                continue
            usec += spent - before[1].get(name, (calls, spent))[1]
        return (after[0] - before[0]) * 1e6 / count, usec / count


Figures = dict[str, tuple[float, float, float]]
"""operation -> (ops/s, server CPU us/op, commandstats us/op)."""


async def phase(
    into: Figures,
    meter: ServerMeter,
    operation: str,
    calls: Sequence[Callable[[], Awaitable[Any]]],
    width: int,
) -> list[Any]:
    gc.collect()
    gc.disable()
    before = meter.snapshot()
    started = time.perf_counter()
    try:
        results = await in_parallel(calls, width)
    finally:
        elapsed = time.perf_counter() - started
        gc.enable()
    cpu, commands = ServerMeter.delta(before, meter.snapshot(), len(calls))
    into[operation] = (len(calls) / elapsed, cpu, commands)
    return results


def workload(n: int) -> tuple[list[str], list[int]]:
    """The subject of each session to create, and a shuffled read order."""
    subjects = [f"user:{index // PER_SUBJECT}" for index in range(n)]
    order = list(range(n))
    random.Random(n).shuffle(order)
    return subjects, order


async def run_floor(client: Any, meter: ServerMeter, n: int, width: int) -> Figures:
    figures: Figures = {}
    prefix = f"floor-{uuid.uuid4().hex[:8]}:"
    keys = [f"{prefix}{uuid.uuid4().hex}" for _ in range(n)]
    _, order = workload(n)
    await phase(
        figures,
        meter,
        "create",
        [lambda key=key: client.set(key, BLOB, ex=SESSION_TTL) for key in keys],
        width,
    )
    await phase(figures, meter, "read", [lambda key=keys[i]: client.get(key) for i in order], width)
    await phase(
        figures, meter, "delete", [lambda key=keys[i]: client.delete(key) for i in order], width
    )
    return figures


async def run_usersession(client: Any, meter: ServerMeter, n: int, width: int) -> Figures:
    figures: Figures = {}
    clock = ManualClock(START)
    storage = AsyncRedisSessionStorage(
        client, key_prefix=f"bench-{uuid.uuid4().hex[:8]}", clock=clock
    )
    manager = AsyncUserSessionManager(storage, session_ttl=SESSION_TTL)
    subjects, order = workload(n)
    ids = await phase(
        figures,
        meter,
        "create",
        [lambda subject=subject: manager.create(subject, CONTEXT) for subject in subjects],
        width,
    )
    clock.advance(1)  # so that every read writes its touch
    await phase(
        figures,
        meter,
        "read",
        [lambda i=i: manager.read(subjects[i], ids[i], CONTEXT) for i in order],
        width,
    )
    await phase(
        figures,
        meter,
        "read_all",
        [lambda subject=subject: manager.read_all(subject) for subject in sorted(set(subjects))],
        width,
    )
    await phase(
        figures,
        meter,
        "delete",
        [lambda i=i: manager.delete(subjects[i], ids[i]) for i in order],
        width,
    )
    return figures


async def run_starsessions(client: Any, meter: ServerMeter, n: int, width: int) -> Figures:
    figures: Figures = {}
    if RedisStore is None:
        return figures
    store = RedisStore(connection=client, prefix=f"star-{uuid.uuid4().hex[:8]}.")
    ids = [uuid.uuid4().hex for _ in range(n)]
    _, order = workload(n)
    session = json.loads(BLOB)

    async def write(session_id: str) -> str:
        # What the middleware does: serialise the session, then write it.
        return str(await store.write(session_id, json.dumps(session).encode(), 0, SESSION_TTL))

    async def read(session_id: str) -> object:
        return json.loads(await store.read(session_id, SESSION_TTL) or b"{}")

    await phase(figures, meter, "create", [lambda i=i: write(i) for i in ids], width)
    await phase(figures, meter, "read", [lambda i=ids[i]: read(i) for i in order], width)
    await phase(figures, meter, "delete", [lambda i=ids[i]: store.remove(i) for i in order], width)
    return figures


RUNNERS = {"floor": run_floor, "usersession": run_usersession, "starsessions": run_starsessions}


async def measure(side: str, url: str, n: int, width: int, meter: ServerMeter) -> Figures:
    pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=width, timeout=10)
    client = redis.asyncio.Redis(connection_pool=pool)
    try:
        # Every connection of the pool open before the clock starts.
        await in_parallel([client.ping] * width * 2, width)
        return await RUNNERS[side](client, meter, n, width)
    finally:
        await client.aclose()
        await pool.disconnect()


def number(value: float) -> str:
    return f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"


def report(
    samples: dict[tuple[str, int, str], list[tuple[float, float, float]]], widths: list[int]
) -> str:
    header = [
        "op",
        "in flight",
        "floor ops/s",
        "usersession ops/s",
        "starsessions ops/s",
        "server CPU us/op (floor/usersession/starsessions)",
    ]
    rows = [header]
    for operation in OPERATIONS:
        for width in widths:
            medians: dict[str, tuple[float, float, float] | None] = {}
            for side in SIDES:
                values = samples.get((side, width, operation), [])
                medians[side] = (
                    tuple(statistics.median(v[k] for v in values) for k in range(3))  # type: ignore[misc]
                    if values
                    else None
                )
            floor = medians["floor"]
            cells = [operation, str(width)]
            for side in SIDES:
                median = medians[side]
                if median is None:
                    cells.append("-")
                    continue
                cell = f"{number(median[0])}"
                if side != "floor" and floor is not None:
                    cell += f" ({median[0] / floor[0]:.2f}x)"
                cells.append(cell)
            cells.append(" / ".join("-" if m is None else f"{m[1]:.1f}" for m in medians.values()))
            rows.append(cells)
    column_widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(size) for cell, size in zip(row, column_widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * size for size in column_widths))
    return "\n".join(lines)


def targets(
    samples: dict[tuple[str, int, str], list[tuple[float, float, float]]], widths: list[int]
) -> list[str]:
    """Issue 11's targets: ratios to the floor, median over the rounds."""

    def median(side: str, width: int, operation: str, k: int) -> float:
        return statistics.median(v[k] for v in samples[(side, width, operation)])

    lines = []
    for operation, goal in (("read", 0.55), ("create", 0.70), ("delete", 0.70)):
        ratios = [
            median("usersession", w, operation, 0) / median("floor", w, operation, 0)
            for w in widths
        ]
        met = "met" if min(ratios) >= goal else "MISSED"
        shown = ", ".join(f"{r:.2f}x" for r in ratios)
        lines.append(f"  {operation:<7} >= {goal:.2f}x of the floor at every width: {shown}  {met}")
    cpu = [median("usersession", w, "read", 1) / median("floor", w, "read", 1) for w in widths]
    shown = ", ".join(f"{r:.2f}x" for r in cpu)
    met = "met" if max(cpu) <= 3 else "MISSED"
    lines.append(f"  server CPU per read <= 3x a GET: {shown}  {met}")
    return lines


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="use this Redis server instead of starting one")
    parser.add_argument("-n", type=int, default=5000, help="sessions per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--widths", default="1,32,128", help="calls in flight (default 1,32,128)")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--smoke", action="store_true", help="tiny N, one round (a quick check)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.rounds = 300, 1
    args.widths = [int(width) for width in args.widths.split(",")]
    if args.n < PER_SUBJECT or args.rounds < 1 or min(args.widths) < 1:
        parser.error(f"-n must be >= {PER_SUBJECT}, --rounds and every width >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    server: RedisServer | None = None
    url = args.url
    if url is None:
        binary = shutil.which("redis-server")
        if binary is None:
            print(
                "bench_redis: no redis-server installed; pass --url or install it", file=sys.stderr
            )
            return 2
        server = RedisServer(binary)
        server.start()
        url = server.url
    admin = redis.Redis.from_url(url)
    meter = ServerMeter(admin)
    try:
        info = admin.info("server")
        hiredis = redis.utils.HIREDIS_AVAILABLE
        print(
            f"usersession Redis benchmark: N = {args.n}, {args.rounds} round(s), redis "
            f"{info['redis_version']}, redis-py {redis.__version__}"
            f"{' + hiredis' if hiredis else ''}, Python {platform.python_version()}, "
            f"{platform.machine()}; starsessions {'present' if RedisStore else 'absent'}"
        )
        samples: dict[tuple[str, int, str], list[tuple[float, float, float]]] = {}
        for round_index in range(args.rounds):
            for width in args.widths:
                shift = round_index % len(SIDES)
                for side in SIDES[shift:] + SIDES[:shift]:
                    figures = asyncio.run(measure(side, url, args.n, width, meter))
                    for operation, value in figures.items():
                        samples.setdefault((side, width, operation), []).append(value)
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
        print(report(samples, args.widths))
        print("targets (issue 11):")
        print("\n".join(targets(samples, args.widths)))
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "n": args.n,
                        "rounds": args.rounds,
                        "redis": info["redis_version"],
                        "samples": [
                            {"side": side, "in_flight": width, "operation": operation, "runs": runs}
                            for (side, width, operation), runs in samples.items()
                        ],
                    },
                    indent=1,
                )
            )
    finally:
        admin.close()
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
