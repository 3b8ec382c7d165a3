"""Test apps for the web adapters: the same routes under Starlette and
FastAPI (usersession.asgi) and Flask (usersession.flask), and `Visitor`, a
client that keeps its session cookie by hand so that every test says what
it sends.

Routes (a live session is required where marked *):
  GET  /public              -> {"live": bool}
  GET  /me *                -> {"subject", "handle", "csrf", "ip", "device"}
  POST /login?user=U[&transport=header] -> {"handle", "csrf", "token"}
  POST /action *            -> {"note": the form's note field}
  GET  /boom *              -> raises RuntimeError after reading the session
  GET  /cached *            -> 200 with the app's own Cache-Control: public
  GET  /refuse              -> the app answers 401 itself
  POST /logout              -> {"removed"}
  POST /logout-everywhere * -> {"removed"}
  POST /logout-others *     -> {"removed"}
  GET  /devices *           -> [{"handle", "device", "ip", ..., "this_device"}]
  POST /revoke/{handle} *   -> {"removed"}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from flask import Flask, jsonify, request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from usersession import AsyncUserSessionManager, UserSessionManager
from usersession.asgi import (
    AsyncRequestSession,
    SessionMiddleware,
    current_session,
    optional_session,
    request_session,
)
from usersession.flask import UserSessions
from usersession.flask import current_session as flask_current
from usersession.flask import optional_session as flask_optional
from usersession.web import RequestSession, WebSettings

SECRET = b"test-secret-test-secret-test-secret"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
BASE_URL = "https://app.example"
CLIENT_IP = "203.0.113.7"
COOKIE = "__Host-session"

Json = Any


def _describe(session: RequestSession, request: Any) -> Json:
    context = session.context
    device = context.device
    return {
        "subject": session.subject,
        "handle": session.handle,
        "csrf": session.csrf_token,
        "ip": context.ip,
        "device": None if device is None else [device.name, device.type],
    }


def _entries(entries: list[Any]) -> Json:
    return [
        {
            "handle": entry.handle,
            "device": None if entry.device is None else [entry.device.name, entry.device.type],
            "ip": entry.ip,
            "authenticated_at": entry.authenticated_at,
            "last_seen": entry.last_seen,
            "this_device": entry.this_device,
        }
        for entry in entries
    ]


# -- ASGI ----------------------------------------------------------------------------

Endpoint = Callable[[AsyncRequestSession, Any], Awaitable[Any]]


async def _public(session: AsyncRequestSession, request: Any) -> Json:
    return {"live": session.live}


async def _me(session: AsyncRequestSession, request: Any) -> Json:
    return _describe(session, request)


async def _login(session: AsyncRequestSession, request: Any) -> Json:
    transport = request.query_params.get("transport")
    await session.login(request.query_params["user"], transport=transport)
    return {"handle": session.handle, "csrf": session.csrf_token, "token": session.token}


async def _action(session: AsyncRequestSession, request: Any) -> Json:
    form = await request.form()
    return {"note": form.get("note")}


async def _boom(session: AsyncRequestSession, request: Any) -> Json:
    raise RuntimeError("the endpoint failed after reading the session")


async def _cached(session: AsyncRequestSession, request: Any) -> Any:

    return JSONResponse({"ok": True}, headers={"Cache-Control": "public, max-age=600"})


async def _refuse(session: AsyncRequestSession, request: Any) -> Any:

    return JSONResponse({"detail": "no"}, status_code=401)


async def _logout(session: AsyncRequestSession, request: Any) -> Json:
    return {"removed": await session.logout()}


async def _logout_everywhere(session: AsyncRequestSession, request: Any) -> Json:
    return {"removed": await session.logout_everywhere()}


async def _logout_others(session: AsyncRequestSession, request: Any) -> Json:
    return {"removed": await session.logout_other_devices()}


async def _devices(session: AsyncRequestSession, request: Any) -> Json:
    return _entries(await session.devices())


async def _revoke(session: AsyncRequestSession, request: Any) -> Json:
    return {"removed": await session.revoke(request.path_params["handle"])}


ROUTES: list[tuple[str, str, Endpoint, bool]] = [
    ("GET", "/public", _public, False),
    ("GET", "/me", _me, True),
    ("POST", "/login", _login, False),
    ("POST", "/action", _action, True),
    ("GET", "/boom", _boom, True),
    ("GET", "/cached", _cached, True),
    ("GET", "/refuse", _refuse, False),
    ("POST", "/logout", _logout, False),
    ("POST", "/logout-everywhere", _logout_everywhere, True),
    ("POST", "/logout-others", _logout_others, True),
    ("GET", "/devices", _devices, True),
    ("POST", "/revoke/{handle}", _revoke, True),
]


def starlette_app(
    manager: AsyncUserSessionManager, settings: WebSettings, *, around: bool = False
) -> Any:
    """The routes on Starlette; the session from `request_session` or
    `current_session`. `around`: the middleware wraps the whole app instead
    of being added with `middleware=`."""

    def wrap(endpoint: Endpoint, live: bool) -> Callable[[StarletteRequest], Awaitable[Response]]:
        async def handler(request: StarletteRequest) -> Response:
            session = await current_session() if live else request_session(request)
            result = await endpoint(session, request)
            return result if isinstance(result, Response) else JSONResponse(result)

        return handler

    routes = [
        Route(path, wrap(endpoint, live), methods=[method])
        for method, path, endpoint, live in ROUTES
    ]
    if around:
        return SessionMiddleware(Starlette(routes=routes), manager=manager, settings=settings)
    middleware = [Middleware(SessionMiddleware, manager=manager, settings=settings)]
    return Starlette(routes=routes, middleware=middleware)


def fastapi_app(
    manager: AsyncUserSessionManager, settings: WebSettings, *, around: bool = False
) -> Any:
    """The routes on FastAPI; the session from the `current_session` and
    `optional_session` dependencies."""

    app = FastAPI()

    def add(method: str, path: str, endpoint: Endpoint, live: bool) -> None:
        dependency = current_session if live else optional_session

        async def handler(
            request: Request,
            session: AsyncRequestSession = Depends(dependency),  # noqa: B008
        ) -> Any:
            return await endpoint(session, request)

        app.add_api_route(path, handler, methods=[method])

    for route in ROUTES:
        add(*route)
    if around:
        return SessionMiddleware(app, manager=manager, settings=settings)
    app.add_middleware(SessionMiddleware, manager=manager, settings=settings)
    return app


ASGI_APPS = {"starlette": starlette_app, "fastapi": fastapi_app}


# -- Flask ---------------------------------------------------------------------------


def flask_app(manager: UserSessionManager, settings: WebSettings) -> Any:
    """The routes on Flask, through `usersession.flask.UserSessions`."""

    app = Flask("usersession-test")
    UserSessions(app, manager=manager, settings=settings)

    @app.get("/public")
    def public() -> Any:
        return {"live": flask_optional().live}

    @app.get("/me")
    def me() -> Any:
        return _describe(flask_current(), request)

    @app.post("/login")
    def login() -> Any:
        session = flask_optional()
        session.login(request.args["user"], transport=request.args.get("transport"))  # type: ignore[arg-type]
        return {"handle": session.handle, "csrf": session.csrf_token, "token": session.token}

    @app.post("/action")
    def action() -> Any:
        flask_current()
        return {"note": request.form.get("note")}

    @app.get("/boom")
    def boom() -> Any:
        flask_current()
        raise RuntimeError("the endpoint failed after reading the session")

    @app.get("/cached")
    def cached() -> Any:
        flask_current()
        response = jsonify({"ok": True})
        response.headers["Cache-Control"] = "public, max-age=600"
        return response

    @app.get("/refuse")
    def refuse() -> Any:
        return {"detail": "no"}, 401

    @app.post("/logout")
    def logout() -> Any:
        return {"removed": flask_optional().logout()}

    @app.post("/logout-everywhere")
    def logout_everywhere() -> Any:
        return {"removed": flask_current().logout_everywhere()}

    @app.post("/logout-others")
    def logout_others() -> Any:
        return {"removed": flask_current().logout_other_devices()}

    @app.get("/devices")
    def devices() -> Any:
        return jsonify(_entries(flask_current().devices()))

    @app.post("/revoke/<handle>")
    def revoke(handle: str) -> Any:
        return {"removed": flask_current().revoke(handle)}

    return app


# -- a client ------------------------------------------------------------------------


def set_cookies(response: httpx.Response) -> list[str]:
    """The response's Set-Cookie header values."""
    return response.headers.get_list("set-cookie")


def session_cookie(response: httpx.Response) -> str | None:
    """The session cookie's value as the response sets it ("" when it clears
    it), or None if the response leaves it alone."""
    for header in set_cookies(response):
        name, _, rest = header.partition("=")
        if name == COOKIE:
            return rest.partition(";")[0]
    return None


class Visitor:
    """One browser: its User-Agent, and the session token it holds, kept by
    hand (httpx's own cookie jar is emptied after every response)."""

    def __init__(self, app: Any, user_agent: str | None = FIREFOX, ip: str = CLIENT_IP) -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(ip, 4711))
        self.client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        if user_agent is None:
            del self.client.headers["user-agent"]
        self.user_agent = user_agent
        self.token: str | None = None
        self.csrf: str | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **options: Any,
    ) -> httpx.Response:
        """Send a request with this visitor's cookie and keep what the
        response does to it; or send `token` instead, as another browser
        would, and keep nothing."""
        sent = dict(headers or {})
        if self.user_agent is not None:
            sent.setdefault("user-agent", self.user_agent)
        cookie = token if token is not None else self.token
        if cookie is not None:
            sent.setdefault("cookie", f"{COOKIE}={cookie}")
        response = await self.client.request(method, path, headers=sent, **options)
        self.client.cookies.clear()
        new = session_cookie(response)
        if new is not None and token is None:
            self.token = new or None
        return response

    async def get(self, path: str, **options: Any) -> httpx.Response:
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Any) -> httpx.Response:
        return await self.request("POST", path, **options)

    async def login(self, user: str = "alice") -> httpx.Response:
        response = await self.post(f"/login?user={user}")
        assert response.status_code == 200, response.text
        self.csrf = response.json()["csrf"]
        return response

    async def refresh_csrf(self) -> None:
        self.csrf = (await self.get("/me")).json()["csrf"]

    async def post_with_csrf(self, path: str, **options: Any) -> httpx.Response:
        headers = {"x-csrf-token": self.csrf or "", **options.pop("headers", {})}
        return await self.post(path, headers=headers, **options)
