"""examples/devices_app.py keeps the contract a browser test can drive:
login form, 303s, one row per login, revoke, logout, /api/me. httpx over the
ASGI transport; the browser itself is tests/test_browser.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from examples.devices_app import create_app

from tests.web_apps import PHONE, SECRET, Visitor
from usersession import (
    AsyncUserSessionManager,
    InMemorySessionStorage,
    ManualClock,
    UserSessionManager,
)
from usersession.web import decode_token

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app(clock: ManualClock) -> Any:
    manager = AsyncUserSessionManager(InMemorySessionStorage(clock=clock), session_ttl=3600)
    return create_app(manager, secret=SECRET)


async def log_in(visitor: Visitor, username: str = "alice", password: str = "alice-pw") -> Any:
    return await visitor.post("/login", data={"username": username, "password": password})


def csrf_fields(page: str) -> list[str]:
    """The CSRF field of every POST form on the page ("" for a form without one)."""
    forms = re.findall(r'<form[^>]*method="post"[^>]*>(.*?)</form>', page, flags=re.S)
    return [(re.findall(r'name="csrf_token" value="([^"]*)"', form) or [""])[0] for form in forms]


async def test_the_login_page_is_a_form_with_username_and_password(app: Any) -> None:
    response = await Visitor(app).get("/login")
    assert response.status_code == 200
    assert 'name="username"' in response.text
    assert 'name="password"' in response.text


async def test_good_credentials_redirect_to_the_devices_page_with_the_cookie(app: Any) -> None:
    visitor = Visitor(app)
    response = await log_in(visitor)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert visitor.token is not None


@pytest.mark.parametrize(("username", "password"), [("alice", "bob-pw"), ("mallory", "x")])
async def test_bad_credentials_are_a_401_without_a_session(
    app: Any, username: str, password: str
) -> None:
    visitor = Visitor(app)
    response = await log_in(visitor, username, password)
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    assert visitor.token is None


async def test_the_devices_page_without_a_session_redirects_to_login(app: Any) -> None:
    response = await Visitor(app).get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_the_devices_page_lists_every_login_and_marks_this_one(app: Any) -> None:
    laptop, phone = Visitor(app), Visitor(app, PHONE)
    await log_in(laptop)
    await log_in(phone)
    await log_in(Visitor(app), "bob", "bob-pw")
    page = (await laptop.get("/")).text
    assert page.count("<tr class=") == 2
    assert page.count("this device") == 1
    assert "Mobile Safari on iOS (mobile)" in page
    assert "Firefox on Linux (desktop)" in page
    assert page.count(">Revoke<") == 1
    fields = csrf_fields(page)
    assert len(fields) == 3  # revoke, log out, log out everywhere
    assert all(fields) and len(set(fields)) == 1


async def test_revoking_the_other_device_sends_it_back_to_login(app: Any) -> None:
    laptop, phone = Visitor(app), Visitor(app, PHONE)
    await log_in(laptop)
    await log_in(phone)
    page = (await laptop.get("/")).text
    [action] = re.findall(r'action="(/devices/[^"]+/revoke)"', page)
    response = await laptop.post(action, data={"csrf_token": csrf_fields(page)[0]})
    assert response.status_code == 303
    assert (await phone.get("/")).headers["location"] == "/login"
    assert (await laptop.get("/")).text.count("<tr class=") == 1


async def test_forms_without_the_csrf_field_are_refused(app: Any) -> None:
    laptop = Visitor(app)
    await log_in(laptop)
    assert (await laptop.post("/logout")).status_code == 403
    assert (await laptop.get("/")).status_code == 200


async def test_logout_and_logout_everywhere(app: Any) -> None:
    laptop, phone = Visitor(app), Visitor(app, PHONE)
    await log_in(laptop)
    await log_in(phone)
    csrf = csrf_fields((await phone.get("/")).text)[0]
    response = await phone.post("/logout", data={"csrf_token": csrf})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert phone.token is None
    await log_in(phone)
    csrf = csrf_fields((await laptop.get("/")).text)[0]
    response = await laptop.post("/logout-everywhere", data={"csrf_token": csrf})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert (await phone.get("/")).status_code == 303
    assert (await laptop.get("/")).status_code == 303


async def test_api_me_answers_subject_and_handle_or_401(app: Any) -> None:
    visitor = Visitor(app)
    assert (await visitor.get("/api/me")).status_code == 401
    await log_in(visitor)
    me = (await visitor.get("/api/me")).json()
    _, session_id = decode_token(visitor.token or "") or ("", "")
    assert me == {"subject": "alice", "handle": UserSessionManager.hash(session_id)}


async def test_plain_http_for_development_sets_a_cookie_without_secure(clock: ManualClock) -> None:
    manager = AsyncUserSessionManager(InMemorySessionStorage(clock=clock), session_ttl=3600)
    visitor = Visitor(create_app(manager, secret=SECRET, secure=False))
    response = await log_in(visitor)
    assert response.status_code == 303
    [cookie] = response.headers.get_list("set-cookie")
    assert cookie.startswith("usersession=")
    assert "Secure" not in cookie and "HttpOnly" in cookie
