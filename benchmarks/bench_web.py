"""What the ASGI middleware costs per request: a trivial endpoint behind
`SessionMiddleware` against the same app without it, in one run.

    .venv/bin/python benchmarks/bench_web.py              # 20,000 requests a side, 7 rounds
    .venv/bin/python benchmarks/bench_web.py --smoke      # 200 requests (50 forged), 1 round (CI)

Three sides, each a Starlette app with one endpoint answering "ok":

- `bare`: no middleware;
- `anonymous`: behind the middleware, the request carrying no session token
  (a public page: the middleware scans the headers and adds nothing);
- `session`: behind the middleware with a live session cookie (a logged-in
  page: decode the token, `manager.read` on the in-memory storage, a cached
  User-Agent lookup, `Cache-Control: no-store` added to the response);
- `forged`: behind the middleware, a well-formed token naming no session and
  a User-Agent never seen before on every request: what a client without a
  session can make the server spend (a User-Agent parse missing the cache,
  a read that finds nothing, the cookie cleared). Fewer requests a round
  (`--forged-requests`): each costs milliseconds without ua-parser's
  compiled resolver.

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
import importlib.metadata
import importlib.util
import itertools
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
UNSEEN_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.{}.0 Safari/537.36"
)

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


def scope_for(cookie: str | None, user_agent: str = USER_AGENT) -> dict[str, Any]:
    headers = [(b"host", b"app.example"), (b"user-agent", user_agent.encode())]
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


Scopes = Callable[[int], list[dict[str, Any]]]
"""The scopes of a side's `requests` calls in one round."""

_unseen = itertools.count()


def same_scope(cookie: str | None) -> Scopes:
    scope = scope_for(cookie)
    return lambda requests: [scope] * requests


def forged_scopes(requests: int) -> list[dict[str, Any]]:
    """A token naming no session, and a User-Agent never sent before (a
    browser build number no round repeats), on every request."""
    token = f"__Host-session={encode_token('alice', 'A' * 32)}"
    return [scope_for(token, UNSEEN_USER_AGENT.format(next(_unseen))) for _ in range(requests)]


async def run(app: App, scopes: list[dict[str, Any]]) -> float:
    """Requests per second over one sequential call per scope."""
    status: list[int] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    requests = len(scopes)
    gc.collect()
    started = time.perf_counter()
    for scope in scopes:
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - started
    assert status and all(code == 200 for code in status), status[:3]
    return requests / elapsed


async def benchmark(requests: int, forged: int, rounds: int) -> dict[str, list[float]]:
    clock = ManualClock(START)
    manager = AsyncUserSessionManager(InMemorySessionStorage(clock=clock), session_ttl=86_400)
    context = SessionContext(ip="198.51.100.7", device=device_from_user_agent(USER_AGENT))
    session_id = await manager.create("alice", context)
    cookie = f"__Host-session={encode_token('alice', session_id)}"
    sides: dict[str, tuple[App, Scopes, int]] = {
        "bare": (make_app(None), same_scope(None), requests),
        "anonymous": (make_app(manager), same_scope(None), requests),
        "session": (make_app(manager), same_scope(cookie), requests),
        "forged": (make_app(manager), forged_scopes, forged),
    }
    for app, scopes, count in sides.values():  # warm up: imports, caches, the UA parser
        await run(app, scopes(min(count, 500)))
    rates: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            app, scopes, count = sides[name]
            rates[name].append(await run(app, scopes(count)))
        print(f"  round {round_number + 1}/{rounds} done", file=sys.stderr)
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per side per round")
    parser.add_argument(
        "--forged-requests", type=int, default=2_000, help="requests of the forged side per round"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="200 requests, 1 round")
    options = parser.parse_args(argv)
    requests, forged, rounds = (
        (200, 50, 1)
        if options.smoke
        else (options.requests, options.forged_requests, options.rounds)
    )
    rates = asyncio.run(benchmark(requests, forged, rounds))
    print(
        f"Python {platform.python_version()}, Starlette {starlette.__version__}, "
        f"ua-parser {_ua_parser_resolver()}; {requests:,} requests a side "
        f"({forged:,} forged), {rounds} rounds, median [min-max]"
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


def _ua_parser_resolver() -> str:
    """Which of ua-parser's resolvers parses here: the compiled one comes
    with `ua-parser[regex]` (the asgi and flask extras)."""
    version = importlib.metadata.version("ua-parser")
    compiled = importlib.util.find_spec("ua_parser_rs") is not None
    return f"{version} ({'compiled resolver' if compiled else 'pure-Python resolver'})"


if __name__ == "__main__":
    main()
