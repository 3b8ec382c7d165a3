"""What the ASGI middleware costs per request: a trivial endpoint behind
`SessionMiddleware` against the same app without it, in one run.

    .venv/bin/python benchmarks/bench_web.py              # 20,000 requests a side, 7 rounds
    .venv/bin/python benchmarks/bench_web.py --smoke      # 200 requests, 1 round (CI)

Three sides, each a Starlette app with one endpoint answering "ok":

- `bare`: no middleware;
- `anonymous`: behind the middleware, the request carrying no session token
  (a public page: the middleware scans the headers and adds nothing);
- `session`: behind the middleware with a live session cookie (a logged-in
  page: decode the token, `manager.read` on the in-memory storage, a cached
  User-Agent lookup, `Cache-Control: no-store` added to the response).

Requests are ASGI calls made in-process (a prebuilt scope, a `receive` that
hands over an empty body, a `send` that keeps the messages): no network and
no HTTP client, so the difference between sides is the middleware's own
cost and nothing else. Rounds interleave the sides (the order rotates each
round) so that a noisy machine slows all alike; each figure is the median
over rounds, with min-max. The overhead per request is the difference of
the medians' time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import starlette
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from usersession import (
    AsyncUserSessionManager,
    InMemorySessionStorage,
    ManualClock,
    SessionContext,
)
from usersession.asgi import SessionMiddleware
from usersession.web import WebSettings, device_from_user_agent, encode_token

START = 1_700_000_000
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"

App = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def make_app(manager: AsyncUserSessionManager | None) -> App:
    routes = [Route("/", hello)]
    if manager is None:
        return Starlette(routes=routes)
    settings = WebSettings(secret=b"benchmark-secret-benchmark-secret!")
    middleware = [Middleware(SessionMiddleware, manager=manager, settings=settings)]
    return Starlette(routes=routes, middleware=middleware)


def scope_for(cookie: str | None) -> dict[str, Any]:
    headers = [(b"host", b"app.example"), (b"user-agent", USER_AGENT.encode())]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("198.51.100.7", 50000),
        "server": ("app.example", 443),
    }


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def run(app: App, scope: dict[str, Any], requests: int) -> float:
    """Requests per second over `requests` sequential calls."""
    status: list[int] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    gc.collect()
    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - started
    assert status and all(code == 200 for code in status), status[:3]
    return requests / elapsed


async def benchmark(requests: int, rounds: int) -> dict[str, list[float]]:
    clock = ManualClock(START)
    manager = AsyncUserSessionManager(InMemorySessionStorage(clock=clock), session_ttl=86_400)
    context = SessionContext(ip="198.51.100.7", device=device_from_user_agent(USER_AGENT))
    session_id = await manager.create("alice", context)
    cookie = f"__Host-session={encode_token('alice', session_id)}"
    sides: dict[str, tuple[App, dict[str, Any]]] = {
        "bare": (make_app(None), scope_for(None)),
        "anonymous": (make_app(manager), scope_for(None)),
        "session": (make_app(manager), scope_for(cookie)),
    }
    for app, scope in sides.values():  # warm up: imports, caches, the UA parser
        await run(app, scope, min(requests, 500))
    rates: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            app, scope = sides[name]
            rates[name].append(await run(app, scope, requests))
        print(f"  round {round_number + 1}/{rounds} done", file=sys.stderr)
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per side per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="200 requests, 1 round")
    options = parser.parse_args(argv)
    requests, rounds = (200, 1) if options.smoke else (options.requests, options.rounds)
    rates = asyncio.run(benchmark(requests, rounds))
    print(
        f"Python {platform.python_version()}, Starlette {starlette.__version__}, "
        f"{requests:,} requests a side, {rounds} rounds, median [min-max]"
    )
    print(f"{'side':<10} {'requests/s':>26} {'us/request':>11} {'overhead us':>12}")
    bare = statistics.median(rates["bare"])
    for name, samples in rates.items():
        median = statistics.median(samples)
        overhead = 1e6 / median - 1e6 / bare
        print(
            f"{name:<10} {median:>10,.0f} [{min(samples):,.0f}-{max(samples):,.0f}]"
            f" {1e6 / median:>11.1f} {overhead:>12.1f}"
        )


if __name__ == "__main__":
    main()
