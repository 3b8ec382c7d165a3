"""What the sync and the async Redis storage share: key layout, serialisation,
the Lua scripts, and the translation of calls and replies.

Nothing here does I/O. `RedisSessionStorage` and `AsyncRedisSessionStorage`
each run a script (or one HMGET) per operation and hand the reply back here,
so the two cannot disagree about a key, a field or a rule.

Layout, for a subject `S` and a session whose handle is `H`
(`usersession.ids.session_handle`, never the raw id):

- `<prefix>:{<S encoded>}:session:<H>`: a hash with the fields `metadata`
  (the serialised `SessionMetadata`), `accessed_at`, `expires_at`, once
  superseded by a renewal `grace_ends_at` and `renewed_by`, and once its
  login has been renewed `login` (`policy.login_key`: the handle of the
  login's first session). The plain fields
  win over the copies inside `metadata`: the scripts update them without
  decoding a serializer's bytes. The key's TTL is the session's remaining
  life (`policy.deadline`), so Redis expires it on its own.
- `<prefix>:{<S encoded>}:index`: a sorted set of the subject's handles,
  scored by deadline (Unix seconds). Scripts drop members whose deadline is
  at or before `now` (and their keys) before they look at the set; its TTL
  is one second past its latest member's, so an abandoned subject leaves
  nothing behind.

The subject is percent-encoded (UTF-8, every byte outside `A-Za-z0-9-._~`),
so `{`, `}` and `:` never appear in it: the braces make the encoded subject
the Redis Cluster hash tag, and all keys of one subject live in one slot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from urllib.parse import quote

from redis.exceptions import RedisError

from ..clock import Clock, check_clock, system_clock
from ..errors import ErrorCode, InvalidOptionsError, InvalidTypeError, SessionStorageError
from ..policy import deadline, is_active
from ..session import Device, SessionMetadata
from .protocol import DeleteReason, Listener

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
    """The default serializer: one compact, ASCII JSON object per session.

    `location` may be any JSON value (dicts with str keys, lists, str, int,
    float, bool, None); a tuple comes back as a list. Anything else is refused
    with `InvalidTypeError` (code `INVALID_CONTEXT`) when the session is stored.
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
            # ASCII output: lone surrogates in a str survive the round trip.
            return json.dumps(record, separators=(",", ":")).encode("ascii")
        except (TypeError, ValueError) as error:
            raise InvalidTypeError(
                ErrorCode.INVALID_CONTEXT,
                f"Session metadata is not JSON serialisable ({error}); the Redis storage "
                f"needs a JSON value as location, or another serializer.",
            ) from None

    def loads(self, data: bytes) -> SessionMetadata:
        """O(size of the data)."""
        record = json.loads(data)
        device = record["device"]
        return SessionMetadata(
            record["ip"],
            None if device is None else Device(device[0], device[1]),
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
        start with. Injective: two subjects never share a tag. O(len(subject))."""
        return f"{self._prefix}:{{{quote(subject, safe='', errors='surrogatepass')}}}"

    def index_key(self, subject: str) -> str:
        """The sorted set of the subject's handles, scored by deadline."""
        return self.subject_tag(subject) + ":index"

    def session_key(self, subject: str, handle: str) -> str:
        """The hash of one session."""
        return f"{self.subject_tag(subject)}:session:{handle}"

    def session_key_prefix(self, subject: str) -> str:
        """What the session keys of `subject` start with (the handle follows)."""
        return self.subject_tag(subject) + ":session:"


# -- scripts --------------------------------------------------------------------

# Shared Lua helpers, prepended to each script. Every script checks what it
# must before its first write: a Redis script is not rolled back on an error,
# so a script that fails has written nothing.
_LUA_HELPERS = """
local function trim(index, key_prefix, now)
  local dead = redis.call('ZRANGEBYSCORE', index, '-inf', now)
  if #dead > 0 then
    for i = 1, #dead do
      redis.call('DEL', key_prefix .. dead[i])
    end
    redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  end
end

local function keep_index(index, now)
  local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if #last > 0 then
    redis.call('PEXPIRE', index, (tonumber(last[2]) - now + 1) * 1000)
  end
end

local function put(key, index, handle, blob, accessed_at, expires_at, now, deadline)
  redis.call('HSET', key, 'metadata', blob, 'accessed_at', accessed_at,
             'expires_at', expires_at)
  redis.call('PEXPIRE', key, (deadline - now) * 1000)
  redis.call('ZADD', index, deadline, handle)
end
"""

_FIELDS = "'metadata', 'accessed_at', 'grace_ends_at', 'renewed_by', 'login'"
_FIELD_COUNT = 5

# Removal of several sessions of one subject, returning what listeners need.
_LUA_REMOVE = f"""
-- Removes the sessions `handles` of the subject whose index is `index`.
-- Returns {{count}}, or with want == '1' {{count, handle, {_FIELDS}, ...}}
-- for each session removed.
local function remove(index, key_prefix, handles, want)
  local removed = {{0}}
  for i = 1, #handles do
    local key = key_prefix .. handles[i]
    local fields = nil
    if want == '1' then fields = redis.call('HMGET', key, {_FIELDS}) end
    if redis.call('DEL', key) == 1 then
      removed[1] = removed[1] + 1
      if fields then
        removed[#removed + 1] = handles[i]
        for j = 1, {_FIELD_COUNT} do removed[#removed + 1] = fields[j] end
      end
    end
    redis.call('ZREM', index, handles[i])
  end
  return removed
end

-- The handles in `index` whose session belongs to `login` (nil: none).
local function login_members(index, key_prefix, login)
  local members = {{}}
  if not login then return members end
  local handles = redis.call('ZRANGE', index, 0, -1)
  for i = 1, #handles do
    if redis.call('HGET', key_prefix .. handles[i], 'login') == login then
      members[#members + 1] = handles[i]
    end
  end
  return members
end
"""

INSERT = (
    _LUA_HELPERS
    + """
-- KEYS: session, index. ARGV: handle, blob, accessed_at, expires_at, now,
-- deadline, session key prefix. Returns 1, or 0 if the session exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now = tonumber(ARGV[5])
trim(KEYS[2], ARGV[7], now)
put(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], now, tonumber(ARGV[6]))
keep_index(KEYS[2], now)
return 1
"""
)

TOUCH = (
    _LUA_HELPERS
    + """
-- KEYS: session, index. ARGV: handle, now, new deadline ('' if unchanged).
-- A deleted session is not re-created; a superseded one is not extended.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'grace_ends_at') == 1 then return 0 end
-- Never backwards: a delayed touch must not undo a later one's.
local accessed_at = tonumber(redis.call('HGET', KEYS[1], 'accessed_at'))
if accessed_at and accessed_at >= tonumber(ARGV[2]) then return 1 end
redis.call('HSET', KEYS[1], 'accessed_at', ARGV[2])
if ARGV[3] ~= '' then
  local now = tonumber(ARGV[2])
  local deadline = tonumber(ARGV[3])
  redis.call('PEXPIRE', KEYS[1], (deadline - now) * 1000)
  redis.call('ZADD', KEYS[2], deadline, ARGV[1])
  keep_index(KEYS[2], now)
end
return 1
"""
)

RENEW = (
    _LUA_HELPERS
    + """
-- KEYS: old session, new session, index. ARGV: old handle, grace_ends_at,
-- renewed_by, new handle, new blob, new accessed_at, new expires_at, now,
-- new deadline, session key prefix.
-- Returns {0} if the old session is gone, {1, renewed_by} if it was
-- superseded already, {2, renewed_by} if this call superseded it, {3} if the
-- new id is taken.
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local earlier = redis.call('HGET', KEYS[1], 'renewed_by')
if earlier then return {1, earlier} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {3} end
local now = tonumber(ARGV[8])
-- policy.login_key: the login is named by its first session's handle.
local login = redis.call('HGET', KEYS[1], 'login') or ARGV[1]
-- policy.deadline of a superseded session: the earlier of grace end and expiry.
local ends_at = math.min(tonumber(ARGV[2]), tonumber(redis.call('HGET', KEYS[1], 'expires_at')))
if ends_at > now then
  redis.call('HSET', KEYS[1], 'grace_ends_at', ARGV[2], 'renewed_by', ARGV[3], 'login', login)
  redis.call('PEXPIRE', KEYS[1], (ends_at - now) * 1000)
  redis.call('ZADD', KEYS[3], ends_at, ARGV[1])
else
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
trim(KEYS[3], ARGV[10], now)
put(KEYS[2], KEYS[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], now, tonumber(ARGV[9]))
redis.call('HSET', KEYS[2], 'login', login)
keep_index(KEYS[3], now)
return {2, ARGV[3]}
"""
)

READ_ALL = (
    _LUA_HELPERS
    + f"""
-- KEYS: index. ARGV: session key prefix, now.
-- Returns handle, {_FIELDS} per session.
local now = tonumber(ARGV[2])
trim(KEYS[1], ARGV[1], now)
local listed = {{}}
local handles = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #handles do
  local fields = redis.call('HMGET', ARGV[1] .. handles[i], {_FIELDS})
  if fields[1] then
    listed[#listed + 1] = handles[i]
    for j = 1, {_FIELD_COUNT} do listed[#listed + 1] = fields[j] end
  else
    redis.call('ZREM', KEYS[1], handles[i])
  end
end
return listed
"""
)

DELETE = f"""
-- KEYS: session, index. ARGV: handle, '1' to return the removed fields.
-- Returns {{}} if nothing was removed, else {{1}} or {{1, {_FIELDS}}}.
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] == '1' then
  local fields = redis.call('HMGET', KEYS[1], {_FIELDS})
  if redis.call('DEL', KEYS[1]) == 0 then return {{}} end
  return {{1, fields[1], fields[2], fields[3], fields[4], fields[5]}}
end
if redis.call('DEL', KEYS[1]) == 0 then return {{}} end
return {{1}}
"""

DELETE_ALL = (
    _LUA_REMOVE
    + """
-- KEYS: index. ARGV: session key prefix, '1' to return the removed sessions.
local removed = remove(KEYS[1], ARGV[1], redis.call('ZRANGE', KEYS[1], 0, -1), ARGV[2])
redis.call('DEL', KEYS[1])
return removed
"""
)

DELETE_LOGIN = (
    _LUA_REMOVE
    + """
-- KEYS: session, index. ARGV: handle, session key prefix, '1' to return
-- the removed sessions. Removes every session of the login the session
-- belongs to (only itself if its login was never renewed).
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local members = login_members(KEYS[2], ARGV[2], redis.call('HGET', KEYS[1], 'login'))
if #members == 0 then members = {ARGV[1]} end
return remove(KEYS[2], ARGV[2], members, ARGV[3])
"""
)

DELETE_OTHER_LOGINS = (
    _LUA_REMOVE
    + """
-- KEYS: index. ARGV: session key prefix, '1' to return the removed sessions,
-- handle of the session to keep, now. Removes every session of the subject
-- outside the kept session's login; {-1} (nothing removed) if the kept
-- session's deadline (its index score) is not after now.
local score = redis.call('ZSCORE', KEYS[1], ARGV[3])
if not score or tonumber(score) <= tonumber(ARGV[4]) then return {-1} end
local keep = ARGV[1] .. ARGV[3]
if redis.call('EXISTS', keep) == 0 then return {-1} end
local kept = {[ARGV[3]] = true}
local members = login_members(KEYS[1], ARGV[1], redis.call('HGET', keep, 'login'))
for i = 1, #members do kept[members[i]] = true end
local others = {}
local handles = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #handles do
  if not kept[handles[i]] then others[#others + 1] = handles[i] end
end
return remove(KEYS[1], ARGV[1], others, ARGV[2])
"""
)

READ_FIELDS = ("metadata", "accessed_at", "grace_ends_at", "renewed_by", "login")
"""The hash fields `read` fetches (HMGET), in the order `decode` expects."""

# -- calls and replies ----------------------------------------------------------

Value = bytes | str | int | None
"""One element of a Redis reply (str when the client decodes responses)."""


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _as_str(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def decode(
    serializer: Serializer,
    subject: str,
    handle: str,
    fields: Sequence[Value],
) -> SessionMetadata:
    """The metadata from `READ_FIELDS`: the serialised copy, overruled by
    the fields the scripts keep up to date."""
    blob, accessed_at, grace_ends_at, renewed_by, login = fields
    if not isinstance(blob, bytes | str) or accessed_at is None:
        raise _corrupt(handle, "fields are missing")
    try:
        metadata = serializer.loads(_as_bytes(blob))
        metadata._accessed_at = int(accessed_at)
        metadata._grace_ends_at = None if grace_ends_at is None else int(grace_ends_at)
        metadata._renewed_by = (
            None if renewed_by is None or isinstance(renewed_by, int) else _as_str(renewed_by)
        )
        metadata._login = None if login is None or isinstance(login, int) else _as_str(login)
    except SessionStorageError:
        raise
    except Exception as error:
        raise _corrupt(handle, f"{type(error).__name__}: {error}") from None
    metadata._subject = subject
    metadata._handle = handle
    return metadata


def decode_listed(
    serializer: Serializer, subject: str, reply: Sequence[Value], start: int = 0
) -> list[tuple[str, SessionMetadata]]:
    """(handle, metadata) pairs from a flat reply of handle + `READ_FIELDS` groups."""
    listed = []
    group = 1 + len(READ_FIELDS)
    for at in range(start, len(reply), group):
        raw_handle = reply[at]
        if not isinstance(raw_handle, bytes | str):
            raise _corrupt("?", "a handle is missing")
        handle = _as_str(raw_handle)
        listed.append((handle, decode(serializer, subject, handle, reply[at + 1 : at + group])))
    return listed


def _corrupt(handle: str, why: str) -> SessionStorageError:
    return SessionStorageError(
        ErrorCode.STORAGE_FAILURE, f"Session '{handle}' in Redis cannot be read back: {why}."
    )


def touch_deadline(metadata: SessionMetadata, now: int) -> str:
    """The TOUCH argument: the new deadline if the touch moves it (idle on),
    else ''. Sets `accessed_at` on `metadata`."""
    metadata._accessed_at = now
    if metadata._idle is None:
        return ""
    return str(deadline(metadata)[0])


def insert_args(
    layout: KeyLayout,
    serializer: Serializer,
    subject: str,
    handle: str,
    metadata: SessionMetadata,
) -> list[bytes | str | int]:
    """The INSERT arguments (after the keys). The session is stored as of its
    `created_at`, which is the manager's `now`."""
    metadata._subject = subject
    return [
        handle,
        serializer.dumps(metadata),
        metadata._accessed_at,
        metadata._expires_at,
        metadata._created_at,
        deadline(metadata)[0],
        layout.session_key_prefix(subject),
    ]


@contextmanager
def redis_errors(operation: str, subject: str, handle: str | None = None) -> Iterator[None]:
    """Turn any Redis failure into `SessionStorageError` naming the operation
    and the session by handle; the subject is its `subject` attribute, never
    in the message. (Nothing sent to Redis contains a raw session id, so
    neither can the chained Redis error.)"""
    try:
        yield
    except RedisError as error:
        session = " a subject's sessions" if handle is None else f" session '{handle}'"
        raise SessionStorageError(
            ErrorCode.STORAGE_FAILURE,
            f"Redis failed to {operation}{session}: {type(error).__name__}: {error}",
            subject=subject,
        ) from error


def taken(handle: str) -> SessionStorageError:
    """The error for an insert of a session that is stored already."""
    return SessionStorageError(ErrorCode.STORAGE_FAILURE, f"Session '{handle}' is already stored.")


# -- the shared half of both storages -------------------------------------------

WANT = ("0", "1")
"""Script flag: whether to return what a delete removed (only for listeners)."""


ScriptT = TypeVar("ScriptT")


@dataclass(frozen=True, slots=True)
class Scripts(Generic[ScriptT]):
    """The scripts, registered on one client (sync or asyncio)."""

    insert: ScriptT
    touch: ScriptT
    renew: ScriptT
    read_all: ScriptT
    delete: ScriptT
    delete_all: ScriptT
    delete_login: ScriptT
    delete_other_logins: ScriptT


def register_scripts(register: Callable[[str], ScriptT]) -> Scripts[ScriptT]:
    """Register every script with `register` (a client's `register_script`)."""
    return Scripts(
        register(INSERT),
        register(TOUCH),
        register(RENEW),
        register(READ_ALL),
        register(DELETE),
        register(DELETE_ALL),
        register(DELETE_LOGIN),
        register(DELETE_OTHER_LOGINS),
    )


class RedisStorageCore:
    """Options, listeners and the reply handling of both Redis storages.

    Subclasses do one round trip per operation and pass the reply to the
    `_after_*` methods; everything else lives here.
    """

    def __init__(
        self,
        *,
        key_prefix: str = "usersession",
        serializer: Serializer | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._layout = KeyLayout(key_prefix)
        self._serializer: Serializer = JsonSerializer() if serializer is None else serializer
        self.clock: Clock = system_clock if clock is None else check_clock(clock)
        self._listeners: list[Listener] = []

    @property
    def key_prefix(self) -> str:
        """The prefix of every key this storage writes."""
        return self._layout.prefix

    @property
    def layout(self) -> KeyLayout:
        """The key names (for operators and tests)."""
        return self._layout

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(subject, handle, metadata, reason)` after each removal
        this storage carries out itself: `delete` (reason as the manager gives
        it: DELETED, or IDLE for an idle session found by a read), and
        `delete_login` (`logout`, `revoke`), `delete_all` and
        `delete_other_logins` (DELETED). The second argument is the
        session's handle, not its id: Redis keeps no raw ids. Sessions that
        Redis expires on its own (absolute expiry, idle deadline, end of a
        renewal grace), and dead index members a script drops, are removed
        silently: no event. An exception a listener raises is logged and
        swallowed."""
        if not callable(listener):
            raise InvalidTypeError(ErrorCode.INVALID_OPTION, "A listener must be callable.")
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling `listener`. ValueError if it was not added."""
        self._listeners.remove(listener)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_prefix={self._layout.prefix!r})"

    # -- calls -------------------------------------------------------------------

    def _insert_call(
        self, subject: str, handle: str, metadata: SessionMetadata
    ) -> tuple[list[str], list[bytes | str | int]]:
        layout = self._layout
        keys = [layout.session_key(subject, handle), layout.index_key(subject)]
        return keys, insert_args(layout, self._serializer, subject, handle, metadata)

    def _touch_call(
        self, subject: str, handle: str, metadata: SessionMetadata, now: int
    ) -> tuple[list[str], list[str | int]]:
        layout = self._layout
        keys = [layout.session_key(subject, handle), layout.index_key(subject)]
        return keys, [handle, now, touch_deadline(metadata, now)]

    def _renew_call(
        self,
        subject: str,
        handle: str,
        grace_ends_at: int,
        renewed_by: str,
        new_handle: str,
        new_metadata: SessionMetadata,
    ) -> tuple[list[str], list[bytes | str | int]]:
        layout = self._layout
        keys = [
            layout.session_key(subject, handle),
            layout.session_key(subject, new_handle),
            layout.index_key(subject),
        ]
        new_metadata._subject = subject
        args: list[bytes | str | int] = [
            handle,
            grace_ends_at,
            renewed_by,
            new_handle,
            self._serializer.dumps(new_metadata),
            new_metadata._accessed_at,
            new_metadata._expires_at,
            new_metadata._created_at,  # the manager's `now`
            deadline(new_metadata)[0],
            layout.session_key_prefix(subject),
        ]
        return keys, args

    def _delete_call(self, subject: str, handle: str) -> tuple[list[str], list[str]]:
        layout = self._layout
        keys = [layout.session_key(subject, handle), layout.index_key(subject)]
        return keys, [handle, WANT[bool(self._listeners)]]

    def _delete_all_call(self, subject: str) -> tuple[list[str], list[str]]:
        layout = self._layout
        keys = [layout.index_key(subject)]
        return keys, [layout.session_key_prefix(subject), WANT[bool(self._listeners)]]

    def _delete_login_call(self, subject: str, handle: str) -> tuple[list[str], list[str]]:
        layout = self._layout
        keys = [layout.session_key(subject, handle), layout.index_key(subject)]
        return keys, [handle, layout.session_key_prefix(subject), WANT[bool(self._listeners)]]

    def _delete_other_logins_call(
        self, subject: str, keep_handle: str, now: int
    ) -> tuple[list[str], list[str | int]]:
        layout = self._layout
        keys = [layout.index_key(subject)]
        prefix = layout.session_key_prefix(subject)
        return keys, [prefix, WANT[bool(self._listeners)], keep_handle, now]

    # -- replies -----------------------------------------------------------------

    def _after_read(
        self, subject: str, handle: str, fields: Sequence[Value]
    ) -> SessionMetadata | None:
        if fields[0] is None:
            return None
        return decode(self._serializer, subject, handle, fields)

    @staticmethod
    def _after_renew(handle: str, new_handle: str, reply: Sequence[Value]) -> str | None:
        outcome = reply[0]
        if outcome == 0:
            return None
        if outcome == 3:
            raise taken(new_handle)
        renewed_by = reply[1]
        if not isinstance(renewed_by, bytes | str):
            raise _corrupt(handle, "renewed_by is missing")
        return _as_str(renewed_by)

    def _after_read_all(
        self, subject: str, reply: Sequence[Value], now: int
    ) -> list[tuple[str, SessionMetadata]]:
        listed = decode_listed(self._serializer, subject, reply)
        return [(handle, metadata) for handle, metadata in listed if is_active(metadata, now)]

    def _after_delete(
        self, subject: str, handle: str, reply: Sequence[Value], reason: DeleteReason
    ) -> bool:
        if not reply:
            return False
        if len(reply) > 1 and self._listeners:
            self._emit(
                subject, handle, decode(self._serializer, subject, handle, reply[1:]), reason
            )
        return True

    def _after_delete_all(self, subject: str, reply: Sequence[Value]) -> int:
        """The count from a reply of `DELETE_ALL`, `DELETE_LOGIN` or
        `DELETE_OTHER_LOGINS` (whose -1 means "keep is not live": -1 is
        returned), after telling the listeners."""
        count = reply[0]
        if len(reply) > 1 and self._listeners:
            for handle, metadata in decode_listed(self._serializer, subject, reply, 1):
                self._emit(subject, handle, metadata, DeleteReason.DELETED)
        return int(count) if count is not None else 0

    def _emit(
        self, subject: str, handle: str, metadata: SessionMetadata, reason: DeleteReason
    ) -> None:
        for listener in list(self._listeners):
            try:
                listener(subject, handle, metadata, reason)
            except Exception:
                _log.exception(
                    "usersession: delete listener %r failed for session '%s' (%s)",
                    listener,
                    handle,
                    reason.name,
                )
