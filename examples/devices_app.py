"""A "your devices" page on FastAPI: log in, see every device logged in as
you, log one out, log out here or everywhere.

Run it from the repository root (after README's test command made .venv):

    .venv/bin/python examples/devices_app.py

then open http://127.0.0.1:8000/ and log in as alice / alice-pw or
bob / bob-pw, in two browsers (or a private window) to see two devices.
`create_app(manager, secret=...)` builds the same app on another manager
(Redis, a ManualClock in tests); `app` is the default one, for
`uvicorn examples.devices_app:app`.

Everything session-related is `usersession.asgi`; what is here is the app:
the users, the endpoints (the first part below) and their HTML.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from html import escape
from typing import Annotated

from fastapi import Depends, FastAPI, Form
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from usersession import AsyncUserSessionManager, InMemorySessionStorage, Timeouts
from usersession.asgi import (
    AsyncRequestSession,
    SessionMiddleware,
    current_session,
    optional_session,
)
from usersession.web import DeviceEntry, WebSettings

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
"""Demo users and their passwords (a real app checks a password hash)."""

Session = Annotated[AsyncRequestSession, Depends(optional_session)]
LiveSession = Annotated[AsyncRequestSession, Depends(current_session)]


def create_app(
    manager: AsyncUserSessionManager | None = None,
    *,
    secret: bytes | str | None = None,
    secure: bool = True,
) -> FastAPI:
    """The devices app over `manager` (default: in memory, 8 h sessions, idle
    after 30 min, renewed every 15 min, a login lasting 12 h at most).
    `secret` signs CSRF tokens (default: random per process, which suits
    in-memory sessions: both end with it). `secure=False` is for plain HTTP
    in development only (docs/web.md): a cookie without `Secure`."""
    if manager is None:
        timeouts = Timeouts(idle=1800, renewal=900, renewal_grace=30, absolute=12 * 3600)
        manager = AsyncUserSessionManager(
            InMemorySessionStorage(), session_ttl=8 * 3600, timeouts=timeouts
        )
    settings = WebSettings(secret=secret or secrets.token_bytes(32), secure=secure)
    app = FastAPI(title="usersession devices example")
    app.add_middleware(SessionMiddleware, manager=manager, settings=settings)

    @app.get("/login")
    async def login_form() -> HTMLResponse:
        return HTMLResponse(login_page())

    @app.post("/login")
    async def login(
        session: Session, username: Annotated[str, Form()], password: Annotated[str, Form()]
    ) -> Response:
        known = USERS.get(username, "")
        if not (known and hmac.compare_digest(known, password)):
            return HTMLResponse(login_page("Wrong user name or password."), status_code=401)
        await session.login(username)
        return RedirectResponse("/", status_code=303)

    @app.get("/")
    async def devices(session: Session) -> Response:
        if not session.live:
            return RedirectResponse("/login", status_code=303)
        return HTMLResponse(devices_page(session, await session.devices()))

    @app.post("/devices/{handle}/revoke")
    async def revoke(session: LiveSession, handle: str) -> Response:
        await session.revoke(handle)
        return RedirectResponse("/", status_code=303)

    @app.post("/logout")
    async def logout(session: Session) -> Response:
        await session.logout()
        return RedirectResponse("/login", status_code=303)

    @app.post("/logout-everywhere")
    async def logout_everywhere(session: LiveSession) -> Response:
        await session.logout_everywhere()
        return RedirectResponse("/login", status_code=303)

    @app.get("/api/me")
    async def me(session: LiveSession) -> dict[str, str | None]:
        return {"subject": session.subject, "handle": session.handle}

    return app


# -- HTML ------------------------------------------------------------------------

_STYLE = """<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; padding: .5rem .75rem; border-bottom: 1px solid #ddd; }
td + td { white-space: nowrap; }
tr.this-device { background: #eef6ff; }
form.inline { display: inline; }
button { font: inherit; padding: .25rem .75rem; }
.error { color: #b00020; }
</style>"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>{_STYLE}</head><body>{body}</body></html>"
    )


def login_page(error: str = "") -> str:
    """The login form (fields `username` and `password`)."""
    message = f'<p class="error" id="error">{escape(error)}</p>' if error else ""
    return _page(
        "Log in",
        f"""<h1>Log in</h1>{message}
<form method="post" action="/login">
  <p><label>User name <input name="username" id="username" autocomplete="username"></label></p>
  <p><label>Password <input name="password" id="password" type="password"
     autocomplete="current-password"></label></p>
  <p><button type="submit" id="login">Log in</button></p>
</form>""",
    )


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _post_button(action: str, label: str, csrf: str, element_id: str = "") -> str:
    identifier = f' id="{escape(element_id)}"' if element_id else ""
    return (
        f'<form class="inline" method="post" action="{escape(action)}">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        f'<button type="submit"{identifier}>{escape(label)}</button></form>'
    )


def devices_page(session: AsyncRequestSession, entries: list[DeviceEntry]) -> str:
    """One row per active login: device, IP, login time, last seen, and
    "this device" or a revoke button."""
    csrf = session.csrf_token or ""
    rows = []
    for entry in entries:
        device = f"{entry.device.name} ({entry.device.type})" if entry.device else "unknown"
        if entry.this_device:
            action = "<strong>this device</strong>"
        else:
            target = f"/devices/{entry.handle}/revoke"
            action = _post_button(target, "Revoke", csrf, "revoke-" + entry.handle)
        rows.append(
            f'<tr class="{"this-device" if entry.this_device else "device"}">'
            f"<td>{escape(device)}</td><td>{escape(entry.ip)}</td>"
            f"<td>{_time(entry.authenticated_at)}</td><td>{_time(entry.last_seen)}</td>"
            f"<td>{action}</td></tr>"
        )
    return _page(
        "Your devices",
        f"""<h1>Your devices</h1>
<p>Logged in as <strong id="subject">{escape(session.subject or "")}</strong>.
{len(entries)} active login{"" if len(entries) == 1 else "s"}.</p>
<table id="devices"><thead><tr><th>Device</th><th>IP</th><th>Logged in</th>
<th>Last seen</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<p>{_post_button("/logout", "Log out", csrf, "logout")}
{_post_button("/logout-everywhere", "Log out everywhere", csrf, "logout-everywhere")}</p>""",
    )


app = create_app()

if __name__ == "__main__":
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="The devices app on http://127.0.0.1:8000/")
    parser.add_argument(
        "--plain-http",
        action="store_true",
        help="cookies without Secure, for browsers other than Chromium over plain HTTP",
    )
    options = parser.parse_args()
    served = create_app(secure=False) if options.plain_http else app
    uvicorn.run(served, host="127.0.0.1", port=8000)
