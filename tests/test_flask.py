"""The Flask extension (usersession.flask), driven by Flask's test client:
the same transport rules as the ASGI middleware, over the sync manager."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from tests.web_apps import BASE_URL, CLIENT_IP, COOKIE, FIREFOX, PHONE, SECRET, flask_app
from usersession import (
    AsyncUserSessionManager,
    ErrorCode,
    InMemorySessionStorage,
    InvalidTypeError,
    ManualClock,
    SessionStorageError,
    Timeouts,
    UserSessionManager,
)
from usersession.flask import UserSessions, optional_session
from usersession.web import WebSettings, decode_token, encode_token

TTL = 3600
IDLE = 900
RENEWAL = 600
GRACE = 30
CLEARED = f"{COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"


class FlaskVisitor:
    """One browser against a Flask app: its User-Agent and the session
    token it holds, kept by hand (the test client's cookie jar is off)."""

    def __init__(self, app: Flask, user_agent: str = FIREFOX) -> None:
        self.client = app.test_client(use_cookies=False)
        self.user_agent = user_agent
        self.token: str | None = None
        self.csrf: str | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **options: Any,
    ) -> TestResponse:
        sent = {"User-Agent": self.user_agent, **(headers or {})}
        cookie = token if token is not None else self.token
        if cookie is not None:
            sent["Cookie"] = f"{COOKIE}={cookie}"
        response = self.client.open(
            path,
            method=method,
            headers=sent,
            base_url=BASE_URL,
            environ_base={"REMOTE_ADDR": CLIENT_IP},
            **options,
        )
        new = session_cookie(response)
        if new is not None and token is None:
            self.token = new or None
        return response

    def get(self, path: str, **options: Any) -> TestResponse:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> TestResponse:
        return self.request("POST", path, **options)

    def login(self, user: str = "alice") -> TestResponse:
        response = self.post(f"/login?user={user}")
        assert response.status_code == 200, response.text
        self.csrf = response.json["csrf"]  # type: ignore[index]
        return response

    def post_with_csrf(self, path: str, **options: Any) -> TestResponse:
        headers = {"X-CSRF-Token": self.csrf or "", **options.pop("headers", {})}
        return self.post(path, headers=headers, **options)


def set_cookies(response: TestResponse) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def session_cookie(response: TestResponse) -> str | None:
    for header in set_cookies(response):
        name, _, rest = header.partition("=")
        if name == COOKIE:
            return rest.partition(";")[0]
    return None


class FailingStorage(InMemorySessionStorage):
    failing = False

    def read(self, subject: str, session_id: str, now: int) -> Any:
        if self.failing:
            raise SessionStorageError(ErrorCode.STORAGE_FAILURE, "The storage is down.")
        return super().read(subject, session_id, now)


@pytest.fixture
def storage(clock: ManualClock) -> FailingStorage:
    return FailingStorage(clock=clock)


@pytest.fixture
def app(storage: FailingStorage) -> Flask:
    manager = UserSessionManager(
        storage,
        session_ttl=TTL,
        timeouts=Timeouts(idle=IDLE, renewal=RENEWAL, renewal_grace=GRACE),
    )
    return flask_app(manager, WebSettings(secret=SECRET))


@pytest.fixture
def visitor(app: Flask) -> FlaskVisitor:
    return FlaskVisitor(app)


def test_login_sets_a_host_only_secure_http_only_lax_cookie(visitor: FlaskVisitor) -> None:
    response = visitor.login("alice")
    [header] = set_cookies(response)
    assert header == (
        f"{COOKIE}={visitor.token}; Max-Age={TTL}; Path=/; Secure; HttpOnly; SameSite=Lax"
    )
    assert decode_token(visitor.token or "") is not None
    assert response.headers["Cache-Control"] == "no-store"


def test_the_cookie_authenticates_with_the_clients_address_and_device(
    visitor: FlaskVisitor,
) -> None:
    visitor.login("alice")
    response = visitor.get("/me")
    assert response.status_code == 200
    assert response.json == {
        "subject": "alice",
        "handle": response.json["handle"],  # type: ignore[index]
        "csrf": visitor.csrf,
        "ip": CLIENT_IP,
        "device": ["Firefox on Linux", "desktop"],
    }
    assert set_cookies(response) == []


def test_a_renewing_read_hands_out_the_new_token_on_a_200(
    visitor: FlaskVisitor, clock: ManualClock
) -> None:
    visitor.login()
    old = visitor.token
    clock.advance(RENEWAL)
    assert visitor.get("/me").status_code == 200
    assert visitor.token not in (None, old)
    clock.advance(GRACE - 1)
    in_grace = visitor.get("/me", token=old)
    assert in_grace.status_code == 200
    assert session_cookie(in_grace) is None
    clock.advance(1)
    assert visitor.get("/me", token=old).status_code == 401
    assert visitor.get("/me").status_code == 200


def test_a_renewing_read_hands_out_the_new_token_on_a_500_from_the_endpoint(
    visitor: FlaskVisitor, clock: ManualClock
) -> None:
    visitor.login()
    old = visitor.token
    clock.advance(RENEWAL)
    response = visitor.get("/boom")
    assert response.status_code == 500
    assert visitor.token not in (None, old)
    clock.advance(GRACE)
    assert visitor.get("/me").status_code == 200


def test_a_401_clears_the_cookie(visitor: FlaskVisitor, clock: ManualClock) -> None:
    visitor.login()
    clock.advance(IDLE)
    response = visitor.get("/me")
    assert response.status_code == 401
    assert set_cookies(response) == [CLEARED]
    visitor.login()
    assert set_cookies(visitor.get("/refuse")) == [CLEARED]


def test_another_device_is_a_403_and_a_failing_storage_a_503(
    visitor: FlaskVisitor, app: Flask, storage: FailingStorage
) -> None:
    visitor.login()
    thief = FlaskVisitor(app, PHONE)
    assert thief.get("/me", token=visitor.token).status_code == 403
    storage.failing = True
    response = visitor.get("/me")
    assert response.status_code == 503
    assert set_cookies(response) == []


@pytest.mark.parametrize("token", ["garbage", "v1.YWxpY2U." + "A" * 5000, "v1.__8." + "A" * 32])
def test_a_malformed_or_oversized_token_is_no_session(visitor: FlaskVisitor, token: str) -> None:
    response = visitor.get("/public", token=token)
    assert response.status_code == 200
    assert response.json == {"live": False}
    assert set_cookies(response) == [CLEARED]
    assert visitor.get("/me", token=token).status_code == 401


def test_csrf_refuses_a_cookie_post_without_the_token_and_accepts_header_or_form(
    visitor: FlaskVisitor,
) -> None:
    visitor.login()
    assert visitor.post("/action", data={"note": "hi"}).status_code == 403
    assert visitor.post("/action", data={"note": "hi", "csrf_token": "x" * 43}).status_code == 403
    by_header = visitor.post_with_csrf("/action", data={"note": "hi"})
    assert by_header.status_code == 200
    assert by_header.json == {"note": "hi"}
    by_form = visitor.post("/action", data={"note": "hi", "csrf_token": visitor.csrf})
    assert by_form.json == {"note": "hi"}


def test_csrf_refuses_a_foreign_origin_and_exempts_api_clients(visitor: FlaskVisitor) -> None:
    visitor.login()
    evil = {"Origin": "https://evil.example"}
    assert visitor.post_with_csrf("/action", headers=evil).status_code == 403
    assert visitor.post("/login?user=alice", headers=evil).status_code == 403
    api_client = FlaskVisitor(visitor.client.application)
    token = api_client.post("/login?user=alice&transport=header").headers["Session-Token"]
    api = api_client.post("/action", headers={"Authorization": f"Session {token}", **evil})
    assert api.status_code == 200


def test_a_response_carrying_a_session_is_no_store_whatever_the_app_said(
    visitor: FlaskVisitor,
) -> None:
    visitor.login()
    assert visitor.get("/cached").headers.getlist("Cache-Control") == ["no-store"]
    assert "Cache-Control" not in FlaskVisitor(visitor.client.application).get("/public").headers


def test_the_helpers_list_revoke_and_log_out(app: Flask, clock: ManualClock) -> None:
    laptop, phone, tablet = FlaskVisitor(app), FlaskVisitor(app, PHONE), FlaskVisitor(app, PHONE)
    for visitor in (laptop, phone, tablet):
        visitor.login("alice")
    rows = laptop.get("/devices").json
    assert rows is not None
    assert [row["this_device"] for row in rows] == [True, False, False]
    assert laptop.post_with_csrf(f"/revoke/{rows[1]['handle']}").json == {"removed": True}
    assert laptop.post_with_csrf("/logout-others").json == {"removed": 1}
    assert phone.get("/me").status_code == 401
    assert tablet.get("/me").status_code == 401
    clock.advance(RENEWAL)
    old = laptop.token
    laptop.csrf = laptop.get("/me").json["csrf"]  # type: ignore[index]
    response = laptop.post_with_csrf("/logout")
    assert response.json == {"removed": 2}  # the renewed session and its predecessor
    assert set_cookies(response) == [CLEARED]
    assert laptop.get("/me", token=old).status_code == 401


def test_a_login_refused_after_ending_the_carried_one_clears_the_cookie(
    clock: ManualClock,
) -> None:
    # See the ASGI test of the same name: the carried login is gone, so is its cookie.
    manager = UserSessionManager(
        InMemorySessionStorage(clock=clock, max_sessions_per_subject=1), session_ttl=TTL
    )
    app = flask_app(manager, WebSettings(secret=SECRET))
    FlaskVisitor(app).login("bob")
    visitor = FlaskVisitor(app)
    visitor.login("alice")
    alice = visitor.token
    response = visitor.post("/login?user=bob", headers={"X-CSRF-Token": visitor.csrf or ""})
    assert response.status_code == 500
    assert set_cookies(response) == [CLEARED]
    assert visitor.token is None
    assert visitor.get("/me", token=alice).status_code == 401


def test_logout_everywhere_ends_every_login(app: Flask) -> None:
    laptop, phone = FlaskVisitor(app), FlaskVisitor(app, PHONE)
    laptop.login()
    phone.login()
    assert laptop.post_with_csrf("/logout-everywhere").json == {"removed": 2}
    assert phone.get("/me").status_code == 401


def test_no_session_id_or_subject_reaches_a_body_or_a_log(
    app: Flask, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    subject = "alice.secret@example.com"
    visitor = FlaskVisitor(app)
    visitor.login(subject)
    _, session_id = decode_token(visitor.token or "") or ("", "")
    responses = [
        visitor.get("/me", headers={"User-Agent": PHONE}),
        visitor.post("/action"),
        visitor.post_with_csrf("/action", headers={"Origin": "https://evil.example"}),
        visitor.get("/boom"),
    ]
    clock.advance(IDLE)
    responses.append(visitor.get("/me"))
    responses.append(visitor.get("/me", token=encode_token(subject, session_id)))
    texts = [response.text for response in responses]
    texts += [record.getMessage() + (record.exc_text or "") for record in caplog.records]
    assert caplog.records
    for text in texts:
        assert session_id not in text
        assert subject not in text


def test_the_extension_refuses_an_async_manager(clock: ManualClock) -> None:
    manager = AsyncUserSessionManager(InMemorySessionStorage(clock=clock), session_ttl=TTL)
    with pytest.raises(InvalidTypeError):
        UserSessions(Flask("x"), manager=manager, settings=WebSettings(secret=SECRET))  # type: ignore[arg-type]


def test_the_session_is_found_only_inside_a_handled_request() -> None:
    app = Flask("bare")
    with app.test_request_context("/"), pytest.raises(LookupError):
        optional_session()
