"""The data of a session: who logged in from where, and when.

`Device` and `SessionContext` describe the caller of an operation;
`SessionMetadata` is what a storage keeps per session. None of them holds the
session id: the id is the key a storage files the metadata under, and the
metadata travels to places (listings, listeners, logs) where an id must not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._build import mypyc_attr
from .errors import ErrorCode, InvalidOptionsError, InvalidTypeError

# A raw string: the regex reads the escapes (mypyc refuses surrogate literals).
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def exact_text(text: str) -> bool:
    """Whether `text` comes back exactly from every encoding a storage uses:
    it has no surrogate code point (U+D800 to U+DFFF). A lone surrogate
    cannot be encoded in UTF-8, and a high one followed by a low one is read
    back from JSON (and from UTF-16) as the one character the pair stands
    for: `"\\ud83d\\ude00"` comes back as `"😀"`, another string.

    O(1) for ASCII text (`str.isascii` reads a flag), else one scan in C.
    """
    return text.isascii() or _SURROGATE.search(text) is None


def _not_exact(what: str) -> InvalidOptionsError:
    return InvalidOptionsError(
        ErrorCode.INVALID_CONTEXT,
        f"{what} must not contain surrogate code points (U+D800-U+DFFF): "
        "it would not come back exactly from a snapshot or Redis.",
    )


@dataclass(frozen=True, slots=True)
class Device:
    """The device a session was created from, e.g. `Device("Firefox", "desktop")`.

    Name and type are str without surrogate code points (`exact_text`);
    anything else raises `InvalidTypeError` or `InvalidOptionsError`
    (`INVALID_CONTEXT`) here.
    """

    name: str
    type: str

    def __post_init__(self) -> None:
        if type(self.name) is not str or type(self.type) is not str:
            raise InvalidTypeError(ErrorCode.INVALID_CONTEXT, "Device name and type must be str.")
        if not (exact_text(self.name) and exact_text(self.type)):
            raise _not_exact("Device name and type")


@dataclass(frozen=True, slots=True)
class SessionContext:
    """Who is calling: their IP address, and optionally device and location.

    `location` is opaque to this package; a storage that serialises metadata
    (Redis) needs it to be serialisable by its serializer (JSON by default).
    `ip` is a str without surrogate code points (`exact_text`), checked here.
    """

    ip: str
    device: Device | None = None
    location: object | None = None

    def __post_init__(self) -> None:
        if type(self.ip) is not str:
            raise InvalidTypeError(
                ErrorCode.INVALID_CONTEXT, f"ip must be a str, not {type(self.ip).__name__}."
            )
        if not exact_text(self.ip):
            raise _not_exact("ip")
        if self.device is not None and not isinstance(self.device, Device):
            raise InvalidTypeError(
                ErrorCode.INVALID_CONTEXT,
                f"device must be a Device or None, not {type(self.device).__name__}.",
            )


# Compiled, not tracked by the cycle collector (no reference it holds can
# lead back to it, unless a caller's `location` object is made to): no GC
# header, 16 B less per session, and creating or freeing one links or
# unlinks nothing in the collector's lists.
@mypyc_attr(acyclic=True)
class SessionMetadata:
    """What is stored per session: the creating context and three timestamps.

    The public attributes are read-only: a storage may hand out the very object
    it keeps (the in-memory one does, to save a copy per read), so writing to
    it would change the session behind the storage's back. All times are Unix
    seconds.

    A session belongs to a *login*: the session `create` made, and every
    session renewals derived from it. `authenticated_at` is when the login
    began; every successor copies it.

    The underscored slots are bookkeeping shared by the policy and the
    storages: the idle timeout the session was created under, the end of its
    renewal grace once it has been superseded, which manager renewed it, the
    subject, the session's handle once computed, the deadline second the
    storage filed it under, and the login's key (the handle of the login's
    first session; None until the login has been renewed, when the session
    is the whole login). Keeping them on this one object, instead of in
    wrapper objects, is what keeps a stored session at about 350 bytes.
    """

    __slots__ = (
        "_accessed_at",
        "_authenticated_at",
        "_created_at",
        "_device",
        "_due",
        "_expires_at",
        "_grace_ends_at",
        "_handle",
        "_idle",
        "_ip",
        "_location",
        "_login",
        "_renewed_by",
        "_subject",
    )

    _ip: str
    _device: Device | None
    _location: object | None
    _created_at: int
    _accessed_at: int
    _expires_at: int
    _idle: int | None
    _grace_ends_at: int | None
    _renewed_by: str | None
    _subject: str
    _handle: str | None
    _due: int
    _authenticated_at: int
    _login: str | None

    def __init__(
        self,
        ip: str,
        device: Device | None,
        location: object | None,
        created_at: int,
        accessed_at: int,
        expires_at: int,
        idle: int | None = None,
        grace_ends_at: int | None = None,
        renewed_by: str | None = None,
        subject: str = "",
        authenticated_at: int | None = None,
        login: str | None = None,
    ) -> None:
        self._ip = ip
        self._device = device
        self._location = location
        self._created_at = created_at
        self._accessed_at = accessed_at
        self._expires_at = expires_at
        self._idle = idle
        self._grace_ends_at = grace_ends_at
        self._renewed_by = renewed_by
        self._subject = subject
        self._handle = None
        self._due = expires_at
        self._authenticated_at = created_at if authenticated_at is None else authenticated_at
        self._login = login

    @property
    def ip(self) -> str:
        """IP address of the context that created the session."""
        return self._ip

    @property
    def device(self) -> Device | None:
        """Device that created the session, if the context named one."""
        return self._device

    @property
    def location(self) -> object | None:
        """Location of the creating context, as the caller gave it."""
        return self._location

    @property
    def created_at(self) -> int:
        """When the session was created (Unix s); renewal age counts from here."""
        return self._created_at

    @property
    def accessed_at(self) -> int:
        """When the session was last read (Unix s); idle time counts from here."""
        return self._accessed_at

    @property
    def expires_at(self) -> int:
        """When the session ends whatever happens (Unix s, exclusive)."""
        return self._expires_at

    @property
    def authenticated_at(self) -> int:
        """When the login this session belongs to began (Unix s): the
        `created_at` of its first session, copied by every renewal."""
        return self._authenticated_at

    @property
    def subject(self) -> str:
        """The subject (user id) the session belongs to."""
        return self._subject

    @property
    def renewed(self) -> bool:
        """True once a renewal superseded this session (it lives out a grace period)."""
        return self._grace_ends_at is not None

    def _public(self) -> tuple[object, ...]:
        return (
            self._ip,
            self._device,
            self._location,
            self._created_at,
            self._accessed_at,
            self._expires_at,
            self._authenticated_at,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SessionMetadata):
            return NotImplemented
        return self._public() == other._public() and self._grace_ends_at == other._grace_ends_at

    __hash__ = None  # type: ignore[assignment]  # mutable through the storage: not hashable

    def __repr__(self) -> str:
        return (
            f"SessionMetadata(ip={self._ip!r}, device={self._device!r}, "
            f"location={self._location!r}, created_at={self._created_at}, "
            f"accessed_at={self._accessed_at}, expires_at={self._expires_at}, "
            f"authenticated_at={self._authenticated_at}"
            f"{', renewed' if self._grace_ends_at is not None else ''})"
        )
