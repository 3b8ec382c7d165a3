"""How a session is laid out in Redis: key names, the serializer, the hash
fields, and how a reply becomes `SessionMetadata` again.

Nothing here does I/O. Layout, for a subject `S` and a session whose handle
is `H` (`usersession.ids.session_handle`, never the raw id):

- `<prefix>:{<S encoded>}:session:<H>`: a hash of five or six fields:
  `metadata` (the serialised `SessionMetadata`), `accessed_at`, `static`
  (`"<created_at> <expires_at> <authenticated_at> <idle or -> <device
  key>"`: what never changes after the insert, in one field so that a read
  fetches five fields, not ten), `call` (the token of the call that stored
  it), once superseded by a renewal `superseded` (`"<grace_ends_at>
  <renewed_by>"`), and once its login has been renewed `login`
  (`policy.login_key`). These plain fields are what the scripts judge and
  update without decoding a serializer's bytes, and they win over the
  copies inside `metadata`. The key's TTL is the session's remaining life
  (`policy.deadline`), so Redis expires it on its own.
- `<prefix>:{<S encoded>}:index`: a sorted set of the subject's handles,
  scored by deadline (Unix seconds). A session the index does not list
  reads as not found (fail closed). The index's TTL is never shorter than
  the longest session TTL set through it.
- `<prefix>:{<S encoded>}:call:<token>`: the reply of a delete-like call,
  kept for 15 s so that a retry of the same call (same token) reports what
  the first attempt did.

The subject is percent-encoded (UTF-8, every byte outside `A-Za-z0-9-._~`),
so `{`, `}` and `:` never appear in it: the braces make the encoded subject
the Redis Cluster hash tag, and all keys of one subject live in one slot.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import quote

from ..errors import ErrorCode, InvalidOptionsError, InvalidTypeError, SessionStorageError
from ..session import Device, SessionMetadata, lineage_of

_log = logging.getLogger("usersession")

# -- serialisation --------------------------------------------------------------


class Serializer(Protocol):
    """Turns a `SessionMetadata` into bytes and back, every field included
    (the public ones, the subject, and `_idle`, `_grace_ends_at`,
    `_renewed_by`, `_login`)."""

    def dumps(self, metadata: SessionMetadata) -> bytes:
        """The bytes stored for `metadata`."""
        ...

    def loads(self, data: bytes) -> SessionMetadata:
        """The metadata `dumps` was given."""
        ...


class JsonSerializer:
    """The default serializer: one compact JSON object per session, UTF-8.

    `location` may be any JSON value (dicts with str keys, lists, str, int,
    float, bool, None); a tuple comes back as a list. Every string comes
    back exactly as it went in: a string holding a surrogate code point
    (`"\\ud83d\\ude00"`, which JSON would bring back as `"😀"`) is refused,
    as is anything JSON cannot carry, with `InvalidTypeError` (code
    `INVALID_CONTEXT`) when the session is stored, and nothing is stored.
    """

    def dumps(self, metadata: SessionMetadata) -> bytes:
        """O(size of the metadata)."""
        device = metadata._device
        record = {
            "subject": metadata._subject,
            "ip": metadata._ip,
            "device": None if device is None else [device.name, device.type],
            "location": metadata._location,
            "created_at": metadata._created_at,
            "accessed_at": metadata._accessed_at,
            "expires_at": metadata._expires_at,
            "idle": metadata._idle,
            "grace_ends_at": metadata._grace_ends_at,
            "renewed_by": metadata._renewed_by,
            "authenticated_at": metadata._authenticated_at,
            "login": metadata._login,
        }
        try:
            text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as error:
            raise InvalidTypeError(
                ErrorCode.INVALID_CONTEXT,
                f"Session metadata is not JSON serialisable ({error}); the Redis storage "
                f"needs a JSON value as location, or another serializer.",
            ) from None
        try:
            # Strict UTF-8: a surrogate, paired or lone, has no exact JSON
            # form (its escapes decode to another string), so it is refused.
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidTypeError(
                ErrorCode.INVALID_CONTEXT,
                "Session metadata holds a string with a surrogate code point, which "
                "JSON cannot bring back exactly; the Redis storage refuses it.",
            ) from None

    def __init__(self) -> None:
        # Devices repeat (a few browsers and platforms): a Device is frozen,
        # so one object per (name, type) serves every read, and building a
        # dataclass costs a read more than the lookup.
        self._devices: dict[tuple[object, ...], Device] = {}

    def loads(self, data: bytes) -> SessionMetadata:
        """O(size of the data)."""
        record = json.loads(data)
        device = record["device"]
        if device is not None:
            if type(device) is not list or len(device) != 2:
                raise TypeError("device is not a [name, type] pair")
            pair = tuple(device)
            known = self._devices.get(pair)
            if known is None:
                if len(self._devices) >= 1024:
                    self._devices.clear()
                known = self._devices[pair] = Device(device[0], device[1])
            device = known
        return SessionMetadata(
            record["ip"],
            device,
            record["location"],
            record["created_at"],
            record["accessed_at"],
            record["expires_at"],
            idle=record["idle"],
            grace_ends_at=record["grace_ends_at"],
            renewed_by=record["renewed_by"],
            subject=record["subject"],
            # Absent from what releases before logins wrote: a login of one session.
            authenticated_at=record.get("authenticated_at"),
            login=record.get("login"),
        )


# -- key layout -----------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _encoded(subject: str) -> str:
    # quote() is Python code (a tenth of a read's own time, benchmarks/
    # bench_redis.py); the same subjects come back again and again.
    return quote(subject, safe="", errors="surrogatepass")


class KeyLayout:
    """The names of a subject's keys under one prefix."""

    __slots__ = ("_prefix",)

    def __init__(self, key_prefix: object) -> None:
        if type(key_prefix) is not str:
            raise InvalidTypeError(
                ErrorCode.INVALID_OPTION,
                f"key_prefix must be a str, not {type(key_prefix).__name__}.",
            )
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            raise InvalidOptionsError(
                ErrorCode.INVALID_OPTION,
                f"key_prefix must be non-empty and free of braces (the braces mark the "
                f"Redis Cluster hash tag), got {key_prefix!r}.",
            )
        self._prefix = key_prefix

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._prefix

    def subject_tag(self, subject: str) -> str:
        """`<prefix>:{<subject percent-encoded>}`: what all keys of `subject`
        start with. Injective: two subjects never share a tag.
        O(len(subject)), and O(1) for the 4096 subjects encoded last."""
        return f"{self._prefix}:{{{_encoded(subject)}}}"

    def index_key(self, subject: str) -> str:
        """The sorted set of the subject's handles, scored by deadline."""
        return self.subject_tag(subject) + ":index"

    def session_key(self, subject: str, handle: str) -> str:
        """The hash of one session."""
        return f"{self.subject_tag(subject)}:session:{handle}"

    def session_key_prefix(self, subject: str) -> str:
        """What the session keys of `subject` start with (the handle follows)."""
        return self.subject_tag(subject) + ":session:"

    def call_key(self, subject: str, token: str) -> str:
        """The marker a delete-like call leaves for a retry of itself."""
        return f"{self.subject_tag(subject)}:call:{token}"


# -- records --------------------------------------------------------------------

RECORD_FIELDS = ("metadata", "accessed_at", "static", "superseded", "login")
"""The hash fields every script reply carries per session, in this order
(`FIELDS` in lua/common.lua)."""

Value = bytes | str | int | None
"""One element of a Redis reply (str when the client decodes responses)."""


def device_key(device: Device | None) -> bytes:
    """The `device` field: what the read script compares to apply
    `check_same_device` (equal name and type). b"" for no device, which no
    stored device key equals. Length-prefixed, so no name/type split is
    ambiguous; a surrogate (refused when a session is stored) gives bytes no
    stored key holds."""
    if device is None:
        return b""
    name = device.name
    return f"{len(name)}:{name}{device.type}".encode("utf-8", "surrogatepass")


def static_field(metadata: SessionMetadata) -> bytes:
    """The `static` field: what a session keeps unchanged from its insert."""
    idle = metadata._idle
    times = (
        f"{metadata._created_at} {metadata._expires_at} {metadata._authenticated_at} "
        f"{'-' if idle is None else idle} "
    )
    return times.encode() + device_key(metadata._device)


def superseded_field(grace_ends_at: int, renewed_by: str) -> str:
    """The `superseded` field the renew script writes (for tests and tools)."""
    return f"{grace_ends_at} {renewed_by}"


def record_fields(serializer: Serializer, metadata: SessionMetadata) -> list[bytes | str | int]:
    """The field/value pairs that store `metadata` (see the module's layout;
    the scripts add `call`). O(size of the metadata)."""
    fields: list[bytes | str | int] = [
        "metadata",
        serializer.dumps(metadata),
        "accessed_at",
        metadata._accessed_at,
        "static",
        static_field(metadata),
    ]
    if metadata._login is not None:
        fields += ("login", metadata._login)
    return fields


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _as_str(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _text(value: Value) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise ValueError("a field is missing")


def decode(
    serializer: Serializer, subject: str, handle: str, fields: Sequence[Value]
) -> SessionMetadata:
    """The metadata from `RECORD_FIELDS` values: the serialised copy,
    overruled by the plain fields the scripts judge and keep up to date.
    `SessionStorageError` (naming the handle) if it cannot be read back or a
    field has the wrong type. O(size of the record)."""
    blob, accessed_at, static, superseded, login = fields
    if not isinstance(blob, bytes | str):
        raise corrupt(subject, handle, "fields are missing")
    try:
        metadata = serializer.loads(_as_bytes(blob))
        check_types(metadata)
        created_at, expires_at, authenticated_at, idle, _ = _text(static).split(" ", 4)
        metadata._created_at = int(created_at)
        metadata._expires_at = int(expires_at)
        metadata._idle = None if idle == "-" else int(idle)
        metadata._accessed_at = int(_text(accessed_at))
        grace_ends_at: int | None = None
        renewed_by: str | None = None
        if superseded is not None:
            grace, renewed_by = _text(superseded).split(" ", 1)
            grace_ends_at = int(grace)
        metadata._lineage = lineage_of(
            metadata._created_at,
            int(authenticated_at),
            None if login is None else _text(login),
            grace_ends_at,
            renewed_by,
        )
    except SessionStorageError:
        raise
    except Exception as error:
        raise corrupt(subject, handle, f"{type(error).__name__}: {error}") from None
    metadata._subject = subject
    metadata._handle = handle
    return metadata


def check_types(metadata: object) -> None:
    """Raise `TypeError` unless `metadata` is a `SessionMetadata` whose
    fields that the plain fields do not overrule (ip, device, subject) have
    their types: a serializer's output is data from outside (another
    release, another app on the server, a hand edit), and a wrong type
    would break a comparison far from here. O(1)."""
    if not isinstance(metadata, SessionMetadata):
        raise TypeError(f"the serializer returned a {type(metadata).__name__}")
    if type(metadata._ip) is not str or type(metadata._subject) is not str:
        raise TypeError("ip or subject is not a str")
    device = metadata._device
    if device is not None and not isinstance(device, Device):
        raise TypeError("device is not a Device")


def decode_listed(
    serializer: Serializer, subject: str, reply: Sequence[Value], start: int = 0
) -> list[tuple[str, SessionMetadata]]:
    """(handle, metadata) pairs from a flat reply of handle + `RECORD_FIELDS`
    groups. A record that cannot be read back is logged (by handle) and
    left out: one bad record must not hide the subject's others."""
    listed = []
    group = 1 + len(RECORD_FIELDS)
    for at in range(start, len(reply), group):
        raw_handle = reply[at]
        if not isinstance(raw_handle, bytes | str):
            _log.error("usersession: a Redis reply lists a session without its handle")
            continue
        handle = _as_str(raw_handle)
        try:
            metadata = decode(serializer, subject, handle, reply[at + 1 : at + group])
        except SessionStorageError as error:
            _log.error("usersession: %s", error)
            continue
        listed.append((handle, metadata))
    return listed


def corrupt(subject: str, handle: str, why: str) -> SessionStorageError:
    """The error for a stored session that cannot be read back."""
    return SessionStorageError(
        ErrorCode.STORAGE_FAILURE,
        f"Session '{handle}' in Redis cannot be read back: {why}.",
        subject=subject,
    )


def as_str(value: bytes | str) -> str:
    """A reply element as text."""
    return _as_str(value)
