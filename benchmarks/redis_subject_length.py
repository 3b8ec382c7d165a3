"""What a Redis read costs the server, by the length of the subject.

    .venv/bin/python benchmarks/redis_subject_length.py            # own redis-server
    .venv/bin/python benchmarks/redis_subject_length.py --url redis://host:6379/0

Every key of a subject holds its percent-encoded form ("é" is 6 bytes of
key), so what a script does with its keys must stay linear in their length:
a subject comes from the application, and through the web layer from a
token any client can forge. For each length this creates one session, then
times reads of it and reads of a missing session on the server's side
(`INFO commandstats`: microseconds per `EVALSHA`, the script and the
commands it ran), with a `GET` of a key as long as the session's beside it.
Then, per length, `read_all` of a subject holding `--listed` sessions (all
its commands' server time: it names every session key, so it costs
sessions x key length). Prints the median of the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import redis

from usersession import Device, SessionContext, SessionNotFoundError, UserSessionManager
from usersession.storage.redis import RedisSessionStorage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.redis_server import RedisServer  # the tests' throwaway server

CONTEXT = SessionContext("203.0.113.7", Device("Firefox", "desktop"))
LENGTHS = (10, 100, 1_000, 3_000)
MISSING = "A" * 32


def server_usec(client: redis.Redis, command: str, calls: int, run: Callable[[], object]) -> float:
    """Server microseconds per call of `command` while `run()` makes `calls` of them."""
    client.config_resetstat()
    for _ in range(calls):
        run()
    stats = client.info("commandstats")[f"cmdstat_{command}"]
    return float(stats["usec"]) / stats["calls"]


def read_missing(manager: UserSessionManager, subject: str) -> None:
    with contextlib.suppress(SessionNotFoundError):
        manager.read(subject, MISSING, CONTEXT)


def measure_length(
    client: redis.Redis, manager: UserSessionManager, length: int, calls: int, rounds: int
) -> None:
    subject = "é" * length
    session_id = manager.create(subject, CONTEXT)
    key = manager.storage.layout.session_key(subject, manager.hash(session_id))
    client.set(key + ":get", b"x" * 300)
    sides: dict[str, tuple[str, Callable[[], object]]] = {
        "read": ("evalsha", partial(manager.read, subject, session_id, CONTEXT)),
        "miss": ("evalsha", partial(read_missing, manager, subject)),
        "get": ("get", partial(client.get, key + ":get")),
    }
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, (command, run) in sides.items():
            samples[name].append(server_usec(client, command, calls, run))
    row = {name: statistics.median(values) for name, values in samples.items()}
    print(
        f"{length:>9,} {len(key.encode()):>10,} {row['read']:>8.1f} {row['miss']:>8.1f}"
        f" {row['get']:>7.1f}"
    )
    manager.logout(subject, session_id)
    client.delete(key + ":get")


def measure_listing(
    client: redis.Redis, manager: UserSessionManager, length: int, listed: int, rounds: int
) -> None:
    subject = "é" * length
    for _ in range(listed):
        manager.create(subject, CONTEXT)
    samples = []
    for _ in range(rounds):
        client.config_resetstat()
        for _ in range(3):
            assert len(manager.read_all(subject)) == listed
        spent = sum(stats["usec"] for stats in client.info("commandstats").values())
        samples.append(spent / 3 / 1000)
    print(f"{length:>9,} {statistics.median(samples):>14.1f}")
    manager.delete_all(subject)


def measure(client: redis.Redis, calls: int, rounds: int, listed: int) -> None:
    manager = UserSessionManager(RedisSessionStorage(client), session_ttl=3600)
    print(f"{'subject':>9} {'key bytes':>10} {'read us':>8} {'miss us':>8} {'GET us':>7}")
    for length in LENGTHS:
        measure_length(client, manager, length, calls, rounds)
    print(f"\nread_all of {listed:,} sessions, server time of all its commands:")
    print(f"{'subject':>9} {'ms per call':>14}")
    for length in LENGTHS:
        measure_listing(client, manager, length, listed, rounds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--url", help="use this Redis server instead of starting one")
    parser.add_argument("--calls", type=int, default=200, help="calls per figure per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--listed", type=int, default=1000, help="sessions read_all lists")
    options = parser.parse_args(argv)
    if options.url:
        measure(redis.Redis.from_url(options.url), options.calls, options.rounds, options.listed)
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: install it, or pass --url")
    server = RedisServer(binary)
    server.start()
    try:
        measure(server.client(), options.calls, options.rounds, options.listed)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
