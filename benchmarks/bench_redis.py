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

Each round creates N sessions per side (10 per subject), reads each once in
random order, lists each subject once (usersession only), then deletes
each, in batches of 500 (4x the width when larger): every batch runs on
every side back to back, the order rotating, so the sides of one batch see
the same machine (a shared machine's noise hits them alike). Figures: the
median ops/s over all batches of all rounds; the ratio to the floor taken
batch by batch (median of the per-batch ratios); the server's CPU per
operation (`INFO cpu`, user + system, around each batch), with the `INFO
commandstats` microseconds in the JSON. `--json` writes everything.
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


Sample = tuple[float, float, float]
"""One batch of one side: (ops/s, server CPU us/op, commandstats us/op)."""

Samples = dict[tuple[str, int, str], list[Sample]]


def workload(n: int) -> tuple[list[str], list[int]]:
    """The subject of each session to create, and a shuffled read order."""
    subjects = [f"user:{index // PER_SUBJECT}" for index in range(n)]
    order = list(range(n))
    random.Random(n).shuffle(order)
    return subjects, order


class Side:
    """One side's client and sessions; `calls(operation, batch)` gives the
    calls of one batch (the sessions whose positions `batch` holds)."""

    def __init__(self, name: str, client: Any, n: int) -> None:
        self.name = name
        self.client = client
        self.subjects, self.order = workload(n)
        self.ids: list[Any] = [None] * n
        self.clock = ManualClock(START)
        tag = uuid.uuid4().hex[:8]
        self.prefix = f"floor-{tag}:"
        if name == "usersession":
            storage = AsyncRedisSessionStorage(client, key_prefix=f"bench-{tag}", clock=self.clock)
            self.manager = AsyncUserSessionManager(storage, session_ttl=SESSION_TTL)
        elif name == "starsessions":
            self.store = RedisStore(connection=client, prefix=f"star-{tag}.")
            self.session = json.loads(BLOB)

    def calls(self, operation: str, batch: range) -> list[Callable[[], Awaitable[Any]]]:
        name, subjects, ids = self.name, self.subjects, self.ids
        if operation == "create":
            create = {"floor": self._set, "starsessions": self._write}.get(name, self._create)
            return [lambda i=i: create(i) for i in batch]
        if operation == "read_all":
            distinct = sorted({subjects[i] for i in batch})
            return [lambda s=s: self.manager.read_all(s) for s in distinct]
        positions = [self.order[i] for i in batch]
        if operation == "read":
            if name == "floor":
                return [lambda i=i: self.client.get(ids[i]) for i in positions]
            if name == "starsessions":
                return [lambda i=i: self._read(ids[i]) for i in positions]
            return [lambda i=i: self.manager.read(subjects[i], ids[i], CONTEXT) for i in positions]
        if name == "floor":
            return [lambda i=i: self.client.delete(ids[i]) for i in positions]
        if name == "starsessions":
            return [lambda i=i: self.store.remove(ids[i]) for i in positions]
        return [lambda i=i: self.manager.delete(subjects[i], ids[i]) for i in positions]

    async def _set(self, index: int) -> None:
        key = self.ids[index] = f"{self.prefix}{uuid.uuid4().hex}"
        await self.client.set(key, BLOB, ex=SESSION_TTL)

    async def _write(self, index: int) -> None:
        # What the middleware does: serialise the session, then write it.
        session_id = self.ids[index] = uuid.uuid4().hex
        await self.store.write(session_id, json.dumps(self.session).encode(), 0, SESSION_TTL)

    async def _read(self, session_id: str) -> object:
        return json.loads(await self.store.read(session_id, SESSION_TTL) or b"{}")

    async def _create(self, index: int) -> None:
        self.ids[index] = await self.manager.create(self.subjects[index], CONTEXT)


async def timed_batch(
    meter: ServerMeter, calls: Sequence[Callable[[], Awaitable[Any]]], width: int
) -> Sample:
    gc.disable()
    before = meter.snapshot()
    started = time.perf_counter()
    try:
        await in_parallel(calls, width)
    finally:
        elapsed = time.perf_counter() - started
        gc.enable()
    cpu, commands = ServerMeter.delta(before, meter.snapshot(), len(calls))
    return len(calls) / elapsed, cpu, commands


async def measure_width(url: str, n: int, width: int, meter: ServerMeter, into: Samples) -> None:
    """Every side at `width` calls in flight, in batches: each batch runs on
    every side back to back (the order rotating), so the sides of one batch
    see the same machine; ratios are taken batch by batch."""
    names = [name for name in SIDES if name != "starsessions" or RedisStore is not None]
    clients = []
    for _ in names:
        pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=width, timeout=10)
        client = redis.asyncio.Redis(connection_pool=pool)
        # Every connection of the pool open before the clock starts.
        await in_parallel([client.ping] * width * 2, width)
        clients.append(client)
    sides = [Side(name, client, n) for name, client in zip(names, clients, strict=True)]
    size = max(500, 4 * width)
    batches = [range(start, min(start + size, n)) for start in range(0, n, size)]
    try:
        for operation in OPERATIONS:
            if operation == "read":
                for side in sides:
                    side.clock.advance(1)  # so that every read writes its touch
            for number, batch in enumerate(batches):
                shift = number % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    if operation == "read_all" and side.name != "usersession":
                        continue
                    sample = await timed_batch(meter, side.calls(operation, batch), width)
                    into.setdefault((side.name, width, operation), []).append(sample)
    finally:
        for client in clients:
            await client.aclose()
            await client.connection_pool.disconnect()


def number(value: float) -> str:
    return f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"


def paired(samples: Samples, side: str, width: int, operation: str, k: int) -> float:
    """The median over batches of side / floor, batch by batch (each pair
    ran back to back)."""
    mine = samples[(side, width, operation)]
    floor = samples[("floor", width, operation)]
    return statistics.median(a[k] / b[k] for a, b in zip(mine, floor, strict=True))


def report(samples: Samples, widths: list[int]) -> str:
    header = ["op", "in flight", *(f"{side} ops/s" for side in SIDES)]
    header.append("server CPU us/op (" + " / ".join(SIDES) + ")")
    rows = [header]
    for operation in OPERATIONS:
        for width in widths:
            cells = [operation, str(width)]
            cpu = []
            for side in SIDES:
                values = samples.get((side, width, operation))
                if not values:
                    cells.append("-")
                    cpu.append("-")
                    continue
                cell = number(statistics.median(v[0] for v in values))
                if side != "floor" and ("floor", width, operation) in samples:
                    cell += f" ({paired(samples, side, width, operation, 0):.2f}x)"
                cells.append(cell)
                cpu.append(f"{statistics.median(v[1] for v in values):.1f}")
            cells.append(" / ".join(cpu))
            rows.append(cells)
    column_widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(size) for cell, size in zip(row, column_widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * size for size in column_widths))
    return "\n".join(lines)


def targets(samples: Samples, widths: list[int]) -> list[str]:
    """Issue 11's targets: paired ratios to the floor, median over batches."""
    lines = []
    for operation, goal in (("read", 0.55), ("create", 0.70), ("delete", 0.70)):
        ratios = [paired(samples, "usersession", w, operation, 0) for w in widths]
        met = "met" if min(ratios) >= goal else "MISSED"
        shown = ", ".join(f"{r:.2f}x" for r in ratios)
        lines.append(f"  {operation:<7} >= {goal:.2f}x of the floor at every width: {shown}  {met}")
    cpu = [paired(samples, "usersession", w, "read", 1) for w in widths]
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
        samples: Samples = {}
        for round_index in range(args.rounds):
            for width in args.widths:
                asyncio.run(measure_width(url, args.n, width, meter, samples))
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
