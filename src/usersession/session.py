"""The data of a session: who logged in from where, and when.

`Device` and `SessionContext` describe the caller of an operation;
`SessionMetadata` is what a storage keeps per session. None of them holds the
session id: the id is the key a storage files the metadata under, and the
metadata travels to places (listings, listeners, logs) where an id must not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

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


Lineage = tuple[str | None, int, int | None, str | None]
"""Where a session stands in its login, once that is more than "its login's
only session": `(login, authenticated_at, grace_ends_at, renewed_by)`, the
login's key (`policy.login_key`) and start, and, once a renewal superseded
the session, the end of its grace and the claim of the renewal. Index it
with the constants below.

A tuple, not a class: immutable, so the sessions a login's renewals made
share one (a session is superseded by giving it a new one), and the pure
build makes one in 0.02 us where a slotted object takes 0.27 (timeit); a
login's first renewal makes two."""

LOGIN: Final = 0
AUTHENTICATED_AT: Final = 1
GRACE_ENDS_AT: Final = 2
RENEWED_BY: Final = 3


def lineage_of(
    created_at: int,
    authenticated_at: int | None,
    login: str | None,
    grace_ends_at: int | None,
    renewed_by: str | None,
) -> Lineage | None:
    """The `_lineage` of a session with these fields (None for a login's
    only session: authenticated when created, never renewed, no login key)."""
    if authenticated_at is None:
        authenticated_at = created_at
    if (
        login is None
        and grace_ends_at is None
        and renewed_by is None
        and authenticated_at == created_at
    ):
        return None
    return (login, authenticated_at, grace_ends_at, renewed_by)


# Compiled, not tracked by the cycle collector (no reference it holds can
# lead back to it, unless a caller's `location` object is made to): no GC
# header, 16 B less per session, and creating or freeing one links or
# unlinks nothing in the collector's lists.
@mypyc_attr(acyclic=True)
class SessionMetadata:  # noqa: PLW1641 - not hashable on purpose: see __eq__
    """What is stored per session: the creating context and three timestamps.

    The public attributes are read-only: a storage may hand out the very object
    it keeps (the in-memory one does, to save a copy per read), so writing to
    it would change the session behind the storage's back. All times are Unix
    seconds.

    A session belongs to a *login*: the session `create` made, and every
    session renewals derived from it. `authenticated_at` is when the login
    began; every successor copies it.

    The underscored slots are bookkeeping shared by the policy and the
    storages: the idle timeout the session was created under, the subject,
    the session's handle once computed, the deadline second the storage
    filed it under, and its `Lineage` (None for a login's only session,
    which most sessions are: the login's key and start, and once
    superseded, the grace end and who renewed it). Keeping them on this one
    object, and what only renewals need in one optional object beside it,
    is what keeps a stored session at about 300 bytes: each slot costs 8.
    """

    __slots__ = (
        "_accessed_at",
        "_created_at",
        "_device",
        "_due",
        "_expires_at",
        "_handle",
        "_idle",
        "_ip",
        "_lineage",
        "_location",
        "_subject",
    )

    _ip: str
    _device: Device | None
    _location: object | None
    _created_at: int
    _accessed_at: int
    _expires_at: int
    _idle: int | None
    _subject: str
    _handle: str | None
    _due: int
    _lineage: Lineage | None

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
        self._subject = subject
        self._handle = None
        self._due = expires_at
        if (
            login is None
            and grace_ends_at is None
            and renewed_by is None
            and authenticated_at is None
        ):
            self._lineage = None  # a create's session, without a call
        else:
            self._lineage = lineage_of(
                created_at, authenticated_at, login, grace_ends_at, renewed_by
            )

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
        lineage = self._lineage
        return self._created_at if lineage is None else lineage[AUTHENTICATED_AT]

    @property
    def subject(self) -> str:
        """The subject (user id) the session belongs to."""
        return self._subject

    @property
    def renewed(self) -> bool:
        """True once a renewal superseded this session (it lives out a grace period)."""
        lineage = self._lineage
        return lineage is not None and lineage[GRACE_ENDS_AT] is not None

    # Read-only views of `_lineage` for the paths that are not hot (snapshots,
    # Redis records, limits, logs); the policy reads `_lineage` itself.

    @property
    def _authenticated_at(self) -> int:
        return self.authenticated_at

    @property
    def _grace_ends_at(self) -> int | None:
        """The end of the renewal grace, once a renewal superseded the session."""
        lineage = self._lineage
        return None if lineage is None else lineage[GRACE_ENDS_AT]

    @property
    def _renewed_by(self) -> str | None:
        """The claim of the renewal that superseded the session."""
        lineage = self._lineage
        return None if lineage is None else lineage[RENEWED_BY]

    @property
    def _login(self) -> str | None:
        """The login's key, once the login was renewed (`policy.login_key`)."""
        lineage = self._lineage
        return None if lineage is None else lineage[LOGIN]

    def _supersede(self, grace_ends_at: int, renewed_by: str, successor: SessionMetadata) -> None:
        """Mark the session superseded by `successor` (`storage.renew`):
        readable until `grace_ends_at`, renewed by the claim `renewed_by`,
        and a member of the successor's login unless it already belonged to
        one."""
        lineage = self._lineage
        joined = successor._lineage
        login = None if joined is None else joined[LOGIN]
        if lineage is None:
            self._lineage = (login, self._created_at, grace_ends_at, renewed_by)
        else:
            if lineage[LOGIN] is not None:
                login = lineage[LOGIN]
            self._lineage = (login, lineage[AUTHENTICATED_AT], grace_ends_at, renewed_by)

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

    # Not hashable (it changes through the storage): defining __eq__ without
    # __hash__ makes it so, in both builds. (An explicit `__hash__ = None`
    # made the compiled object 8 B longer.)

    def __repr__(self) -> str:
        return (
            f"SessionMetadata(ip={self._ip!r}, device={self._device!r}, "
            f"location={self._location!r}, created_at={self._created_at}, "
            f"accessed_at={self._accessed_at}, expires_at={self._expires_at}, "
            f"authenticated_at={self._authenticated_at}"
            f"{', renewed' if self._grace_ends_at is not None else ''})"
        )
