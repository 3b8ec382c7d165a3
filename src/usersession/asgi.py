"""Sessions for ASGI apps: a pure ASGI middleware over `AsyncUserSessionManager`.

    manager = AsyncUserSessionManager(InMemorySessionStorage(), session_ttl=86_400)
    app.add_middleware(SessionMiddleware, manager=manager, settings=WebSettings(secret=...))

Works under any ASGI framework (Starlette, FastAPI, Litestar, Quart): it
imports none. Per HTTP request it reads the session the request carries (a
cookie, or a header for API clients; `usersession.web` says how), puts an
`AsyncRequestSession` in the scope (`request_session(request)`, or the
FastAPI dependencies `current_session` and `optional_session`), refuses
unsafe cross-site requests (CSRF), and adds to the response whatever the
session needs: the new token after a renewal or a login (at any status), a
cleared cookie after a 401 or a dead token, `Cache-Control: no-store`.

Cost per request: a request without a session token costs a scan of its
headers; one with a token costs one `manager.read` (in memory, about 2 µs),
a User-Agent lookup in a cache and a few header operations (see README,
"Web apps", for the measured overhead). Unsafe methods with a cookie session
and no CSRF header also buffer the form body (at most `max_form_bytes`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from .async_manager import AsyncUserSessionManager
from .errors import ErrorCode, InvalidTypeError, SessionError
from .web import (
    CSRF_REFUSALS,
    DeviceEntry,
    RequestSession,
    Transport,
    WebSettings,
    device_entries,
    form_field,
    status_for,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCOPE_KEY = "usersession"
"""Where the middleware puts the request's `AsyncRequestSession` in the scope."""

_current: contextvars.ContextVar[AsyncRequestSession] = contextvars.ContextVar(
    "usersession_request_session"
)


class AsyncRequestSession(RequestSession):
    """The request's session (see `usersession.web.RequestSession` for what
    it tells), with the request helpers, awaited. Each helper is one or two
    manager calls; those that change the session must run before the
    response starts (else `RuntimeError`), so that its headers can say so.
    """

    __slots__ = ("_manager",)

    def __init__(
        self,
        settings: WebSettings,
        headers: Mapping[str, str],
        client_ip: str,
        manager: AsyncUserSessionManager | None = None,
    ) -> None:
        super().__init__(settings, headers, client_ip)
        self._manager = manager

    @property
    def manager(self) -> AsyncUserSessionManager:
        """The manager the middleware reads sessions with."""
        assert self._manager is not None
        return self._manager

    async def _read(self) -> None:
        if not self._needs_read():
            return
        subject, session_id = self.subject, self._carried_id
        assert subject is not None and session_id is not None
        manager, context = self.manager, self.context
        try:
            metadata, renewed_id = await manager.read(subject, session_id, context)
        except SessionError as error:
            self._read_failed(error)
            return
        successor = None
        if renewed_id is not None:
            # The new token goes out even if this read fails; only its Max-Age
            # is then estimated.
            with contextlib.suppress(SessionError):
                successor, _ = await manager.read(subject, renewed_id, context)
        self._read_succeeded(metadata, renewed_id, successor)

    async def login(self, subject: str, *, transport: Transport | None = None) -> None:
        """Start a new login for `subject` on this request's device.

        The session the request carried, if live, is ended first (its whole
        login: a new id on every privilege change), then a session is
        created and handed to the client: as the cookie, or as the token
        header when `transport="header"` or the request came with the header.
        May raise what `create` raises (`SessionLimitError` under a REFUSE
        limit, `SessionStorageError`); the carried login is ended all the
        same, and the response clears its cookie.
        """
        self._check_can_respond()
        manager = self.manager
        if self._live:
            old_subject, old_id = self._require_live()
            await manager.logout(old_subject, old_id)
            # Dead now: if the create below fails, the response clears it.
            self._logged_out()
        context = self.context
        session_id = await manager.create(subject, context)
        metadata, _ = await manager.read(subject, session_id, context)
        self._logged_in(subject, session_id, metadata, transport or self._default_transport())

    async def logout(self) -> int:
        """End the request's login (every session of it) and clear the
        cookie; return how many sessions were removed (0 without a live
        session)."""
        self._check_can_respond()
        removed = 0
        if self._live:
            subject, session_id = self._require_live()
            removed = await self.manager.logout(subject, session_id)
        self._logged_out()
        return removed

    async def logout_everywhere(self) -> int:
        """End every login of the request's subject, this one included;
        return how many sessions were removed. Needs a live session
        (`SessionNotFoundError` otherwise)."""
        self._check_can_respond()
        subject, _ = self._require_live()
        removed = await self.manager.delete_all(subject)
        self._logged_out()
        return removed

    async def logout_other_devices(self) -> int:
        """End every login of the subject except this one ("sign out of all
        other sessions", e.g. after a password change); return how many
        sessions were removed. Needs a live session."""
        subject, session_id = self._require_live()
        return await self.manager.delete_all(subject, keep=session_id)

    async def devices(self) -> list[DeviceEntry]:
        """The subject's active logins, this device first
        (`usersession.web.device_entries`). Needs a live session. One
        `read_all`: O(sessions of the subject)."""
        subject, _ = self._require_live()
        listing = await self.manager.read_all(subject)
        return device_entries(listing, self.handle, self.metadata)

    async def revoke(self, handle: str) -> bool:
        """End the login of the subject's session that `handle` names ("log
        out that device"); whether anything was removed. Another subject's
        handle removes nothing. Revoking this device's own session logs
        this request out too. Needs a live session."""
        subject, _ = self._require_live()
        if handle == self.handle:
            self._check_can_respond()
        removed = await self.manager.revoke(subject, handle)
        if handle == self.handle:
            self._logged_out()
        return removed


class SessionMiddleware:
    """The ASGI middleware. `manager` must be an `AsyncUserSessionManager`
    (over `InMemorySessionStorage` or `AsyncRedisSessionStorage`), `settings`
    a `WebSettings`; anything else raises `InvalidTypeError` here.

    Place it either way: `app.add_middleware(SessionMiddleware, ...)`, or
    around the whole app (`SessionMiddleware(app, ...)`), which also puts the
    renewal cookie on error pages the framework renders. Non-HTTP scopes
    (lifespan, websocket) pass through untouched.
    """

    def __init__(
        self, app: ASGIApp, *, manager: AsyncUserSessionManager, settings: WebSettings
    ) -> None:
        if not isinstance(manager, AsyncUserSessionManager):
            raise InvalidTypeError(
                ErrorCode.INVALID_OPTION,
                f"manager must be an AsyncUserSessionManager, not {type(manager).__name__}.",
            )
        if not isinstance(settings, WebSettings):
            raise InvalidTypeError(
                ErrorCode.INVALID_OPTION,
                f"settings must be a WebSettings, not {type(settings).__name__}.",
            )
        self.app = app
        self.manager = manager
        self.settings = settings
        # Header name as ASGI sends it -> as `RequestSession` wants it: the
        # scan then decodes only the values it keeps.
        self._wanted = {name.encode("latin-1"): name for name in settings.request_headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = self._session(scope)
        await session._read()
        method = scope["method"]
        scheme = scope.get("scheme", "http")
        refusal = session._csrf_refusal(method, scheme)
        if refusal == "form":
            body = await _read_body(receive, self.settings.max_form_bytes)
            if body is None:
                refusal = "token"
            else:
                content_type = session._headers.get("content-type")
                field = form_field(content_type, body, self.settings.csrf_field) or ""
                refusal = session._csrf_refusal(method, scheme, field)
                receive = _replay(body, receive)
        if refusal is not None:
            await _send_json(send, 403, CSRF_REFUSALS[refusal], session.response_headers(403))
            return

        started = False

        async def send_with_session(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                extra = session.response_headers(message["status"])
                if extra:
                    message = dict(message)
                    message["headers"] = _merged(message.get("headers", ()), extra)
            await send(message)

        scope[SCOPE_KEY] = session
        token = _current.set(session)
        try:
            await self.app(scope, receive, send_with_session)
        except Exception:
            # An endpoint that fails after a renewing read must not lose the
            # new token (the old one dies with its grace), so if nothing was
            # sent yet and the token changed, answer the 500 here, with it.
            if not started and session._token_changed():
                started = True
                await _send_json(send, 500, "Internal Server Error", session.response_headers(500))
            raise
        finally:
            _current.reset(token)

    def _session(self, scope: Scope) -> AsyncRequestSession:
        wanted = self._wanted
        headers: dict[str, str] = {}
        repeated: dict[str, list[str]] = {}
        for name, value in scope.get("headers", ()):
            key = wanted.get(name)
            if key is not None:
                text = value.decode("latin-1")
                if key in headers:  # HTTP/2 may split the Cookie header
                    repeated.setdefault(key, [headers[key]]).append(text)
                else:
                    headers[key] = text
        # Joined once: adding each repeat to the value so far would copy it
        # every time, O(n^2) in what a client sends before any session check.
        for key, values in repeated.items():
            headers[key] = ("; " if key == "cookie" else ", ").join(values)
        client = scope.get("client")
        session = AsyncRequestSession(
            self.settings, headers, client[0] if client else "unknown", self.manager
        )
        session._take_token()
        return session


def _merged(headers: Any, extra: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """The response's headers plus `extra`; an app's own Cache-Control gives
    way when `extra` has one (a response that carries a session must not be
    stored by any cache)."""
    if any(name == "Cache-Control" for name, _ in extra):
        merged = [header for header in headers if header[0].lower() != b"cache-control"]
    else:
        merged = list(headers)
    for name, value in extra:
        merged.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return merged


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None if it exceeds `limit` bytes or the
    client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then defers to
    the server's (which reports a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send: Send, status: int, detail: str, extra: list[tuple[str, str]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = _merged(
        [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        extra,
    )
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def request_session(request: object) -> AsyncRequestSession:
    """The `AsyncRequestSession` of a request: pass the framework's request
    object (anything with a `.scope`) or the ASGI scope itself. Raises
    `LookupError` when `SessionMiddleware` did not handle the request."""
    scope = getattr(request, "scope", request)
    try:
        session = scope[SCOPE_KEY]  # type: ignore[index]
    except (KeyError, TypeError):
        raise LookupError("usersession: SessionMiddleware did not handle this request.") from None
    if not isinstance(session, AsyncRequestSession):
        raise LookupError("usersession: SessionMiddleware did not handle this request.")
    return session


async def optional_session() -> AsyncRequestSession:
    """FastAPI dependency (`Depends(optional_session)`), also callable from
    any endpoint: the request's session, live or not (check `.live`). Raises
    `LookupError` outside a request `SessionMiddleware` handles."""
    try:
        return _current.get()
    except LookupError:
        raise LookupError("usersession: SessionMiddleware did not handle this request.") from None


async def current_session() -> AsyncRequestSession:
    """FastAPI dependency (`Depends(current_session)`), also callable from a
    Starlette endpoint: the request's live session, or an `HTTPException`
    with the status `usersession.web.status_for` gives (401 no session or
    ended, 403 another device, 503 storage down). Needs Starlette (FastAPI
    brings it); the middleware itself does not."""
    session = await optional_session()
    if session.live:
        return session
    from starlette.exceptions import HTTPException  # noqa: PLC0415  (framework only here)

    status, detail = status_for(session.error)
    raise HTTPException(status_code=status, detail=detail)
