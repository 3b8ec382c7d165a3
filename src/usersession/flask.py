"""Sessions for Flask: an extension over `UserSessionManager`.

    manager = UserSessionManager(InMemorySessionStorage(), session_ttl=86_400)
    UserSessions(app, manager=manager, settings=WebSettings(secret=...))

The same transport as the ASGI middleware (`usersession.web`): before each
request it reads the session the request carries and refuses unsafe
cross-site requests (403); after it, the response gets the new token after a
renewal or a login (at any status, error pages included), a cleared cookie
after a 401 or a dead token, and `Cache-Control: no-store`. Endpoints get
the request's `SyncRequestSession` from `current_session()` (aborts with
401, 403 or 503 unless live) or `optional_session()`.

Flask renders an unhandled exception as a 500 and still runs this
extension on it, unless it propagates exceptions (testing or debug mode).
This is a different module from Flask's own `flask.session`, which keeps
data in a signed cookie; the two do not meet.
"""

from __future__ import annotations

import contextlib
import json

from flask import Flask, Response, abort, g, request

from .errors import ErrorCode, InvalidTypeError, SessionError
from .manager import UserSessionManager
from .web import (
    CSRF_REFUSALS,
    DeviceEntry,
    RequestSession,
    Transport,
    WebSettings,
    device_entries,
    status_for,
)

_G_KEY = "_usersession_request"


class SyncRequestSession(RequestSession):
    """The request's session (see `usersession.web.RequestSession` for what
    it tells), with the request helpers. Each helper is one or two manager
    calls; those that change the session must run before the response is
    finalised (else `RuntimeError`)."""

    __slots__ = ("_manager",)

    def __init__(
        self,
        settings: WebSettings,
        headers: dict[str, str],
        client_ip: str,
        manager: UserSessionManager | None = None,
    ) -> None:
        super().__init__(settings, headers, client_ip)
        self._manager = manager

    @property
    def manager(self) -> UserSessionManager:
        """The manager the extension reads sessions with."""
        assert self._manager is not None
        return self._manager

    def _read(self) -> None:
        if not self._needs_read():
            return
        subject, session_id = self.subject, self._carried_id
        assert subject is not None and session_id is not None
        manager, context = self.manager, self.context
        try:
            metadata, renewed_id = manager.read(subject, session_id, context)
        except SessionError as error:
            self._read_failed(error)
            return
        successor = None
        if renewed_id is not None:
            # The new token goes out even if this read fails; only its Max-Age
            # is then estimated.
            with contextlib.suppress(SessionError):
                successor, _ = manager.read(subject, renewed_id, context)
        self._read_succeeded(metadata, renewed_id, successor)

    def login(self, subject: str, *, transport: Transport | None = None) -> None:
        """See `usersession.asgi.AsyncRequestSession.login`."""
        self._check_can_respond()
        manager = self.manager
        if self._live:
            old_subject, old_id = self._require_live()
            manager.logout(old_subject, old_id)
            self._logged_out()  # see the ASGI login
        context = self.context
        session_id = manager.create(subject, context)
        metadata, _ = manager.read(subject, session_id, context)
        self._logged_in(subject, session_id, metadata, transport or self._default_transport())

    def logout(self) -> int:
        """See `usersession.asgi.AsyncRequestSession.logout`."""
        self._check_can_respond()
        removed = 0
        if self._live:
            subject, session_id = self._require_live()
            removed = self.manager.logout(subject, session_id)
        self._logged_out()
        return removed

    def logout_everywhere(self) -> int:
        """See `usersession.asgi.AsyncRequestSession.logout_everywhere`."""
        self._check_can_respond()
        subject, _ = self._require_live()
        removed = self.manager.delete_all(subject)
        self._logged_out()
        return removed

    def logout_other_devices(self) -> int:
        """See `usersession.asgi.AsyncRequestSession.logout_other_devices`."""
        subject, session_id = self._require_live()
        return self.manager.delete_all(subject, keep=session_id)

    def devices(self) -> list[DeviceEntry]:
        """See `usersession.asgi.AsyncRequestSession.devices`."""
        subject, _ = self._require_live()
        return device_entries(self.manager.read_all(subject), self.handle, self.metadata)

    def revoke(self, handle: str) -> bool:
        """See `usersession.asgi.AsyncRequestSession.revoke`."""
        subject, _ = self._require_live()
        if handle == self.handle:
            self._check_can_respond()
        removed = self.manager.revoke(subject, handle)
        if handle == self.handle:
            self._logged_out()
        return removed


class UserSessions:
    """The Flask extension: `UserSessions(app, manager=..., settings=...)`,
    or `UserSessions(manager=..., settings=...)` then `init_app(app)`.

    `manager` must be a `UserSessionManager`, `settings` a `WebSettings`;
    anything else raises `InvalidTypeError` here.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        manager: UserSessionManager,
        settings: WebSettings,
    ) -> None:
        if not isinstance(manager, UserSessionManager):
            raise InvalidTypeError(
                ErrorCode.INVALID_OPTION,
                f"manager must be a UserSessionManager, not {type(manager).__name__}.",
            )
        if not isinstance(settings, WebSettings):
            raise InvalidTypeError(
                ErrorCode.INVALID_OPTION,
                f"settings must be a WebSettings, not {type(settings).__name__}.",
            )
        self.manager = manager
        self.settings = settings
        self._wanted = tuple(settings.request_headers)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read sessions before every request of `app` and write their
        headers after it."""
        app.before_request(self._before_request)
        app.after_request(self._after_request)
        app.extensions["usersession"] = self

    def _before_request(self) -> Response | None:
        headers = {}
        for name in self._wanted:
            value = request.headers.get(name)
            if value is not None:
                headers[name] = value
        session = SyncRequestSession(
            self.settings, headers, request.remote_addr or "unknown", self.manager
        )
        session._take_token()
        session._read()
        setattr(g, _G_KEY, session)
        refusal = session._csrf_refusal(request.method, request.scheme)
        if refusal == "form":
            size = request.content_length
            if size is not None and size > self.settings.max_form_bytes:
                refusal = "token"
            else:
                field = request.form.get(self.settings.csrf_field, "")
                refusal = session._csrf_refusal(request.method, request.scheme, field)
        if refusal is not None:
            return _json_response(403, CSRF_REFUSALS[refusal])
        return None

    def _after_request(self, response: Response) -> Response:
        session = g.get(_G_KEY)
        if session is None:
            return response
        for name, value in session.response_headers(response.status_code):
            if name == "Cache-Control":  # a response with a session is never stored
                response.headers[name] = value
            else:
                response.headers.add(name, value)
        return response


def _json_response(status: int, detail: str) -> Response:
    return Response(json.dumps({"detail": detail}), status=status, mimetype="application/json")


def optional_session() -> SyncRequestSession:
    """The request's session, live or not (check `.live`). Raises
    `LookupError` outside a request of an app with `UserSessions`."""
    session = g.get(_G_KEY) if g else None
    if not isinstance(session, SyncRequestSession):
        raise LookupError("usersession: UserSessions did not handle this request.")
    return session


def current_session() -> SyncRequestSession:
    """The request's live session, or abort with the status
    `usersession.web.status_for` gives (401 no session or ended, 403 another
    device, 503 storage down), as JSON `{"detail": ...}`."""
    session = optional_session()
    if not session.live:
        status, detail = status_for(session.error)
        abort(_json_response(status, detail))
    return session
