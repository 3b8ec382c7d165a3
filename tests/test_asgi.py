"""The ASGI middleware (usersession.asgi) under Starlette and FastAPI, driven
by httpx over the ASGI transport: every rule of the web transport, time from
a ManualClock.

Each test runs under both frameworks (the `make_app` fixture)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.web_apps import (
    ASGI_APPS,
    CLIENT_IP,
    COOKIE,
    FIREFOX,
    PHONE,
    SECRET,
    Visitor,
    session_cookie,
    set_cookies,
)
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
from usersession.asgi import SessionMiddleware, optional_session, request_session
from usersession.web import WebSettings, decode_token, encode_token

pytestmark = pytest.mark.anyio

TTL = 3600
IDLE = 900
RENEWAL = 600
GRACE = 30

MakeApp = Callable[..., Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def manager(clock: ManualClock) -> AsyncUserSessionManager:
    return AsyncUserSessionManager(
        InMemorySessionStorage(clock=clock),
        session_ttl=TTL,
        timeouts=Timeouts(idle=IDLE, renewal=RENEWAL, renewal_grace=GRACE),
    )


@pytest.fixture(params=sorted(ASGI_APPS))
def make_app(request: pytest.FixtureRequest, manager: AsyncUserSessionManager) -> MakeApp:
    build = ASGI_APPS[request.param]

    def make(
        *, around: bool = False, manager: AsyncUserSessionManager = manager, **settings: Any
    ) -> Any:
        return build(manager, WebSettings(secret=SECRET, **settings), around=around)

    return make


@pytest.fixture
def app(make_app: MakeApp) -> Any:
    return make_app()


@pytest.fixture
def visitor(app: Any) -> Visitor:
    return Visitor(app)


def clears_the_cookie(header: str) -> bool:
    return header == f"{COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"


# -- the cookie ------------------------------------------------------------------------


async def test_login_sets_a_host_only_secure_http_only_lax_cookie_for_the_sessions_life(
    visitor: Visitor,
) -> None:
    response = await visitor.login("alice")
    [header] = set_cookies(response)
    token = visitor.token
    assert token is not None
    assert header == f"{COOKIE}={token}; Max-Age={TTL}; Path=/; Secure; HttpOnly; SameSite=Lax"
    subject, session_id = decode_token(token) or ("", "")
    assert subject == "alice"
    assert UserSessionManager.hash(session_id) == response.json()["handle"]
    assert response.headers["cache-control"] == "no-store"


async def test_same_site_strict_is_a_setting(make_app: MakeApp) -> None:
    visitor = Visitor(make_app(same_site="strict"))
    response = await visitor.login()
    assert set_cookies(response)[0].endswith("; SameSite=Strict")


async def test_the_cookie_authenticates_later_requests_without_being_set_again(
    visitor: Visitor,
) -> None:
    await visitor.login("alice")
    response = await visitor.get("/me")
    assert response.status_code == 200
    assert response.json()["subject"] == "alice"
    assert set_cookies(response) == []
    assert response.headers["cache-control"] == "no-store"


async def test_the_context_comes_from_the_client_address_and_user_agent(
    visitor: Visitor,
) -> None:
    await visitor.login()
    me = (await visitor.get("/me")).json()
    assert me["ip"] == CLIENT_IP
    assert me["device"] == ["Firefox on Linux", "desktop"]


async def test_a_request_without_a_user_agent_still_has_a_device_and_stays_bound_to_it(
    app: Any,
) -> None:
    visitor = Visitor(app, user_agent=None)
    await visitor.login()
    assert (await visitor.get("/me")).json()["device"] == ["Unknown", "unknown"]
    # Naming a device now is another device: binding holds both ways.
    response = await visitor.get("/me", headers={"user-agent": FIREFOX})
    assert response.status_code == 403


async def test_the_cookie_max_age_counts_down_to_expires_at_on_a_renewal(
    visitor: Visitor, clock: ManualClock
) -> None:
    await visitor.login()
    clock.advance(RENEWAL)
    response = await visitor.get("/me")
    [header] = set_cookies(response)
    # The successor gets the same lifetime, from now.
    assert f"; Max-Age={TTL};" in header


# -- renewal rotation ------------------------------------------------------------------


async def test_a_renewing_read_hands_out_the_new_token_on_a_200(
    visitor: Visitor, clock: ManualClock
) -> None:
    await visitor.login()
    old = visitor.token
    clock.advance(RENEWAL)
    response = await visitor.get("/me")
    assert response.status_code == 200
    assert visitor.token is not None and visitor.token != old
    assert response.json()["handle"] == UserSessionManager.hash(decode_token(visitor.token)[1])  # type: ignore[index]
    assert (await visitor.get("/me")).status_code == 200


async def test_a_renewing_read_hands_out_the_new_token_on_a_500_from_the_endpoint(
    make_app: MakeApp, clock: ManualClock
) -> None:
    for around in (False, True):
        visitor = Visitor(make_app(around=around))
        await visitor.login()
        old = visitor.token
        clock.advance(RENEWAL)
        response = await visitor.get("/boom")
        assert response.status_code == 500
        assert visitor.token is not None and visitor.token != old, f"around={around}"
        assert response.headers["cache-control"] == "no-store"
        # The old id dies with its grace; the client holds the new one.
        clock.advance(GRACE)
        assert (await visitor.get("/me")).status_code == 200


async def test_an_endpoint_error_without_a_token_change_is_left_to_the_framework(
    visitor: Visitor,
) -> None:
    await visitor.login()
    response = await visitor.get("/boom")
    assert response.status_code == 500
    assert set_cookies(response) == []


async def test_the_old_token_keeps_working_inside_the_grace_without_a_second_renewal(
    visitor: Visitor, clock: ManualClock
) -> None:
    await visitor.login()
    old = visitor.token
    assert old is not None
    clock.advance(RENEWAL)
    await visitor.get("/me")
    new = visitor.token
    clock.advance(GRACE - 1)
    in_grace = await visitor.get("/me", token=old)
    assert in_grace.status_code == 200
    assert session_cookie(in_grace) is None  # not renewed again, not cleared
    clock.advance(1)
    after_grace = await visitor.get("/me", token=old)
    assert after_grace.status_code == 401
    assert clears_the_cookie(set_cookies(after_grace)[0])
    assert (await visitor.get("/me", token=new)).status_code == 200


# -- 401, 403, 503 ----------------------------------------------------------------------


async def test_a_401_clears_the_cookie(visitor: Visitor, clock: ManualClock) -> None:
    await visitor.login()
    clock.advance(TTL)
    response = await visitor.get("/me")
    assert response.status_code == 401
    [header] = set_cookies(response)
    assert clears_the_cookie(header)
    assert visitor.token is None


async def test_an_app_answering_401_itself_clears_the_cookie_too(visitor: Visitor) -> None:
    await visitor.login()
    response = await visitor.get("/refuse")
    assert response.status_code == 401
    assert clears_the_cookie(set_cookies(response)[0])


async def test_an_idle_session_is_a_401(visitor: Visitor, clock: ManualClock) -> None:
    await visitor.login()
    clock.advance(IDLE)
    response = await visitor.get("/me")
    assert response.status_code == 401
    assert clears_the_cookie(set_cookies(response)[0])


async def test_no_session_is_a_401_on_a_protected_route_and_nothing_on_a_public_one(
    visitor: Visitor,
) -> None:
    assert (await visitor.get("/me")).status_code == 401
    public = await visitor.get("/public")
    assert public.status_code == 200
    assert public.json() == {"live": False}
    assert set_cookies(public) == []
    assert "cache-control" not in public.headers


async def test_a_token_from_another_device_is_a_403_and_keeps_the_session(
    visitor: Visitor, app: Any
) -> None:
    await visitor.login()
    thief = Visitor(app, user_agent=PHONE)
    response = await thief.get("/me", token=visitor.token)
    assert response.status_code == 403
    assert set_cookies(response) == []
    assert (await visitor.get("/me")).status_code == 200


async def test_a_failing_storage_is_a_503(make_app: MakeApp, clock: ManualClock) -> None:
    class FailingStorage(InMemorySessionStorage):
        failing = False

        def read(self, subject: str, session_id: str, now: int) -> Any:
            if self.failing:
                raise SessionStorageError(ErrorCode.STORAGE_FAILURE, "The storage is down.")
            return super().read(subject, session_id, now)

    storage = FailingStorage(clock=clock)
    manager = AsyncUserSessionManager(storage, session_ttl=TTL)
    visitor = Visitor(make_app(manager=manager))
    await visitor.login()
    storage.failing = True
    response = await visitor.get("/me")
    assert response.status_code == 503
    assert set_cookies(response) == []  # the session may well be fine: keep it
    storage.failing = False
    assert (await visitor.get("/me")).status_code == 200


# -- tokens that name no session -----------------------------------------------------------

BAD_TOKENS = [
    "garbage",
    "",
    '"v1.YWxpY2U.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"',
    "v2.YWxpY2U.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "v1.__8.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "v1.YWxpY2U.short",
    "v1.YWxpY2U." + "A" * 5000,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl",
    "v1.YWxpY2U.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  # well formed, unknown id
]


@pytest.mark.parametrize("token", BAD_TOKENS)
async def test_a_malformed_oversized_or_unknown_token_is_no_session_and_is_cleared(
    visitor: Visitor, token: str
) -> None:
    public = await visitor.get("/public", token=token)
    assert public.status_code == 200
    assert public.json() == {"live": False}
    assert clears_the_cookie(set_cookies(public)[0])
    assert (await visitor.get("/me", token=token)).status_code == 401


async def test_an_id_presented_with_another_subject_is_never_adopted(visitor: Visitor) -> None:
    await visitor.login("alice")
    assert visitor.token is not None
    _, session_id = decode_token(visitor.token) or ("", "")
    forged = encode_token("bob", session_id)
    assert (await visitor.get("/me", token=forged)).status_code == 401


async def test_logging_in_never_adopts_the_token_the_request_carried(visitor: Visitor) -> None:
    planted = encode_token("alice", "A" * 32)
    response = await visitor.post("/login?user=alice", token=planted)
    assert response.status_code == 200
    handed_out = decode_token(session_cookie(response) or "")
    assert handed_out is not None
    assert handed_out[1] != "A" * 32


# -- CSRF ------------------------------------------------------------------------------------


async def test_an_unsafe_request_with_a_cookie_and_no_csrf_token_is_refused(
    visitor: Visitor,
) -> None:
    await visitor.login()
    response = await visitor.post("/action", data={"note": "hi"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


async def test_the_csrf_token_is_accepted_from_the_header(visitor: Visitor) -> None:
    await visitor.login()
    response = await visitor.post_with_csrf("/action", data={"note": "hi"})
    assert response.status_code == 200
    assert response.json() == {"note": "hi"}


async def test_the_csrf_token_is_accepted_from_a_form_field_and_the_form_reaches_the_app(
    visitor: Visitor,
) -> None:
    await visitor.login()
    response = await visitor.post("/action", data={"note": "hi", "csrf_token": visitor.csrf})
    assert response.status_code == 200
    assert response.json() == {"note": "hi"}


async def test_the_csrf_token_is_accepted_from_a_multipart_form(visitor: Visitor) -> None:
    await visitor.login()
    response = await visitor.post(
        "/action",
        data={"note": "hi", "csrf_token": visitor.csrf},
        files={"upload": ("a.txt", b"contents", "text/plain")},
    )
    assert response.status_code == 200
    assert response.json() == {"note": "hi"}


async def test_a_wrong_csrf_token_is_refused(visitor: Visitor, app: Any) -> None:
    await visitor.login()
    other = Visitor(app)
    await other.login("alice")
    # Another session's token, even the same user's, is not this session's.
    response = await visitor.post("/action", headers={"x-csrf-token": other.csrf or ""})
    assert response.status_code == 403
    response = await visitor.post("/action", data={"csrf_token": "x" * 43})
    assert response.status_code == 403


async def test_a_form_too_large_to_search_must_send_the_header(make_app: MakeApp) -> None:
    visitor = Visitor(make_app(max_form_bytes=100))
    await visitor.login()
    data = {"note": "x" * 200, "csrf_token": visitor.csrf}
    assert (await visitor.post("/action", data=data)).status_code == 403
    assert (await visitor.post_with_csrf("/action", data=data)).status_code == 200


async def test_a_foreign_origin_is_refused_even_with_the_right_token(visitor: Visitor) -> None:
    await visitor.login()
    for origin in ("https://evil.example", "null", "http://app.example"):
        response = await visitor.post_with_csrf("/action", headers={"origin": origin})
        assert response.status_code == 403, origin
        assert "Origin" in response.json()["detail"]
    same = await visitor.post_with_csrf("/action", headers={"origin": "https://app.example"})
    assert same.status_code == 200


async def test_a_trusted_origin_is_accepted(make_app: MakeApp) -> None:
    visitor = Visitor(make_app(trusted_origins=["https://partner.example"]))
    await visitor.login()
    response = await visitor.post_with_csrf(
        "/action", headers={"origin": "https://partner.example"}
    )
    assert response.status_code == 200


async def test_a_cross_site_login_form_is_refused_by_origin(visitor: Visitor) -> None:
    response = await visitor.post("/login?user=alice", headers={"origin": "https://evil.example"})
    assert response.status_code == 403
    assert visitor.token is None


async def test_safe_methods_need_no_csrf_token(visitor: Visitor) -> None:
    await visitor.login()
    response = await visitor.get("/me", headers={"origin": "https://evil.example"})
    assert response.status_code == 200


async def test_a_csrf_refusal_still_hands_out_a_renewed_token(
    visitor: Visitor, clock: ManualClock
) -> None:
    await visitor.login()
    old = visitor.token
    clock.advance(RENEWAL)
    response = await visitor.post("/action")
    assert response.status_code == 403
    assert visitor.token != old and visitor.token is not None


async def test_a_page_rendered_before_a_renewal_still_posts_after_it(
    visitor: Visitor, clock: ManualClock
) -> None:
    await visitor.login()
    page_token = visitor.csrf
    clock.advance(RENEWAL)
    old = visitor.token
    await visitor.get("/me")  # another tab renews the session: the cookie changes
    assert visitor.token != old
    await visitor.refresh_csrf()
    assert visitor.csrf == page_token  # one CSRF token per login
    assert (await visitor.post_with_csrf("/action")).status_code == 200


# -- API clients: the header transport --------------------------------------------------------


async def test_an_api_client_logs_in_and_authenticates_with_the_authorization_header(
    visitor: Visitor,
) -> None:
    response = await visitor.post("/login?user=alice&transport=header")
    token = response.headers["session-token"]
    assert response.json()["token"] == token
    assert set_cookies(response) == []
    me = await visitor.get("/me", headers={"authorization": f"Session {token}"})
    assert me.status_code == 200
    assert me.json()["subject"] == "alice"
    assert me.headers["cache-control"] == "no-store"


async def test_api_clients_are_exempt_from_csrf(visitor: Visitor) -> None:
    token = (await visitor.post("/login?user=alice&transport=header")).headers["session-token"]
    response = await visitor.post(
        "/action",
        headers={"authorization": f"Session {token}", "origin": "https://elsewhere.example"},
    )
    assert response.status_code == 200


async def test_an_api_client_gets_the_renewed_token_in_the_response_header(
    visitor: Visitor, clock: ManualClock
) -> None:
    token = (await visitor.post("/login?user=alice&transport=header")).headers["session-token"]
    clock.advance(RENEWAL)
    response = await visitor.get("/me", headers={"authorization": f"Session {token}"})
    assert response.status_code == 200
    assert response.headers["session-token"] not in ("", token)
    assert set_cookies(response) == []


async def test_a_custom_header_carries_the_bare_token(make_app: MakeApp) -> None:
    visitor = Visitor(make_app(header="X-Session", transport="header"))
    response = await visitor.post("/login?user=alice")
    token = response.headers["session-token"]
    assert set_cookies(response) == []
    assert (await visitor.get("/me", headers={"x-session": token})).status_code == 200
    # With the header transport alone, a cookie is not even looked at.
    assert (await visitor.get("/me", token=token)).status_code == 401


# -- no-store ------------------------------------------------------------------------------------


async def test_a_response_carrying_a_session_is_no_store_whatever_the_app_said(
    visitor: Visitor,
) -> None:
    await visitor.login()
    response = await visitor.get("/cached")
    assert response.headers.get_list("cache-control") == ["no-store"]


# -- the request helpers ------------------------------------------------------------------------


async def test_logout_ends_the_whole_login_and_clears_the_cookie(
    visitor: Visitor, clock: ManualClock
) -> None:
    await visitor.login()
    old = visitor.token
    clock.advance(RENEWAL)
    await visitor.refresh_csrf()  # renewed: the old id is in its grace
    response = await visitor.post_with_csrf("/logout")
    assert response.json() == {"removed": 2}
    assert clears_the_cookie(set_cookies(response)[0])
    assert (await visitor.get("/me", token=old)).status_code == 401


async def test_logout_without_a_session_removes_nothing(visitor: Visitor) -> None:
    response = await visitor.post("/logout")
    assert response.status_code == 200
    assert response.json() == {"removed": 0}


async def test_logging_in_again_ends_the_login_the_request_carried(visitor: Visitor) -> None:
    await visitor.login("alice")
    first = visitor.token
    response = await visitor.post("/login?user=bob", headers={"x-csrf-token": visitor.csrf or ""})
    assert response.status_code == 200
    assert visitor.token != first
    assert (await visitor.get("/me", token=first)).status_code == 401
    assert (await visitor.get("/me")).json()["subject"] == "bob"


async def test_a_login_refused_after_ending_the_carried_one_clears_the_cookie(
    make_app: MakeApp, clock: ManualClock
) -> None:
    # bob may hold one session and holds it elsewhere: alice's request to log
    # in as bob ends her login, then the create is refused. Her cookie now
    # names a dead session and must not be left in the browser.
    manager = AsyncUserSessionManager(
        InMemorySessionStorage(clock=clock, max_sessions_per_subject=1), session_ttl=TTL
    )
    app = make_app(manager=manager)
    await Visitor(app).login("bob")
    visitor = Visitor(app)
    await visitor.login("alice")
    alice = visitor.token
    response = await visitor.post("/login?user=bob", headers={"x-csrf-token": visitor.csrf or ""})
    assert response.status_code == 500
    assert clears_the_cookie(set_cookies(response)[0])
    assert visitor.token is None
    assert (await visitor.get("/me", token=alice)).status_code == 401


async def test_the_devices_listing_marks_this_device_and_lists_every_login(
    app: Any, clock: ManualClock
) -> None:
    laptop = Visitor(app, FIREFOX, ip="198.51.100.1")
    phone = Visitor(app, PHONE, ip="198.51.100.2")
    await laptop.login("alice")
    clock.advance(60)
    await phone.login("alice")
    clock.advance(5)
    rows = (await laptop.get("/devices")).json()
    assert [(row["device"], row["ip"], row["this_device"]) for row in rows] == [
        (["Firefox on Linux", "desktop"], "198.51.100.1", True),
        (["Mobile Safari on iOS", "mobile"], "198.51.100.2", False),
    ]
    assert rows[0]["authenticated_at"] == clock.now - 65
    assert rows[0]["last_seen"] == clock.now
    assert rows[1]["authenticated_at"] == rows[1]["last_seen"] == clock.now - 5


async def test_this_device_is_marked_from_inside_the_renewal_grace(
    visitor: Visitor, clock: ManualClock
) -> None:
    await visitor.login()
    old = visitor.token
    clock.advance(RENEWAL)
    await visitor.get("/me")  # renewed; the listing now shows the successor
    rows = (await visitor.get("/devices", token=old)).json()
    assert [row["this_device"] for row in rows] == [True]


async def test_revoking_another_device_logs_it_out(app: Any) -> None:
    laptop, phone = Visitor(app, FIREFOX), Visitor(app, PHONE)
    await laptop.login("alice")
    await phone.login("alice")
    other = next(row for row in (await laptop.get("/devices")).json() if not row["this_device"])
    response = await laptop.post_with_csrf(f"/revoke/{other['handle']}")
    assert response.json() == {"removed": True}
    assert (await phone.get("/me")).status_code == 401
    assert (await laptop.get("/me")).status_code == 200


async def test_a_handle_of_another_subject_revokes_nothing(app: Any) -> None:
    alice, bob = Visitor(app), Visitor(app)
    await alice.login("alice")
    await bob.login("bob")
    bobs = (await bob.get("/devices")).json()[0]["handle"]
    assert (await alice.post_with_csrf(f"/revoke/{bobs}")).json() == {"removed": False}
    assert (await bob.get("/me")).status_code == 200


async def test_logout_other_devices_keeps_this_login_only(app: Any) -> None:
    laptop, phone, tablet = Visitor(app), Visitor(app, PHONE), Visitor(app, PHONE)
    for visitor in (laptop, phone, tablet):
        await visitor.login("alice")
    response = await laptop.post_with_csrf("/logout-others")
    assert response.json() == {"removed": 2}
    assert set_cookies(response) == []
    assert (await laptop.get("/me")).status_code == 200
    assert (await phone.get("/me")).status_code == 401
    assert (await tablet.get("/me")).status_code == 401


async def test_logout_everywhere_ends_this_login_too(app: Any) -> None:
    laptop, phone = Visitor(app), Visitor(app, PHONE)
    await laptop.login("alice")
    await phone.login("alice")
    response = await laptop.post_with_csrf("/logout-everywhere")
    assert response.json() == {"removed": 2}
    assert clears_the_cookie(set_cookies(response)[0])
    assert (await phone.get("/me")).status_code == 401


# -- nothing secret in bodies or logs --------------------------------------------------------------


async def test_no_session_id_or_subject_reaches_a_body_or_a_log(
    app: Any, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    subject = "alice.secret@example.com"
    visitor = Visitor(app)
    await visitor.post(f"/login?user={subject}")
    token = visitor.token
    assert token is not None
    _, session_id = decode_token(token) or ("", "")
    bodies = [
        await visitor.get("/me", headers={"user-agent": PHONE}),  # another device: 403
        await visitor.post("/action"),  # no CSRF token: 403
        await visitor.post_with_csrf("/action", headers={"origin": "https://evil.example"}),
        await visitor.get("/boom"),  # 500
    ]
    clock.advance(RENEWAL)
    bodies.append(await visitor.get("/boom"))  # a renewal, then a 500
    clock.advance(IDLE)
    bodies.append(await visitor.get("/me"))  # idle: 401
    bodies.append(await visitor.get("/me", token=encode_token(subject, session_id)))
    bodies.append(await visitor.get("/me", token=token + "x"))
    texts = [response.text for response in bodies]
    # httpx's own records are the test client's, which sent the subject itself.
    records = [record for record in caplog.records if record.name != "httpx"]
    texts += [record.getMessage() for record in records]
    texts += [record.exc_text or "" for record in records]
    assert records, "the middleware said nothing at DEBUG: the test proves nothing"
    for text in texts:
        assert session_id not in text
        assert subject not in text
        assert "alice.secret" not in text


# -- construction and plumbing ------------------------------------------------------


async def test_the_middleware_refuses_a_sync_manager_and_bad_settings(clock: ManualClock) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    sync_manager = UserSessionManager(InMemorySessionStorage(clock=clock), session_ttl=TTL)
    with pytest.raises(InvalidTypeError):
        SessionMiddleware(app, manager=sync_manager, settings=WebSettings(secret=SECRET))  # type: ignore[arg-type]
    async_manager = AsyncUserSessionManager(InMemorySessionStorage(clock=clock), session_ttl=TTL)
    with pytest.raises(InvalidTypeError):
        SessionMiddleware(app, manager=async_manager, settings={"secret": SECRET})  # type: ignore[arg-type]


async def test_a_cookie_header_split_in_several_still_carries_the_session(
    visitor: Visitor,
) -> None:
    # HTTP/2 clients may send each cookie as a header of its own.
    await visitor.login()
    headers = [
        ("user-agent", FIREFOX),
        ("cookie", "theme=dark"),
        ("cookie", f"{COOKIE}={visitor.token}"),
    ]
    response = await visitor.client.get("/me", headers=httpx.Headers(headers))
    assert response.status_code == 200
    assert response.json()["subject"] == "alice"


async def test_many_repeated_headers_are_joined_in_linear_time(
    manager: AsyncUserSessionManager,
) -> None:
    # Joining each repeat onto the value so far copied it every time: 1 MiB
    # of 10-byte cookie headers took about 2 s before a session was read.
    middleware = SessionMiddleware(
        lambda *_: None, manager=manager, settings=WebSettings(secret=SECRET)
    )
    scope = {"type": "http", "headers": [(b"cookie", b"k=v; a=b; ")] * 100_000}
    started = time.perf_counter()
    session = middleware._session(scope)
    assert time.perf_counter() - started < 0.2
    assert not session.live


async def test_other_scopes_pass_through_untouched(manager: AsyncUserSessionManager) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    middleware = SessionMiddleware(app, manager=manager, settings=WebSettings(secret=SECRET))

    async def nothing() -> Any: ...

    scope = {"type": "lifespan"}
    await middleware(scope, nothing, nothing)  # type: ignore[arg-type]
    assert seen == [{"type": "lifespan"}]


async def test_the_session_is_found_only_where_the_middleware_put_it() -> None:
    with pytest.raises(LookupError):
        request_session({"type": "http"})
    with pytest.raises(LookupError):
        await optional_session()
