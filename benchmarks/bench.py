"""The benchmark suite: usersession's two builds against two cachetools baselines and a floor.

    .venv/bin/python benchmarks/bench.py                 # N = 10k, 100k; 5 rounds
    .venv/bin/python benchmarks/bench.py --large         # also N = 1M
    .venv/bin/python benchmarks/bench.py --compiled-python .venv-compiled/bin/python
    .venv/bin/python benchmarks/bench.py --smoke --out /tmp/smoke.json   # CI: tiny N, one round

The sides, measured in one run in interleaved rounds: usersession pure and
compiled (the build this interpreter imports, and the other one run by the
interpreter of its own environment, `--compiled-python` or `--pure-python`,
in a worker process driven step by step), the baseline and the lean baseline
(cachetools) and the floor (a dict). Each round runs every scenario once per
side, the sides in lockstep (their timed loops cut into slices that
alternate, the side order rotating), so that a noisy, shared machine slows
them alike. Each figure is printed as the median and min-max over the rounds
per side, with the ratios of the medians. All sides run
on one `ManualClock`, so nothing expires inside a timed section unless
expiry is what is timed. The garbage collector is off inside timed sections
(as `timeit` does); states are built fresh for every measurement and dropped
after it. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import usersession
from baseline import CachetoolsSessions
from floor import DictFloor
from lean import LeanSessions
from usersession import (
    Device,
    InMemorySessionStorage,
    ManualClock,
    SessionContext,
    Timeouts,
    UserSessionManager,
)
from usersession.cli import version as build_version

try:  # the `bench` extra; without it the run shows no progress bar
    from tqdm import tqdm
except ImportError:  # pragma: no cover - depends on the environment
    tqdm = None

ALL_SIDES = ("pure", "compiled", "baseline", "lean", "floor")
PURE, COMPILED, BASELINE, LEAN, FLOOR = ALL_SIDES
LOCAL = COMPILED if usersession.compiled else PURE
"""The build this interpreter imports; the other one runs in a worker."""
PROJECTS = (PURE, COMPILED)
SIDES: tuple[str, ...] = (LOCAL, BASELINE, LEAN, FLOOR)
"""The sides of this run (set by `main`, in ALL_SIDES order)."""
RATIOS = [
    (PURE, BASELINE, "pure/base"),
    (PURE, LEAN, "pure/lean"),
    (COMPILED, LEAN, "comp/lean"),
    (COMPILED, PURE, "comp/pure"),
    (PURE, FLOOR, "pure/floor"),
]
"""(side, other, column): the ratios of medians printed and kept."""

SESSION_TTL = 3600
IDLE = 600
RENEWAL = 600
RENEWAL_GRACE = 60
PER_SUBJECT = 10
START = 1_700_000_000
CONTEXT = SessionContext("203.0.113.7", Device("Firefox", "desktop"))
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Figure:
    """One row of the table."""

    key: str
    title: str
    unit: str
    lower_is_better: bool = True


FIGURES = {
    figure.key: figure
    for figure in (
        Figure("create", "create", "ns/op"),
        Figure("read", "read (touching)", "ns/op"),
        Figure("read_renew", "read that renews", "ns/op"),
        Figure("read_all", "read_all (10/subject)", "ns/call"),
        Figure("read_all_again", "read_all again (same subjects)", "ns/call"),
        Figure("delete", "delete", "ns/op"),
        Figure("delete_all", "delete_all (10/subject)", "ns/call"),
        Figure("sweep", "sweep, all N due", "ns/evict"),
        Figure("sweep_rate", "sweep rate", "M evict/s", lower_is_better=False),
        Figure("idle_sweep", "idle sweep (half touched)", "ns/session"),
        Figure("scaling", "scaling: evict D of H / D of D", "ratio"),
        Figure("bytes", "bytes per live session", "B/session"),
    )
}


def _at_most(column: str, limit: float) -> Callable[[dict[str, Any]], bool]:
    return lambda row: _ratio(row, column) <= limit


def _ratio(row: dict[str, Any], column: str) -> float:
    ratio: float = row["ratios"][column]  # a KeyError: that side was not measured
    return ratio


TARGETS: list[tuple[str, int | None, str, Callable[[dict[str, Any]], bool]]] = [
    # (figure, N, check description, predicate on the row). Issue 3: pure vs baseline.
    ("create", 100_000, "pure <= 0.50x baseline", lambda row: _ratio(row, "pure/base") <= 0.50),
    ("read", 100_000, "pure <= 0.60x baseline", lambda row: _ratio(row, "pure/base") <= 0.60),
    ("delete", 100_000, "pure <= 0.65x baseline", lambda row: _ratio(row, "pure/base") <= 0.65),
    ("sweep", 100_000, "pure <= 0.45x baseline", lambda row: _ratio(row, "pure/base") <= 0.45),
    ("scaling", None, "pure <= 5", lambda row: row["median"][PURE] <= 5),
    ("bytes", 100_000, "pure <= 400 B", lambda row: row["median"][PURE] <= 400),
    # Issue 10: both builds vs the lean baseline.
    *[
        (figure, 100_000, f"{build} <= {limit:.2f}x lean", _at_most(column, limit))
        for figure, pure_limit, compiled_limit in (
            ("create", 0.60, 0.30),
            ("read", 0.90, 0.50),
            ("read_all", 1.15, 0.70),
            ("delete", 0.65, 0.40),
            ("delete_all", 0.70, 0.40),
            ("sweep", 0.30, 0.18),
            ("bytes", 0.88, 0.72),
        )
        for build, column, limit in (
            ("pure", "pure/lean", pure_limit),
            ("compiled", "comp/lean", compiled_limit),
        )
    ],
    (
        "sweep_rate",
        100_000,
        "compiled >= 2.5 M evict/s",
        lambda row: row["median"][COMPILED] >= 2.5,
    ),
]


# -- the sides ----------------------------------------------------------------------


def build(side: str, clock: ManualClock, timeouts: Timeouts | None = None) -> Any:
    """A fresh, empty side on `clock`: an object with the manager's calls and
    a `collect` (for usersession: the storage's)."""
    timeouts = timeouts or Timeouts()
    if side in PROJECTS:
        assert side == LOCAL, f"{side} runs in its own interpreter"
        storage = InMemorySessionStorage(clock=clock)
        manager = UserSessionManager(
            storage, session_ttl=SESSION_TTL, timeouts=timeouts, clock=clock
        )
        return _WithCollect(manager, storage)
    if side == LEAN:
        return LeanSessions(session_ttl=SESSION_TTL, clock=clock, idle=timeouts.idle)
    if side == BASELINE:
        return CachetoolsSessions(
            session_ttl=SESSION_TTL,
            clock=clock,
            idle=timeouts.idle,
            renewal=timeouts.renewal,
            renewal_grace=timeouts.renewal_grace,
        )
    return DictFloor(session_ttl=SESSION_TTL, clock=clock)


class _WithCollect:
    """A manager's calls, bound once, plus its storage's `collect` (a compiled
    manager takes no new attributes)."""

    def __init__(self, manager: UserSessionManager, storage: InMemorySessionStorage) -> None:
        self.storage = storage
        self.create, self.read, self.read_all = manager.create, manager.read, manager.read_all
        self.delete, self.delete_all = manager.delete, manager.delete_all
        self.collect = storage.collect


@dataclass
class Workload:
    """The subjects and call orders for one N, shared by the three sides."""

    n: int
    seed: int
    subjects: list[str] = field(init=False)
    creates: list[str] = field(init=False)
    order: list[int] = field(init=False)

    def __post_init__(self) -> None:
        count = max(1, self.n // PER_SUBJECT)
        self.subjects = [f"user-{i:08d}" for i in range(count)]
        self.creates = [self.subjects[i % count] for i in range(self.n)]
        self.order = list(range(self.n))
        random.Random(self.seed).shuffle(self.order)

    def shuffled_pairs(self, ids: list[str]) -> list[tuple[str, str]]:
        """(subject, id) of every session, in a random order (not creation order)."""
        creates = self.creates
        return [(creates[i], ids[i]) for i in self.order]

    def keys_per_subject(self, side: str, ids: list[str]) -> list[Any]:
        """What the per-subject calls take: the subject, or for the floor
        (which has no index) the subject's ids."""
        if side != FLOOR:
            return list(self.subjects)
        grouped: dict[str, list[str]] = {subject: [] for subject in self.subjects}
        for subject, session_id in zip(self.creates, ids, strict=True):
            grouped[subject].append(session_id)
        return list(grouped.values())


def held(api: Any) -> int:
    """Sessions the side holds right now."""
    return len(api.storage) if isinstance(api, _WithCollect) else len(api)


def fill(api: Any, workload: Workload) -> list[str]:
    create = api.create
    return [create(subject, CONTEXT) for subject in workload.creates]


# -- scenarios ----------------------------------------------------------------------
#
# A scenario is a generator: it builds one side's state (untimed), then times
# its operations in CHUNKS slices, yielding after each slice, and returns its
# figures. `lockstep` advances the three sides' generators in turn, so the
# sides' timed slices alternate within fractions of a second and a burst of
# noise on the machine lands on all three alike.

CHUNKS = 20
Steps = Generator[None, None, dict[str, float]]


def slices(items: list[Any]) -> list[list[Any]]:
    size = max(1, -(-len(items) // CHUNKS))
    return [items[i : i + size] for i in range(0, len(items), size)]


def timed_slices(
    items: list[Any], body: Callable[[list[Any]], object]
) -> Generator[None, None, int]:
    """Run `body` on each slice of `items`, yielding between slices; return
    the nanoseconds spent inside `body` in total."""
    spent = 0
    for part in slices(items):
        start = time.perf_counter_ns()
        body(part)
        spent += time.perf_counter_ns() - start
        yield
    return spent


def timed_once(body: Callable[[], int]) -> tuple[int, int]:
    """(nanoseconds, result) of one call."""
    start = time.perf_counter_ns()
    result = body()
    return time.perf_counter_ns() - start, result


def scenario_lifecycle(side: str, workload: Workload) -> Steps:
    """create, read, read_all (twice: usersession computes handles at the first
    listing and keeps them), delete, on one state."""
    n = workload.n
    clock = ManualClock(START)
    api = build(side, clock)
    create, read, read_all, delete = api.create, api.read, api.read_all, api.delete
    context = CONTEXT
    ids: list[str] = []
    yield

    def create_each(part: list[str]) -> None:
        ids.extend([create(subject, context) for subject in part])

    def read_each(part: list[tuple[str, str]]) -> None:
        for subject, session_id in part:
            read(subject, session_id, context)

    def list_each(part: list[Any]) -> None:
        for key in part:
            read_all(key)

    def delete_each(part: list[tuple[str, str]]) -> None:
        for subject, session_id in part:
            delete(subject, session_id)

    create_ns = yield from timed_slices(workload.creates, create_each)
    clock.advance(1)  # reads touch at a later second
    pairs = workload.shuffled_pairs(ids)
    keys = workload.keys_per_subject(side, ids)
    read_ns = yield from timed_slices(pairs, read_each)
    read_all_ns = yield from timed_slices(keys, list_each)
    again_ns = yield from timed_slices(keys, list_each)
    assert len(read_all(keys[0])) == min(PER_SUBJECT, n)
    delete_ns = yield from timed_slices(pairs, delete_each)
    assert held(api) == 0, f"{side}: {held(api)} left after deleting all"
    return {
        "create": create_ns / n,
        "read": read_ns / n,
        "read_all": read_all_ns / len(keys),
        "read_all_again": again_ns / len(keys),
        "delete": delete_ns / n,
    }


def scenario_delete_all(side: str, workload: Workload) -> Steps:
    clock = ManualClock(START)
    api = build(side, clock)
    ids = fill(api, workload)
    clock.advance(1)
    keys = workload.keys_per_subject(side, ids)
    delete_all = api.delete_all
    yield

    def delete_each(part: list[Any]) -> None:
        for key in part:
            delete_all(key)

    spent = yield from timed_slices(keys, delete_each)
    assert held(api) == 0
    return {"delete_all": spent / len(keys)}


def scenario_renew(side: str, workload: Workload) -> Steps:
    clock = ManualClock(START)
    api = build(side, clock, Timeouts(renewal=RENEWAL, renewal_grace=RENEWAL_GRACE))
    ids = fill(api, workload)
    clock.advance(RENEWAL)
    pairs = workload.shuffled_pairs(ids)
    context = CONTEXT
    # The floor has no rules: its "read that renews" is the renewal alone.
    read = api.renew if side == FLOOR else api.read
    yield

    def read_each(part: list[tuple[str, str]]) -> None:
        for subject, session_id in part:
            read(subject, session_id, context)

    spent = yield from timed_slices(pairs, read_each)
    if side != FLOOR:
        assert read(*pairs[0], context)[1] is None, f"{side}: renewed twice"
    assert held(api) == 2 * workload.n, f"{side}: {held(api)} held after renewing"
    return {"read_renew": spent / workload.n}


def scenario_sweep(side: str, workload: Workload) -> Steps:
    """All N come due at once (spread over 100 deadline seconds)."""
    n = workload.n
    clock = ManualClock(START)
    api = build(side, clock)
    create = api.create
    context = CONTEXT
    ids = [
        create(subject, context, SESSION_TTL + i % 100)
        for i, subject in enumerate(workload.creates)
    ]
    now = clock.advance(SESSION_TTL + 100)
    yield
    spent, removed = timed_once(lambda: api.collect(ids) if side == FLOOR else api.collect(now))
    assert removed == n and held(api) == 0, f"{side}: swept {removed} of {n}"
    return {"sweep": spent / n, "sweep_rate": n / spent * 1e3}


def scenario_idle_sweep(side: str, workload: Workload) -> Steps:
    """Idle on; half the sessions were read since they were filed. Cost per
    session in the due buckets (the touched half is re-filed, the rest evicted)."""
    n = workload.n
    clock = ManualClock(START)
    api = build(side, clock, Timeouts(idle=IDLE))
    ids = fill(api, workload)
    clock.advance(IDLE // 2)
    read = api.read
    for subject, session_id in zip(workload.creates[::2], ids[::2], strict=True):
        read(subject, session_id, CONTEXT)
    now = clock.advance(IDLE - IDLE // 2)
    untouched = ids[1::2]
    yield
    spent, removed = timed_once(
        lambda: api.collect(untouched) if side == FLOOR else api.collect(now)
    )
    assert removed == len(untouched), f"{side}: idle sweep removed {removed}"
    assert held(api) == n - len(untouched)
    return {"idle_sweep": spent / n}


def eviction_time(side: str, due: int, held_count: int) -> Generator[None, None, int]:
    """Nanoseconds to evict `due` sessions spread evenly among `held_count`."""
    clock = ManualClock(START)
    api = build(side, clock)
    create = api.create
    context = CONTEXT
    step = held_count // due
    ids = [
        create(f"user-{i // PER_SUBJECT:08d}", context, 60 if i % step == 0 else SESSION_TTL)
        for i in range(held_count)
    ]
    now = clock.advance(60)
    due_ids = ids[::step]
    yield
    spent, removed = timed_once(lambda: api.collect(due_ids) if side == FLOOR else api.collect(now))
    assert removed == due, f"{side}: evicted {removed} of {due}"
    return spent


def scenario_scaling(side: str, due: int, held_count: int) -> Steps:
    small = yield from eviction_time(side, due, due)
    large = yield from eviction_time(side, due, held_count)
    return {"scaling": large / small, "scaling_small_ns": small, "scaling_large_ns": large}


def lockstep(scenarios: dict[str, Steps]) -> dict[str, dict[str, float]]:
    """Advance the sides' scenarios in turn until all are done; their figures."""
    results: dict[str, dict[str, float]] = {}
    while len(results) < len(scenarios):
        for side, steps in scenarios.items():
            if side in results:
                continue
            try:
                next(steps)
            except StopIteration as done:
                results[side] = done.value
    return results


def measure_bytes(side: str, workload: Workload) -> float:
    """Traced bytes per live session after creating N (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        clock = ManualClock(START)
        api = build(side, clock)
        create = api.create
        context = CONTEXT
        before = tracemalloc.get_traced_memory()[0]
        for subject in workload.creates:
            create(subject, context)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        assert held(api) == workload.n
    finally:
        tracemalloc.stop()
    return (after - before) / workload.n


SCENARIOS: list[tuple[str, Callable[[str, Workload], Steps]]] = [
    ("lifecycle", scenario_lifecycle),
    ("delete_all", scenario_delete_all),
    ("renew", scenario_renew),
    ("sweep", scenario_sweep),
    ("idle sweep", scenario_idle_sweep),
]
SCENARIO_BY_NAME = dict(SCENARIOS)
SKIPPED = {"renew": {LEAN}}
"""Scenarios a side cannot run: the lean baseline never renews."""


# -- the other build: a worker process driven step by step ------------------------


class Worker:
    """The other build of usersession, in the interpreter of its environment:
    `bench.py --worker` there runs the scenarios of its side one step (one
    timed slice) per request, so its slices alternate with the local ones."""

    def __init__(self, python: str, side: str) -> None:
        self.side = side
        self.process = subprocess.Popen(
            # abspath, not resolve: a venv's python is a symlink out of the venv.
            [os.path.abspath(python), str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE,
        )
        built = self.ask({"do": "hello"})
        if built["side"] != side:
            raise SystemExit(f"{python} imports the {built['side']} build, not the {side} one")
        self.version: str = built["version"]

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.side} worker died")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def steps(self, message: dict[str, Any]) -> Steps:
        """A scenario of the worker's side, as a local generator."""
        self.ask({"do": "start", **message})
        while True:
            reply = self.ask({"do": "next"})
            if "done" in reply:
                figures: dict[str, float] = reply["done"]
                return figures
            yield

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def serve() -> int:
    """`--worker`: answer the main process's requests on stdin, one JSON line each."""
    gc.disable()
    steps: Steps | None = None
    for line in sys.stdin:
        message = json.loads(line)
        do = message["do"]
        reply: dict[str, Any] = {}
        if do == "hello":
            reply = {"side": LOCAL, "version": build_version()}
        elif do == "start":
            if message["scenario"] == "scaling":
                steps = scenario_scaling(LOCAL, message["due"], message["held"])
            else:
                workload = Workload(message["n"], seed=message["seed"])
                steps = SCENARIO_BY_NAME[message["scenario"]](LOCAL, workload)
        elif do == "next":
            assert steps is not None
            try:
                next(steps)
            except StopIteration as done:
                reply = {"done": done.value}
                steps = None
        elif do == "bytes":
            reply = {"value": measure_bytes(LOCAL, Workload(message["n"], seed=0))}
        elif do == "gc":
            gc.collect()
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


# -- running, summarising, reporting -----------------------------------------------


class Progress:
    """A progress bar on stderr (tqdm, from the `bench` extra), or nothing."""

    def __init__(self, total: int) -> None:
        self.bar = None if tqdm is None else tqdm(total=total, file=sys.stderr, leave=False)

    def show(self, label: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(label, refresh=True)

    def advance(self, label: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(label, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def rotated(index: int, sides: tuple[str, ...]) -> tuple[str, ...]:
    k = index % len(sides)
    return sides[k:] + sides[:k]


def run(
    args: argparse.Namespace, workers: dict[str, Worker]
) -> tuple[dict[tuple[str, int], dict[str, list[float]]], dict[str, Any]]:
    samples: dict[tuple[str, int], dict[str, list[float]]] = {}
    extra: dict[str, Any] = {"scaling_ns": {side: [] for side in SIDES}}

    def record(figures: dict[str, float], n: int, side: str) -> None:
        for key, value in figures.items():
            if key in FIGURES:
                samples.setdefault((key, n), {s: [] for s in SIDES})[side].append(value)

    def steps(side: str, scenario: str, local: Steps, message: dict[str, Any]) -> Steps:
        if side in workers:
            local.close()
            return workers[side].steps({"scenario": scenario, **message})
        return local

    def collect_garbage() -> None:
        gc.collect()
        for worker in workers.values():
            worker.ask({"do": "gc"})

    steps_per_round = len(args.sizes) * len(SCENARIOS) + 1
    total = args.rounds * steps_per_round + len(args.bytes_sizes) * len(SIDES)
    progress = Progress(total)
    gc.disable()
    try:
        for n in args.bytes_sizes:
            workload = Workload(n, seed=0)
            for side in SIDES:
                progress.show(f"bytes N={n:,} {side}")
                if side in workers:
                    value = workers[side].ask({"do": "bytes", "n": n})["value"]
                else:
                    value = measure_bytes(side, workload)
                record({"bytes": value}, n, side)
                progress.advance(f"bytes N={n:,} {side}")
        for round_index in range(args.rounds):
            prefix = f"round {round_index + 1}/{args.rounds}"
            for n in args.sizes:
                workload = Workload(n, seed=round_index)
                for scenario_index, (name, scenario) in enumerate(SCENARIOS):
                    label = f"{prefix} N={n:,} {name}"
                    progress.show(label)
                    order = [
                        side
                        for side in rotated(round_index + scenario_index, SIDES)
                        if side not in SKIPPED.get(name, ())
                    ]
                    message = {"n": n, "seed": round_index}
                    results = lockstep(
                        {
                            side: steps(side, name, scenario(side, workload), message)
                            for side in order
                        }
                    )
                    for side, figures in results.items():
                        record(figures, n, side)
                    del results
                    collect_garbage()
                    progress.advance(label)
            label = f"{prefix} scaling"
            progress.show(label)
            message = {"due": args.scaling_due, "held": args.scaling_held}
            results = lockstep(
                {
                    side: steps(
                        side,
                        "scaling",
                        scenario_scaling(side, args.scaling_due, args.scaling_held),
                        message,
                    )
                    for side in rotated(round_index, SIDES)
                }
            )
            for side, figures in results.items():
                record(figures, args.scaling_held, side)
                extra["scaling_ns"][side].append(
                    [figures["scaling_small_ns"], figures["scaling_large_ns"]]
                )
            collect_garbage()
            progress.advance(label)
    finally:
        gc.enable()
        progress.close()
    return samples, extra


def summarise(samples: dict[tuple[str, int], dict[str, list[float]]]) -> list[dict[str, Any]]:
    rows = []
    for (key, n), all_sides in samples.items():
        per_side = {side: values for side, values in all_sides.items() if values}
        figure = FIGURES[key]
        median = {side: statistics.median(values) for side, values in per_side.items()}
        row: dict[str, Any] = {
            "figure": key,
            "title": figure.title,
            "unit": figure.unit,
            "lower_is_better": figure.lower_is_better,
            "n": n,
            "samples": per_side,
            "median": median,
            "min": {side: min(values) for side, values in per_side.items()},
            "max": {side: max(values) for side, values in per_side.items()},
            "ratios": {},
            "ratios_per_round": {},
        }
        for side, other, column in RATIOS:
            if side in median and other in median and median[other]:
                row["ratios"][column] = median[side] / median[other]
                pairs = zip(per_side[side], per_side[other], strict=False)
                row["ratios_per_round"][column] = [
                    mine / theirs for mine, theirs in pairs if theirs
                ]
        rows.append(row)
    order = list(FIGURES)
    rows.sort(key=lambda row: (order.index(row["figure"]), row["n"]))
    return rows


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_key = {(row["figure"], row["n"]): row for row in rows}
    verdicts = []
    for key, n, text, predicate in TARGETS:
        row = by_key.get((key, 1_000_000 if n is None else n))
        met = None
        if row is not None:
            with contextlib.suppress(KeyError):  # a side this run left out
                met = bool(predicate(row))
        verdicts.append(
            {
                "figure": key,
                "n": row["n"] if row else n,
                "target": text,
                "met": met,
                "median": row["median"] if row else None,
                "ratios": row["ratios"] if row else None,
            }
        )
    return verdicts


def number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: list[dict[str, Any]]) -> str:
    columns = [column for _, _, column in RATIOS if any(column in row["ratios"] for row in rows)]
    head = ["figure", "N", "unit", *list(SIDES), *columns]
    lines = []
    for row in rows:
        cells = [row["title"], f"{row['n']:,}", row["unit"]]
        for side in SIDES:
            if side in row["median"]:
                cells.append(
                    f"{number(row['median'][side])} "
                    f"[{number(row['min'][side])}-{number(row['max'][side])}]"
                )
            else:
                cells.append("-")
        for column in columns:
            ratio = row["ratios"].get(column)
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
        lines.append(cells)
    widths = [max(len(str(cells[i])) for cells in [head, *lines]) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < 3 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(fmt(head))
    return "\n".join([fmt(head), rule, *(fmt(cells) for cells in lines)])


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "usersession": usersession.__version__,
        "builds": {LOCAL: build_version()},
    }
    for module in ("cachetools", "sortedcontainers"):
        info[module] = getattr(__import__(module), "__version__", "?")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["git"] = commit + (" (src modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        info["git"] = None
    if hasattr(os, "getloadavg"):
        info["loadavg_at_start"] = os.getloadavg()
    return info


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Cost per operation vs N per side, and evictions/s (matplotlib, lazily)."""
    import matplotlib  # noqa: PLC0415  (only when plotting: an optional extra)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    keys = [
        "create",
        "read",
        "read_renew",
        "read_all",
        "read_all_again",
        "delete",
        "delete_all",
        "sweep",
        "idle_sweep",
        "sweep_rate",
    ]
    figure, axes = plt.subplots(4, 3, figsize=(13, 14))
    for axis in axes.flat[len(keys) :]:
        axis.set_visible(False)
    for axis, key in zip(axes.flat, keys, strict=False):
        for index, (side, marker) in enumerate(zip(SIDES, "osd^v", strict=False)):
            # A side that sat a figure out (the lean baseline cannot renew) has no point.
            chosen = [row for row in rows if row["figure"] == key and side in row["median"]]
            if not chosen:
                continue
            sizes = [row["n"] for row in chosen]
            median = [row["median"][side] for row in chosen]
            low = [row["median"][side] - row["min"][side] for row in chosen]
            high = [row["max"][side] - row["median"][side] for row in chosen]
            axis.errorbar(
                sizes,
                median,
                yerr=[low, high],
                marker=marker,
                color=f"C{index}",  # one colour per side, in every panel
                capsize=3,
                label=side,
            )
        axis.set_xscale("log")
        axis.set_title(FIGURES[key].title)
        axis.set_xlabel("N sessions")
        axis.set_ylabel(FIGURES[key].unit)
        if key == "sweep_rate":
            axis.set_yscale("log")  # the floor is an order of magnitude above
        else:
            axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes.flat[0].legend()
    figure.suptitle("usersession (pure, compiled) vs cachetools baselines vs dict floor")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--large", action="store_true", help="also N = 1M (takes minutes)")
    parser.add_argument("--smoke", action="store_true", help="tiny N, one round (for CI)")
    parser.add_argument(
        "--sizes", type=lambda text: [int(n) for n in text.split(",")], help="override N"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "latest.json", help="JSON results"
    )
    parser.add_argument("--plot", type=Path, help="draw a PNG here (needs matplotlib)")
    default_compiled = HERE.parent / ".venv-compiled" / "bin" / "python"
    parser.add_argument(
        "--compiled-python",
        help="the interpreter of an environment with the compiled build (default: "
        ".venv-compiled/bin/python if it exists; 'none' to leave it out)",
    )
    parser.add_argument(
        "--pure-python", help="the interpreter of an environment with the pure build"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compiled_python is None and default_compiled.exists() and LOCAL == PURE:
        args.compiled_python = str(default_compiled)
    if args.compiled_python == "none":
        args.compiled_python = None
    args.scaling_due, args.scaling_held = 10_000, 1_000_000
    if args.smoke:
        args.rounds = 1
        args.sizes = args.sizes or [200]
        args.bytes_sizes = list(args.sizes)
        args.scaling_due, args.scaling_held = 200, 2_000
    else:
        args.sizes = args.sizes or ([10_000, 100_000] + ([1_000_000] if args.large else []))
        args.bytes_sizes = [n for n in args.sizes if n >= 100_000] or list(args.sizes)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    global SIDES
    args = parse(argv)
    if args.worker:
        return serve()
    workers: dict[str, Worker] = {}
    for side, python in ((COMPILED, args.compiled_python), (PURE, args.pure_python)):
        if python and side != LOCAL:
            workers[side] = Worker(python, side)
    SIDES = tuple(side for side in ALL_SIDES if side in {LOCAL, *workers, BASELINE, LEAN, FLOOR})
    info = machine_info()
    for side, worker in workers.items():
        info["builds"][side] = worker.version
    started = time.monotonic()
    try:
        samples, extra = run(args, workers)
    finally:
        for worker in workers.values():
            worker.close()
    rows = summarise(samples)
    verdicts = check_targets(rows)
    if hasattr(os, "getloadavg"):
        info["loadavg_at_end"] = os.getloadavg()
    info["seconds"] = round(time.monotonic() - started, 1)

    print(
        f"usersession benchmark: {info['cpu']} ({info['cpu_count']} CPUs), "
        f"Python {info['python']}, {info['date']}, git {info['git']}"
    )
    for side in (PURE, COMPILED):
        if side in info["builds"]:
            print(f"  {side}: {info['builds'][side]}")
    print(
        f"{args.rounds} interleaved round(s); median [min-max] per side; "
        "ratios are of the medians\n"
    )
    print(table(rows))
    print(
        f"\nscaling: D={args.scaling_due:,} due among H={args.scaling_held:,} held (N column),"
        " divided by D among D; the floor column is plain dict.pop"
    )
    print("\nTargets (N=100k; scaling at 10k due among 1M held):")
    for verdict in verdicts:
        state = {True: "met", False: "MISSED", None: "not measured"}[verdict["met"]]
        print(f"  {verdict['figure']:<11} {verdict['target']:<28} {state}")

    document = {
        "machine": info,
        "config": {
            "rounds": args.rounds,
            "sizes": args.sizes,
            "bytes_sizes": args.bytes_sizes,
            "smoke": args.smoke,
            "sides": list(SIDES),
            "scaling_due": args.scaling_due,
            "scaling_held": args.scaling_held,
            "session_ttl": SESSION_TTL,
            "idle": IDLE,
            "renewal": RENEWAL,
            "renewal_grace": RENEWAL_GRACE,
            "per_subject": PER_SUBJECT,
        },
        "results": rows,
        "scaling_ns": extra["scaling_ns"],
        "targets": verdicts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"\nresults: {args.out}")
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
