"""Where usersession's time and bytes go, per operation (cProfile, tracemalloc).

    .venv/bin/python benchmarks/profile_usersession.py [--n 100000] [--top 12]

For create, read, read_all, delete, delete_all and the sweep it prints:
the plain time per call (no profiler), then the functions that took the
time under cProfile (own time per operation, calls per operation). cProfile
charges every Python call a fixed overhead, so its nanoseconds are inflated;
read its call counts and its ranking, and the plain time for the cost. Then
tracemalloc groups the bytes one stored session costs by the line that
allocated them, and a few micro-timings price the alternatives that the
findings in the report point at.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import cProfile
import gc
import hashlib
import hmac
import pstats
import time
import timeit
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import CONTEXT, SESSION_TTL, START, Workload, build
from usersession import ManualClock
from usersession.ids import session_handle

SRC = str(Path(__file__).resolve().parent.parent / "src")


def profiled(label: str, per: int, work: Callable[[], Any], top: int) -> None:
    """Run `work` once plainly timed, report ns per call, then its profile."""
    profile = cProfile.Profile()
    start = time.perf_counter_ns()
    profile.enable()
    work()
    profile.disable()
    spent = time.perf_counter_ns() - start
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, name), (_cc, calls, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename.replace(SRC + "/", "") if SRC in filename else Path(filename).name
        rows.append((own, calls, f"{where}:{line}({name})" if line else name))
    rows.sort(reverse=True)
    total_own = sum(own for own, _calls, _name in rows) or 1
    print(f"\n== {label}: {spent / per:,.0f} ns/call under cProfile")
    print(f"   {'own ns/call':>12} {'share':>6} {'calls/call':>10}  function")
    for own, calls, name in rows[:top]:
        share = own / total_own
        print(f"   {own * 1e9 / per:12,.0f} {share:6.1%} {calls / per:10.2f}  {name}")


def plain(work: Callable[[], Any], per: int) -> float:
    start = time.perf_counter_ns()
    work()
    return (time.perf_counter_ns() - start) / per


def profile_operations(n: int, top: int) -> None:
    workload = Workload(n, seed=0)
    context = CONTEXT
    keys = list(workload.subjects)

    def fresh() -> tuple[Any, ManualClock]:
        clock = ManualClock(START)
        return build("usersession", clock), clock

    def filled() -> tuple[Any, ManualClock, list[str]]:
        api, clock = fresh()
        create = api.create
        ids = [create(subject, context) for subject in workload.creates]
        clock.advance(1)
        return api, clock, ids

    # Plain timings first (no profiler): what each operation really costs.
    print(f"plain ns per call at N={n:,} (gc off, one pass):")
    gc.disable()
    api, _clock = fresh()
    create = api.create
    print(f"  create      {plain(lambda: [create(s, context) for s in workload.creates], n):8,.0f}")
    api, _clock, ids = filled()
    pairs = workload.shuffled_pairs(ids)
    read, read_all, delete = api.read, api.read_all, api.delete

    def read_each() -> None:
        for subject, session_id in pairs:
            read(subject, session_id, context)

    def list_each() -> None:
        for key in keys:
            read_all(key)

    def delete_each() -> None:
        for subject, session_id in pairs:
            delete(subject, session_id)

    print(f"  read        {plain(read_each, n):8,.0f}")
    print(f"  read_all    {plain(list_each, len(keys)):8,.0f}  (first listing: handles computed)")
    print(f"  read_all    {plain(list_each, len(keys)):8,.0f}  (again: handles cached)")
    print(f"  delete      {plain(delete_each, n):8,.0f}")
    api, _clock, ids = filled()
    delete_all = api.delete_all
    print(f"  delete_all  {plain(lambda: [delete_all(k) for k in keys], len(keys)):8,.0f}")
    api, clock, ids = filled()
    now = clock.advance(SESSION_TTL)
    print(f"  sweep       {plain(lambda: api.collect(now), n):8,.0f}  (per eviction)")
    gc.enable()

    # The same under cProfile.
    api, _clock = fresh()
    create = api.create
    profiled("create", n, lambda: [create(s, context) for s in workload.creates], top)
    api, _clock, ids = filled()
    pairs = workload.shuffled_pairs(ids)
    read, read_all, delete = api.read, api.read_all, api.delete
    profiled("read (touching)", n, read_each, top)
    profiled("read_all, first listing", len(keys), list_each, top)
    profiled("read_all, again", len(keys), list_each, top)
    profiled("delete", n, delete_each, top)
    api, _clock, ids = filled()
    delete_all = api.delete_all
    profiled("delete_all", len(keys), lambda: [delete_all(k) for k in keys], top)
    api, clock, ids = filled()
    now = clock.advance(SESSION_TTL)
    profiled("sweep (per eviction)", n, lambda: api.collect(now), top)


def profile_bytes(n: int, top: int) -> None:
    workload = Workload(n, seed=0)
    gc.collect()
    tracemalloc.start(1)
    clock = ManualClock(START)
    api = build("usersession", clock)
    create = api.create
    before = tracemalloc.take_snapshot()
    for subject in workload.creates:
        create(subject, CONTEXT)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in stats)
    print(f"\n== bytes per stored session at N={n:,}: {total / n:,.1f} B (tracemalloc)")
    print(f"   {'B/session':>9} {'blocks/s':>8}  allocated at")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = frame.filename.replace(SRC + "/", "")
        if SRC not in frame.filename:
            where = Path(frame.filename).name
        print(
            f"   {stat.size_diff / n:9.1f} {stat.count_diff / n:8.2f}  {where}:{frame.lineno}"
            f"  {_source_line(frame.filename, frame.lineno)}"
        )
    del api


def _source_line(filename: str, lineno: int) -> str:
    try:
        return Path(filename).read_text(encoding="utf-8").splitlines()[lineno - 1].strip()[:70]
    except (OSError, IndexError):
        return ""


def micro_handles() -> None:
    """Price of a handle, and of cheaper ways to make a one-way fingerprint."""
    session_id = "x" * 32
    table = bytes.maketrans(b"+/", b"-_")
    sha256 = hashlib.sha256
    b2a = binascii.b2a_base64
    key = b"usersession-handle"

    candidates = {
        "session_handle (now)": lambda: session_handle(session_id),
        "sha256(encode).digest only": lambda: sha256(session_id.encode()).digest(),
        "sha256 + b2a_base64 + translate": lambda: (
            b2a(sha256(session_id.encode()).digest(), newline=False)[:43].translate(table).decode()
        ),
        "sha256 hexdigest (64 chars)": lambda: sha256(session_id.encode()).hexdigest(),
        "hmac.digest sha256 + b64": lambda: (
            base64.urlsafe_b64encode(hmac.digest(key, session_id.encode(), "sha256"))
            .decode()
            .rstrip("=")
        ),
    }
    print("\n== handle: ns per call (timeit, best of 5)")
    for label, function in candidates.items():
        best = min(timeit.repeat(function, number=100_000, repeat=5)) / 100_000 * 1e9
        print(f"   {best:8.0f}  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    profile_operations(args.n, args.top)
    profile_bytes(args.n, args.top)
    micro_handles()


if __name__ == "__main__":
    main()
