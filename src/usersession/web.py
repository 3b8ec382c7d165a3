"""HTTP transport for sessions, written once for every web adapter.

`usersession.asgi` (the ASGI middleware) and `usersession.flask` (the Flask
extension) are thin shells over this module: they read a request into
`RequestSession`, call the manager (awaited or not), and copy the headers
this module decides onto the response. No rule about sessions lives here or
there: idle, renewal, device binding and logins are the manager's. What
lives here is HTTP only:

- the token (`encode_token`, `decode_token`): `v1.<base64url(subject)>.<id>`;
- the cookie and its attributes, and the header for API clients
  (`WebSettings`);
- the CSRF token (`csrf_token`) and the `Origin` check;
- the `Device` a User-Agent names (`device_from_user_agent`, pluggable);
- the status of a session error (`status_for`);
- the devices listing (`device_entries`).

Nothing here does I/O, and this module imports no framework. The default
User-Agent parser (`ua-parser`, the `asgi` and `flask` extras) is imported
on first use.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import importlib.util
import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import Final, Literal
from urllib.parse import quote_plus, unquote_plus

from .errors import (
    ErrorCode,
    InvalidOptionsError,
    InvalidTypeError,
    SessionDeviceMismatchError,
    SessionError,
    SessionExpiredError,
    SessionNotFoundError,
)
from .ids import session_handle
from .policy import login_key, same_login
from .session import Device, SessionContext, SessionMetadata

_log = logging.getLogger("usersession")

TOKEN_VERSION: Final = "v1"
"""The first field of every token this release writes and the only one it reads."""

MAX_TOKEN_LENGTH: Final = 4096
"""The default limit on a token's length: a cookie longer than about 4 KB is
dropped by browsers anyway, and nothing longer is ever parsed."""

MIN_SECRET_BYTES: Final = 32
"""A CSRF secret shorter than 256 bits is refused."""

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods that must not change state, so carry no CSRF check."""

UNKNOWN_DEVICE: Final = Device("Unknown", "unknown")
"""The device of a request without a User-Agent: still a device, so a
session created from it stays bound to "no User-Agent"."""

_MAX_USER_AGENT = 512
"""Characters of a User-Agent handed to the parser: real ones are shorter,
and a parser's regexes must not see a megabyte of attacker's text."""

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN = re.compile(r"v1\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{22,})")
_CSRF_LABEL = b"usersession csrf v1\x00"
_SAME_SITE = {"lax": "Lax", "strict": "Strict"}
_TRANSPORTS = ("cookie", "header", "both")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}

Transport = Literal["cookie", "header"]
"""How a session travels: a cookie (browsers) or a request header (API clients)."""

DeviceParser = Callable[[str | None], Device]
"""`parser(user_agent)`: the `Device` a User-Agent header names (None when
the request has none). Must return a `Device`, never None."""


# -- the token -----------------------------------------------------------------


def encode_token(subject: str, session_id: str) -> str:
    """The token a client presents: `v1.<base64url(subject)>.<session id>`.

    The subject is UTF-8, base64url without padding; the id is the manager's
    (URL-safe text already). The token holds no signature: the id is the
    secret, and a subject paired with an id that is not its own names no
    session (the manager answers "not found"). Every character is cookie- and
    header-safe. O(len(subject) + len(session_id)).
    """
    encoded = base64.urlsafe_b64encode(subject.encode("utf-8", "surrogatepass"))
    return f"{TOKEN_VERSION}.{encoded.rstrip(b'=').decode('ascii')}.{session_id}"


def decode_token(token: str, max_length: int = MAX_TOKEN_LENGTH) -> tuple[str, str] | None:
    """`(subject, session_id)` from a token, or None for anything that is not
    exactly what `encode_token` writes: another version, an oversized or
    truncated token, stray characters, a subject that is not UTF-8 or empty,
    an id shorter than the manager's shortest (22 characters).

    Never raises on bad input: a bad token is simply no session. O(length),
    and nothing longer than `max_length` is looked at.
    """
    if len(token) > max_length:
        return None
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    encoded, session_id = match.groups()
    subject = _decode_subject(encoded)
    if subject is None:
        return None
    return subject, session_id


_FROM_URL_SAFE = str.maketrans("-_", "+/")


@functools.lru_cache(maxsize=4096)
def _decode_subject(encoded: str) -> str | None:
    # Cached: the same few subjects arrive on every request, and a hit costs
    # a tenth of the decode (benchmarks/bench_web.py).
    try:
        data = binascii.a2b_base64(
            encoded.translate(_FROM_URL_SAFE) + "=" * (-len(encoded) % 4), strict_mode=True
        )
        subject = data.decode("utf-8", "surrogatepass")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return subject or None


def parse_cookie(header: str | None, name: str) -> str | None:
    """The value of cookie `name` in a `Cookie` request header, or None.

    The first occurrence wins (browsers send the most specific cookie
    first). Values are taken as they are: a quoted or otherwise odd value is
    a malformed token later, not a different one. O(len(header)).
    """
    if not header:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip()
    return None


# -- CSRF ----------------------------------------------------------------------


def csrf_token(secret: bytes, key: str) -> str:
    """The CSRF token of the login whose key is `key` (`policy.login_key`:
    the handle of the login's first session):
    base64url(HMAC-SHA256(secret, label + key)), 43 characters.

    Unforgeable without the server's secret, different for every login, the
    same for every session of one login (so a page stays postable after its
    session was renewed, in another tab too), and safe to put in a page (it
    grants nothing by itself). O(1).
    """
    digest = hmac.new(secret, _CSRF_LABEL + key.encode("ascii"), sha256).digest()
    return base64.urlsafe_b64encode(digest)[:43].decode("ascii")


def csrf_matches(secret: bytes, key: str, candidate: str | None) -> bool:
    """Whether `candidate` is the CSRF token of login `key`, compared in
    constant time (`hmac.compare_digest`)."""
    if candidate is None:
        return False
    expected = csrf_token(secret, key).encode("ascii")
    return hmac.compare_digest(expected, candidate.encode("utf-8", "surrogatepass"))


def form_field(content_type: str | None, body: bytes, name: str) -> str | None:
    """The first value of field `name` in a form body, or None.

    Reads `application/x-www-form-urlencoded` and `multipart/form-data`
    (the two encodings an HTML form sends); anything else has no fields.
    O(len(body)).
    """
    if not content_type:
        return None
    media_type, _, parameters = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        return _urlencoded_field(body, name)
    if media_type == "multipart/form-data":
        return _multipart_field(parameters, body, name)
    return None


_MAX_FIELD_VALUE: Final = 1024
"""Longer values are not decoded: no CSRF token is that long."""

_AMPERSAND: Final = ord("&")


def _urlencoded_field(body: bytes, name: str) -> str | None:
    """The first `name=value` field of a urlencoded body, found with
    `bytes.find` and only its value decoded: urllib's `parse_qsl` decodes
    every field, at up to 0.8 s a MiB for a body of stray '%' signs. The
    name is matched as a browser encodes it (`quote_plus`)."""
    wanted = quote_plus(name, encoding="latin-1").encode("latin-1") + b"="
    start = 0
    while (at := body.find(wanted, start)) >= 0:
        if at == 0 or body[at - 1] == _AMPERSAND:
            value_at = at + len(wanted)
            end = body.find(b"&", value_at)
            value = body[value_at : end if end >= 0 else len(body)]
            if len(value) > _MAX_FIELD_VALUE:
                return None
            return unquote_plus(value.decode("latin-1"), encoding="latin-1")
        start = at + 1
    return None


def _multipart_field(parameters: str, body: bytes, name: str) -> str | None:
    boundary = None
    for parameter in parameters.split(";"):
        key, _, value = parameter.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        return None
    wanted = f'name="{name}"'.encode("latin-1")
    for part in body.split(b"--" + boundary.encode("latin-1")):
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-disposition:") and wanted in line:
                return content.removesuffix(b"\r\n").decode("latin-1")
    return None


def origin_allowed(
    origin: str | None, scheme: str, host: str | None, trusted: Collection[str]
) -> bool:
    """Whether a request's `Origin` header is acceptable on an unsafe method:
    absent (not a browser, or one that sends none: the CSRF token still
    applies), the request's own origin (`scheme://Host`, default port
    ignored), or one of `trusted`. `Origin: null` is never acceptable."""
    if origin is None:
        return True
    origin = origin.strip().lower()
    if origin in trusted:
        return True
    if host is None:
        return False
    own = f"{scheme}://{host.strip().lower()}"
    default_port = _DEFAULT_PORTS.get(scheme, "")
    return _without_port(origin, default_port) == _without_port(own, default_port)


def _without_port(origin: str, default_port: str) -> str:
    return origin.removesuffix(default_port) if default_port else origin


# -- the device ----------------------------------------------------------------


def device_from_user_agent(user_agent: str | None) -> Device:
    """The `Device` a User-Agent names, through `ua-parser`: name "<browser>
    on <OS>" (no versions, so a browser update keeps its sessions), type
    "desktop", "mobile", "tablet", "bot" or "other". No header at all is
    `UNKNOWN_DEVICE`; an agent the parser does not know is
    `Device("Unknown browser", "other")` or names what it could tell.

    Never None: device binding holds for every session the web layer
    creates. Results are cached (4096 agents; a hit costs a dict lookup, a
    miss about 80 us with ua-parser's compiled resolver, which the extras
    install, and 3-8 ms without it), and at most the first 512 characters
    of an agent are parsed.
    """
    if not user_agent:
        return UNKNOWN_DEVICE
    return _parse_user_agent(user_agent[:_MAX_USER_AGENT])


_MOBILE_SYSTEMS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS"})


@functools.lru_cache(maxsize=4096)
def _parse_user_agent(user_agent: str) -> Device:
    import ua_parser  # noqa: PLC0415  (the asgi/flask extra; only the default parser needs it)

    result = ua_parser.parse(user_agent)
    browser = result.user_agent.family if result.user_agent else "Unknown browser"
    system = result.os.family if result.os else None
    hardware = result.device
    hardware_name = f"{hardware.brand} {hardware.family}".lower() if hardware else ""
    if hardware is not None and hardware.family == "Spider":
        kind = "bot"
    elif "tablet" in hardware_name or "ipad" in hardware_name:
        kind = "tablet"
    elif system == "Android":
        # Android phones say "Mobile"; Android tablets do not.
        kind = "mobile" if "Mobile" in user_agent else "tablet"
    elif system in _MOBILE_SYSTEMS or "Mobile" in user_agent:
        kind = "mobile"
    elif system is not None:
        kind = "desktop"
    else:
        kind = "other"
    return Device(f"{browser} on {system}" if system else browser, kind)


# -- settings ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebSettings:
    """How sessions travel over HTTP; shared by `SessionMiddleware` and
    `UserSessions` (Flask). Checked at construction: a bad value raises
    `InvalidOptionsError` or `InvalidTypeError` (`INVALID_OPTION`).

    - `secret`: the server secret for CSRF tokens, at least 32 bytes (a
      `str` is UTF-8 encoded). Keep it stable across processes that share
      sessions, and out of the repository.
    - `cookie_name`: default `__Host-session` (the browser then insists on
      `Secure`, `Path=/` and no `Domain`, so no subdomain can set or
      overwrite it); `usersession` when `secure=False`.
    - `same_site`: `"lax"` (default: a link from another site arrives logged
      in, a form from another site does not carry the cookie) or `"strict"`.
    - `secure`: `True` (default). `False` drops the `Secure` attribute and
      the `__Host-` prefix: for development over plain HTTP on a host the
      browser does not treat as secure (Chromium accepts secure cookies from
      http://localhost and 127.0.0.1 as they are). Never in production.
    - `transport`: `"both"` (default), `"cookie"` or `"header"`: where a
      session token is read from. A request that carries the header is an API
      client: its session comes from the header and it is exempt from CSRF.
    - `header`: the request header for API clients, default `authorization`
      (as `Authorization: Session <token>`); any other name carries the bare
      token. New tokens for header clients go in the `token_header` response
      header (default `Session-Token`).
    - `trusted_origins`: origins (`https://app.example.com`) accepted in
      `Origin` besides the request's own.
    - `csrf_field`, `csrf_header`: where the CSRF token is looked for on
      unsafe methods (form field `csrf_token`, header `X-CSRF-Token`).
    - `max_form_bytes`: the largest form body searched for the CSRF field
      (1 MiB); a larger form must send the token in the header.
    - `device_from_user_agent`: the `DeviceParser` (default
      `device_from_user_agent`, which needs `ua-parser`: the `asgi` or
      `flask` extra).
    - `max_token_length`: longer tokens are no session (4096).
    """

    secret: bytes | str
    cookie_name: str | None = None
    same_site: str = "lax"
    secure: bool = True
    transport: str = "both"
    header: str = "authorization"
    token_header: str = "Session-Token"
    trusted_origins: Collection[str] = ()
    csrf_field: str = "csrf_token"
    csrf_header: str = "x-csrf-token"
    max_form_bytes: int = 1 << 20
    device_from_user_agent: DeviceParser | None = None
    max_token_length: int = MAX_TOKEN_LENGTH

    def __post_init__(self) -> None:
        secret = self.secret
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not isinstance(secret, bytes):
            raise _type_error(f"secret must be bytes or str, not {type(secret).__name__}.")
        if len(secret) < MIN_SECRET_BYTES:
            # The message never repeats the secret, only its size.
            raise _value_error(
                f"secret must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}."
            )
        object.__setattr__(self, "secret", secret)
        if type(self.secure) is not bool:
            raise _type_error("secure must be a bool.")
        name = self.cookie_name
        if name is None:
            name = "__Host-session" if self.secure else "usersession"
        if type(name) is not str or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise _value_error("cookie_name must be a non-empty cookie token.")
        if name.startswith(("__Host-", "__Secure-")) and not self.secure:
            raise _value_error(f"a cookie named {name!r} needs secure=True.")
        object.__setattr__(self, "cookie_name", name)
        same_site = self.same_site.lower() if isinstance(self.same_site, str) else None
        if same_site not in _SAME_SITE:
            raise _value_error(f"same_site must be 'lax' or 'strict', not {self.same_site!r}.")
        object.__setattr__(self, "same_site", same_site)
        if self.transport not in _TRANSPORTS:
            raise _value_error(f"transport must be one of {_TRANSPORTS}, not {self.transport!r}.")
        for option in ("header", "token_header", "csrf_field", "csrf_header"):
            value = getattr(self, option)
            if type(value) is not str or not value:
                raise _value_error(f"{option} must be a non-empty str.")
        object.__setattr__(self, "header", self.header.lower())
        object.__setattr__(self, "csrf_header", self.csrf_header.lower())
        if isinstance(self.trusted_origins, str):
            raise _type_error("trusted_origins must be a collection of origins, not one str.")
        origins = frozenset(origin.strip().lower().rstrip("/") for origin in self.trusted_origins)
        object.__setattr__(self, "trusted_origins", origins)
        for option in ("max_form_bytes", "max_token_length"):
            value = getattr(self, option)
            if type(value) is not int or value <= 0:
                raise _value_error(f"{option} must be a positive int.")
        parser = self.device_from_user_agent
        if parser is None:
            if importlib.util.find_spec("ua_parser") is None:
                raise _value_error(
                    "the default device_from_user_agent needs ua-parser: "
                    "pip install 'usersession[asgi]' (or [flask]), or pass your own."
                )
            object.__setattr__(self, "device_from_user_agent", device_from_user_agent)
        elif not callable(parser):
            raise _type_error("device_from_user_agent must be callable.")

    @property
    def uses_cookie(self) -> bool:
        """Whether session tokens travel in a cookie."""
        return self.transport != "header"

    @property
    def uses_header(self) -> bool:
        """Whether session tokens travel in a request header."""
        return self.transport != "cookie"

    def set_cookie(self, token: str, max_age: int) -> str:
        """The `Set-Cookie` value that hands `token` to a browser for
        `max_age` seconds."""
        return f"{self.cookie_name}={token}; Max-Age={max(max_age, 0)}{self._attributes()}"

    def clear_cookie(self) -> str:
        """The `Set-Cookie` value that removes the session cookie."""
        return f"{self.cookie_name}=; Max-Age=0{self._attributes()}"

    def _attributes(self) -> str:
        secure = "; Secure" if self.secure else ""
        return f"; Path=/{secure}; HttpOnly; SameSite={_SAME_SITE[str(self.same_site)]}"

    @property
    def request_headers(self) -> frozenset[str]:
        """The request headers (lower case) the web layer reads."""
        return frozenset(
            {"cookie", "user-agent", "origin", "host", "content-type", self.header}
            | {self.csrf_header}
        )


def _type_error(message: str) -> InvalidTypeError:
    return InvalidTypeError(ErrorCode.INVALID_OPTION, message)


def _value_error(message: str) -> InvalidOptionsError:
    return InvalidOptionsError(ErrorCode.INVALID_OPTION, message)


# -- statuses ------------------------------------------------------------------

CSRF_REFUSALS: Final = {
    "origin": "Cross-site request refused (Origin).",
    "token": "Cross-site request refused (missing or wrong CSRF token).",
}
"""The body text of a 403 from the CSRF check, by reason."""


def status_for(error: SessionError | None) -> tuple[int, str]:
    """The HTTP status and a fixed message for a request whose session is not
    live: no session or not found or idle -> 401, another device -> 403,
    anything else (the storage failed) -> 503. The message names no session
    and no subject."""
    if error is None or isinstance(error, SessionNotFoundError | SessionExpiredError):
        return 401, "Not logged in, or the session ended: log in again."
    if isinstance(error, SessionDeviceMismatchError):
        return 403, "This session belongs to another device."
    return 503, "Sessions are unavailable right now: try again later."


# -- the devices listing -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One active login of a subject, as a devices page shows it.

    `handle` names the login's current session for `revoke`; it is not a
    credential. Times are Unix seconds.
    """

    handle: str
    device: Device | None
    ip: str
    authenticated_at: int
    last_seen: int
    this_device: bool


def device_entries(
    listing: Mapping[str, SessionMetadata],
    current_handle: str | None,
    current: SessionMetadata | None,
) -> list[DeviceEntry]:
    """The rows of a devices page from `read_all`'s listing: this device
    first, then by last seen, most recent first.

    "This device" is the login the request's session belongs to
    (`policy.same_login`): the request may carry a superseded session inside
    its renewal grace, whose successor is what the listing shows.
    O(n log n) for n logins.
    """
    entries = [
        DeviceEntry(
            handle,
            metadata.device,
            metadata.ip,
            metadata.authenticated_at,
            metadata.accessed_at,
            current_handle is not None
            and current is not None
            and same_login(current_handle, current, handle, metadata),
        )
        for handle, metadata in listing.items()
    ]
    entries.sort(key=lambda entry: (not entry.this_device, -entry.last_seen))
    return entries


# -- the request's session -----------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _context(parser: DeviceParser, ip: str, user_agent: str | None) -> SessionContext:
    # Cached: a client sends the same address and agent on every request, and
    # a hit costs a third of building the context (benchmarks/bench_web.py).
    # A SessionContext is frozen, so sharing one between requests is safe.
    return SessionContext(ip=ip, device=parser(user_agent))


class RequestSession:
    """The session a request carried, and what the response must say about it.

    An adapter builds one per request (then `_take_token`), reads the session
    with the manager and reports the outcome (`_read_succeeded`,
    `_read_failed`), then copies `response_headers(status)` onto the
    response. The request helpers (log in, log out, ...) live on the
    adapters' subclasses, which call the manager and report here.

    Public attributes, for endpoints:
    `live` (a session was read and not ended since), `subject`, `handle`,
    `metadata`, `csrf_token`, `error` (why the carried token named no live
    session, or None), `transport` (where the token came from, or None).
    """

    __slots__ = (
        "_carried_cookie",
        "_carried_id",
        "_clear_cookie",
        "_client_ip",
        "_context",
        "_header_token",
        "_headers",
        "_live",
        "_new_cookie",
        "_response_started",
        "_session_id",
        "_settings",
        "error",
        "metadata",
        "subject",
        "transport",
    )

    def __init__(self, settings: WebSettings, headers: Mapping[str, str], client_ip: str) -> None:
        """`headers` maps lower-case names to values (at least
        `settings.request_headers`); `client_ip` is the peer's address."""
        self._settings = settings
        self._headers = headers
        self._client_ip = client_ip
        self._context: SessionContext | None = None
        self._carried_cookie = False
        self._carried_id: str | None = None
        self._session_id: str | None = None
        self._live = False
        # What the response does to the cookie: set this value, or clear it.
        self._new_cookie: str | None = None
        self._clear_cookie = False
        self._header_token: str | None = None
        self._response_started = False
        self.subject: str | None = None
        self.metadata: SessionMetadata | None = None
        self.error: SessionError | None = None
        self.transport: Transport | None = None

    def _take_token(self) -> None:
        """Find the token: in the header (API clients), else in the cookie,
        and decode it. A token that does not decode is no session (and a
        cookie holding one is cleared)."""
        settings = self._settings
        headers = self._headers
        raw = None
        if settings.uses_header:
            raw = headers.get(settings.header)
            if raw is not None and settings.header == "authorization":
                scheme, _, credentials = raw.strip().partition(" ")
                raw = credentials.strip() if scheme.lower() == "session" else None
            if raw is not None:
                self.transport = "header"
        if raw is None and settings.uses_cookie:
            raw = parse_cookie(headers.get("cookie"), str(settings.cookie_name))
            if raw is not None:
                self.transport = "cookie"
                self._carried_cookie = True
        if raw is None:
            return
        decoded = decode_token(raw, settings.max_token_length)
        if decoded is None:
            _log.debug("usersession: a malformed session token was ignored")
            self._forget()
        else:
            self.subject, self._carried_id = decoded
            self._session_id = self._carried_id

    # -- what endpoints read ---------------------------------------------------

    @property
    def live(self) -> bool:
        """Whether the request has a session: read successfully and not
        ended by this request."""
        return self._live

    @property
    def handle(self) -> str | None:
        """The handle of the request's session (the successor after a
        rotation, the new one after a login), or None."""
        return None if self._session_id is None else session_handle(self._session_id)

    @property
    def csrf_token(self) -> str | None:
        """The CSRF token to put in this response's forms (field
        `settings.csrf_field`) or send as `settings.csrf_header`, or None
        without a live session. One per login: renewals do not change it."""
        key = self._login_key()
        return None if key is None else csrf_token(self._secret, key)

    def _login_key(self) -> str | None:
        handle = self.handle
        if not self._live or handle is None or self.metadata is None:
            return None
        return login_key(handle, self.metadata)

    @property
    def token(self) -> str | None:
        """The session token the client holds once this response arrives,
        for an API login that returns it in its body; None without a live
        session. It is a credential: never log it."""
        if not self._live or self.subject is None or self._session_id is None:
            return None
        return encode_token(self.subject, self._session_id)

    @property
    def context(self) -> SessionContext:
        """The `SessionContext` of this request: the client's IP and the
        device its User-Agent (its first 512 characters) names; computed on
        first use, and cached across requests (4096 clients)."""
        if self._context is None:
            parser = self._settings.device_from_user_agent
            assert parser is not None  # WebSettings fills in the default
            user_agent = self._headers.get("user-agent")
            if user_agent is not None:
                user_agent = user_agent[:_MAX_USER_AGENT]
            self._context = _context(parser, self._client_ip, user_agent)
        return self._context

    def __repr__(self) -> str:
        # By handle only: a repr ends up in logs and debuggers.
        if not self._live:
            return f"<{type(self).__name__}: no session>"
        return f"<{type(self).__name__}: session '{self.handle}'>"

    # -- what adapters report --------------------------------------------------

    @property
    def _secret(self) -> bytes:
        secret = self._settings.secret
        assert isinstance(secret, bytes)  # WebSettings encodes a str
        return secret

    def _needs_read(self) -> bool:
        return self._carried_id is not None

    def _read_succeeded(
        self,
        metadata: SessionMetadata,
        renewed_id: str | None,
        successor: SessionMetadata | None,
    ) -> None:
        """The carried session was read: `(metadata, renewed_id)` from the
        manager, and when it renewed, the successor's metadata (None if
        reading it failed)."""
        self._live = True
        self.metadata = metadata
        if renewed_id is not None:
            self._session_id = renewed_id
            if successor is not None:
                self.metadata = successor
                max_age = successor.expires_at - successor.accessed_at
            else:
                max_age = metadata.expires_at - metadata.created_at
            self._hand_out(renewed_id, max_age, self.transport or "cookie")

    def _read_failed(self, error: SessionError) -> None:
        """The carried token named no readable session."""
        self.error = error
        _log.debug(
            "usersession: session '%s' refused (%s)",
            session_handle(self._carried_id or ""),
            error.code.value,
        )
        if isinstance(error, SessionNotFoundError | SessionExpiredError):
            self._forget()

    def _logged_in(
        self, subject: str, session_id: str, metadata: SessionMetadata, transport: Transport
    ) -> None:
        self.subject = subject
        self._session_id = session_id
        self.metadata = metadata
        self.error = None
        self._live = True
        self._hand_out(session_id, metadata.expires_at - metadata.accessed_at, transport)

    def _logged_out(self) -> None:
        self._live = False
        self.metadata = None
        self._session_id = None
        self._forget()

    def _hand_out(self, session_id: str, max_age: int, transport: Transport) -> None:
        assert self.subject is not None
        token = encode_token(self.subject, session_id)
        if transport == "header":
            self._header_token = token
        else:
            self._new_cookie = self._settings.set_cookie(token, max_age)
            self._clear_cookie = False

    def _forget(self) -> None:
        """The client's token is dead: clear the cookie if it sent one."""
        self._header_token = None
        self._new_cookie = None
        self._clear_cookie = self._carried_cookie

    def _default_transport(self) -> Transport:
        """Where a login hands its token: the header if the request came
        with it (or cookies are off), else the cookie."""
        if self.transport == "header" or not self._settings.uses_cookie:
            return "header"
        return "cookie"

    def _token_changed(self) -> bool:
        """Whether the response must change the client's token (a new one,
        or a cleared cookie)."""
        return self._new_cookie is not None or self._clear_cookie or self._header_token is not None

    def _check_can_respond(self) -> None:
        if self._response_started:
            raise RuntimeError(
                "usersession: the response has started; log in or out before it does."
            )

    def _require_live(self) -> tuple[str, str]:
        if not self._live or self.subject is None or self._session_id is None:
            raise SessionNotFoundError(
                ErrorCode.USER_SESSION_NOT_FOUND, "The request has no live session."
            )
        return self.subject, self._session_id

    def _csrf_refusal(
        self, method: str, scheme: str, form_token: str | None = None
    ) -> Literal["origin", "token", "form"] | None:
        """Why an unsafe request must be refused (403), or None to let it
        through: `"origin"` (a foreign `Origin`), `"token"` (a cookie session
        and no valid CSRF token), `"form"` (the adapter should look in the
        form body, then ask again with `form_token`).

        Safe methods and API clients (header transport) are never refused; a
        request without a live cookie session gets only the `Origin` check
        (it has nothing to protect, and a login form has no session yet).
        """
        if method in SAFE_METHODS or self.transport == "header":
            return None
        headers = self._headers
        settings = self._settings
        if not origin_allowed(
            headers.get("origin"), scheme, headers.get("host"), settings.trusted_origins
        ):
            return self._refused("origin")
        key = self._login_key()
        if key is None or self._carried_id is None:
            return None
        candidate = headers.get(settings.csrf_header)
        if candidate is None:
            if form_token is None:
                return "form"
            candidate = form_token
        if csrf_matches(self._secret, key, candidate):
            return None
        return self._refused("token")

    def _refused(self, reason: Literal["origin", "token"]) -> Literal["origin", "token"]:
        _log.debug(
            "usersession: CSRF check failed (%s) for session '%s'",
            reason,
            session_handle(self._carried_id or ""),
        )
        return reason

    def response_headers(self, status: int) -> list[tuple[str, str]]:
        """The headers the response must carry, given its status. Calling it
        marks the response as started: helpers that change the session
        refuse to run after that (RuntimeError).

        - a new token (login, renewal) at any status but 401: `Set-Cookie`,
          or the `token_header` for header clients;
        - a 401, or a dead token in the request: the cookie is cleared;
        - whenever the response carries a session (the request had a live
          one, or a cookie or token header is set): `Cache-Control:
          no-store` (adapters replace any other `Cache-Control`).
        """
        self._response_started = True
        settings = self._settings
        headers: list[tuple[str, str]] = []
        if status == 401:
            if self._carried_cookie or self._new_cookie is not None:
                headers.append(("Set-Cookie", settings.clear_cookie()))
        else:
            if self._new_cookie is not None:
                headers.append(("Set-Cookie", self._new_cookie))
            elif self._clear_cookie:
                headers.append(("Set-Cookie", settings.clear_cookie()))
            if self._header_token is not None:
                headers.append((settings.token_header, self._header_token))
        if headers or self._live:
            headers.append(("Cache-Control", "no-store"))
        return headers
