"""The HTTP transport both web adapters share (usersession.web): the token,
the cookie, CSRF, the Origin check, User-Agent to Device, statuses, and
settings refused at construction."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from usersession import (
    Device,
    ErrorCode,
    InvalidOptionsError,
    InvalidTypeError,
    SessionDeviceMismatchError,
    SessionExpiredError,
    SessionNotFoundError,
    SessionStorageError,
)
from usersession.web import (
    UNKNOWN_DEVICE,
    WebSettings,
    csrf_matches,
    csrf_token,
    decode_token,
    device_from_user_agent,
    encode_token,
    form_field,
    origin_allowed,
    parse_cookie,
    status_for,
)

SECRET = b"0123456789abcdef0123456789abcdef"
SESSION_ID = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-"


# -- the token ---------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["alice", "alice@example.com", "ünïcödé user", "a.b:c{d}"])
def test_a_token_carries_subject_and_id_and_decodes_back(subject: str) -> None:
    token = encode_token(subject, SESSION_ID)
    assert token.startswith("v1.")
    assert token.endswith("." + SESSION_ID)
    assert decode_token(token) == (subject, SESSION_ID)


def test_the_token_format_is_v1_base64url_subject_without_padding_then_the_id() -> None:
    assert encode_token("alice", SESSION_ID) == f"v1.YWxpY2U.{SESSION_ID}"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        f"v2.YWxpY2U.{SESSION_ID}",  # another version
        f"V1.YWxpY2U.{SESSION_ID}",
        f"v1..{SESSION_ID}",  # no subject
        f"v1.YWxpY2U{SESSION_ID}",  # a field missing
        f"v1.YWxpY2U.{SESSION_ID}.extra",
        f"v1.YW+pY2U.{SESSION_ID}",  # not base64url
        f"v1.YWxpY2U=.{SESSION_ID}",  # padding is not written, so not read
        f"v1.Y.{SESSION_ID}",  # impossible base64 length
        f"v1.__8.{SESSION_ID}",  # not UTF-8
        "v1.YWxpY2U.short",  # shorter than any id the manager makes
        f"v1.YWxpY2U.{SESSION_ID} ",
        f"v1.YWxpY2U.{SESSION_ID[:-1]}é",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl",  # a JWT
    ],
)
def test_anything_else_is_no_token(token: str) -> None:
    assert decode_token(token) is None


def test_an_oversized_token_is_no_token_without_being_parsed() -> None:
    token = encode_token("alice", "A" * 5000)
    assert decode_token(token) is None
    assert decode_token(token, max_length=len(token)) == ("alice", "A" * 5000)


def test_the_cookie_header_is_searched_for_the_name_exactly() -> None:
    header = "other=1; __Host-session=v1.abc.def; __Host-session-x=2"
    assert parse_cookie(header, "__Host-session") == "v1.abc.def"
    assert parse_cookie(header, "session") is None
    assert parse_cookie(None, "__Host-session") is None
    assert parse_cookie("a=1; b=2; a=3", "a") == "1"


# -- cookies and settings -----------------------------------------------------------


def test_the_default_cookie_is_host_only_secure_http_only_lax() -> None:
    settings = WebSettings(secret=SECRET)
    assert settings.set_cookie("v1.x.y", 3600) == (
        "__Host-session=v1.x.y; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Lax"
    )
    assert settings.clear_cookie() == (
        "__Host-session=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"
    )
    assert "Domain" not in settings.set_cookie("v1.x.y", 1)


def test_same_site_can_be_strict() -> None:
    settings = WebSettings(secret=SECRET, same_site="Strict")
    assert settings.set_cookie("t", 5).endswith("; SameSite=Strict")


def test_insecure_development_cookies_drop_secure_and_the_host_prefix() -> None:
    settings = WebSettings(secret=SECRET, secure=False)
    assert settings.set_cookie("t", 5) == "usersession=t; Max-Age=5; Path=/; HttpOnly; SameSite=Lax"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"secret": b"short"}, InvalidOptionsError),
        ({"secret": "x" * 31}, InvalidOptionsError),
        ({"secret": 12345}, InvalidTypeError),
        ({"secret": SECRET, "same_site": "none"}, InvalidOptionsError),
        ({"secret": SECRET, "same_site": None}, InvalidOptionsError),
        ({"secret": SECRET, "secure": False, "cookie_name": "__Host-session"}, InvalidOptionsError),
        ({"secret": SECRET, "secure": "yes"}, InvalidTypeError),
        ({"secret": SECRET, "cookie_name": "bad name;"}, InvalidOptionsError),
        ({"secret": SECRET, "transport": "carrier-pigeon"}, InvalidOptionsError),
        ({"secret": SECRET, "header": ""}, InvalidOptionsError),
        ({"secret": SECRET, "trusted_origins": "https://a.example"}, InvalidTypeError),
        ({"secret": SECRET, "max_form_bytes": 0}, InvalidOptionsError),
        ({"secret": SECRET, "device_from_user_agent": "firefox"}, InvalidTypeError),
    ],
)
def test_bad_settings_are_refused_at_construction(
    options: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error) as raised:
        WebSettings(**options)  # type: ignore[arg-type]
    assert raised.value.code is ErrorCode.INVALID_OPTION  # type: ignore[attr-defined]


def test_a_refused_secret_is_not_repeated_in_the_message() -> None:
    with pytest.raises(InvalidOptionsError) as raised:
        WebSettings(secret="hunter2-hunter2")
    assert "hunter2" not in str(raised.value)


# -- CSRF --------------------------------------------------------------------------


def test_the_csrf_token_is_an_hmac_of_the_login_key_under_the_secret() -> None:
    token = csrf_token(SECRET, "handle-a")
    assert len(token) == 43
    assert token == csrf_token(SECRET, "handle-a")
    assert token != csrf_token(SECRET, "handle-b")
    assert token != csrf_token(b"another secret, 32 bytes long!!!", "handle-a")
    assert csrf_matches(SECRET, "handle-a", token)
    assert not csrf_matches(SECRET, "handle-b", token)
    assert not csrf_matches(SECRET, "handle-a", None)
    assert not csrf_matches(SECRET, "handle-a", "")
    assert not csrf_matches(SECRET, "handle-a", "ü" * 43)


def test_the_csrf_field_is_found_in_urlencoded_and_multipart_forms() -> None:
    urlencoded = b"note=hi&csrf_token=abc%2Bdef&csrf_token=second"
    assert form_field("application/x-www-form-urlencoded", urlencoded, "csrf_token") == "abc+def"
    multipart = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="note"\r\n\r\nhi\r\n'
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="csrf_token"\r\n\r\nabc\r\n'
        b"--XyZ--\r\n"
    )
    assert form_field('multipart/form-data; boundary="XyZ"', multipart, "csrf_token") == "abc"
    assert form_field("multipart/form-data; boundary=XyZ", multipart, "missing") is None
    assert form_field("application/json", b'{"csrf_token": "abc"}', "csrf_token") is None
    assert form_field(None, urlencoded, "csrf_token") is None


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        ("https://app.example", True),
        ("https://APP.example", True),
        ("https://app.example:443", True),
        ("http://app.example", False),
        ("https://evil.example", False),
        ("https://app.example.evil.example", False),
        ("null", False),
        ("https://partner.example", True),
    ],
)
def test_an_origin_must_be_the_requests_own_or_trusted(origin: str | None, allowed: bool) -> None:
    trusted = frozenset({"https://partner.example"})
    assert origin_allowed(origin, "https", "app.example", trusted) is allowed


def test_the_csrf_field_is_found_only_at_a_field_boundary_and_decoded() -> None:
    def field(body: bytes) -> str | None:
        return form_field("application/x-www-form-urlencoded", body, "csrf_token")

    assert field(b"csrf_token=a+b%21") == "a b!"
    assert field(b"xcsrf_token=forged&csrf_token=real") == "real"
    assert field(b"note=csrf_token%3Dforged") is None
    assert field(b"note=x&csrf_token=&csrf_token=second") == ""
    assert field(b"note=" + b"x" * 100_000 + b"&csrf_token=found") == "found"


def test_a_hostile_form_body_is_searched_in_linear_time() -> None:
    # The largest body the middleware searches (max_form_bytes, 1 MiB):
    # decoding every field, as urllib's parse_qsl does, took 0.4-0.8 s here,
    # on the request's thread (the event loop, under ASGI).
    for body in (b"%" * 2**20, b"a=b&" * 2**18, b"csrf_token=" + b"%" * (2**20 - 11)):
        started = time.perf_counter()
        form_field("application/x-www-form-urlencoded", body, "csrf_token")
        assert time.perf_counter() - started < 0.1, body[:20]


def test_without_a_host_header_only_trusted_origins_pass() -> None:
    assert not origin_allowed("https://app.example", "https", None, ())
    assert origin_allowed("https://app.example", "https", None, {"https://app.example"})


# -- User-Agent to Device -------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "device"),
    [
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            Device("Firefox on Linux", "desktop"),
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36",
            Device("Chrome on Windows", "desktop"),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            Device("Mobile Safari on iOS", "mobile"),
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            Device("Mobile Safari on iOS", "tablet"),
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Mobile Safari/537.36",
            Device("Chrome Mobile on Android", "mobile"),
        ),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", Device("Googlebot", "bot")),
        ("curl/8.5.0", Device("curl", "other")),
        ("python-httpx/0.28.1", Device("Unknown browser", "other")),
    ],
)
def test_a_user_agent_names_a_device_without_versions(user_agent: str, device: Device) -> None:
    assert device_from_user_agent(user_agent) == device


def test_a_browser_update_keeps_the_device() -> None:
    old = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
    new = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
    assert device_from_user_agent(old) == device_from_user_agent(new)


def test_no_user_agent_is_still_a_device() -> None:
    assert device_from_user_agent(None) == UNKNOWN_DEVICE
    assert device_from_user_agent("") == UNKNOWN_DEVICE
    assert isinstance(device_from_user_agent("\x00" * 100_000), Device)


# -- statuses --------------------------------------------------------------------------


def test_session_errors_map_to_statuses_with_fixed_messages() -> None:
    def error(kind: type[Exception], code: ErrorCode) -> Exception:
        return kind(code, "Session 'h' of subject 'alice@example.com' failed.")

    cases = [
        (None, 401),
        (error(SessionNotFoundError, ErrorCode.USER_SESSION_NOT_FOUND), 401),
        (error(SessionExpiredError, ErrorCode.USER_SESSION_EXPIRED), 401),
        (
            error(
                SessionDeviceMismatchError,
                ErrorCode.FORBIDDEN_ACCESS_TO_USER_SESSION_FROM_DIFFERENT_DEVICE,
            ),
            403,
        ),
        (error(SessionStorageError, ErrorCode.STORAGE_FAILURE), 503),
    ]
    for failure, status in cases:
        code, message = status_for(failure)  # type: ignore[arg-type]
        assert code == status
        assert "alice" not in message and "'h'" not in message


# -- what `import usersession` pulls in --------------------------------------------------


def test_importing_usersession_imports_no_web_dependency() -> None:
    probe = (
        "import sys, usersession; "
        "heavy = {'ua_parser', 'starlette', 'fastapi', 'flask', 'werkzeug', 'httpx', "
        "'uvicorn', 'selenium', 'usersession.web', 'usersession.asgi', 'usersession.flask'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_the_asgi_middleware_imports_no_framework() -> None:
    probe = (
        "import sys, usersession.asgi; "
        "print(sorted({'starlette', 'fastapi', 'flask', 'ua_parser'} & set(sys.modules)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
