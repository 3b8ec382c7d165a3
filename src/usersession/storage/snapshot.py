"""Snapshots: an in-memory storage written to a file and read back.

For desktop and edge services that must keep their users logged in across a
restart. The guarantees:

- Atomic: the snapshot is written to a temporary file in the target's
  directory, flushed, fsynced, renamed over the target (`os.replace`), and the
  directory is fsynced. A crash at any point leaves either the previous file
  or the new one, whole, never a mix. (A crash may leave a stray
  `.<name>.*.tmp` file beside it; it is never read.)
- Data only: the format is JSON (no pickle: loading a snapshot cannot run
  code), versioned, and checksummed. A truncated, corrupted or wrong-version
  file is refused with `SnapshotError` (`SNAPSHOT_INVALID`) and nothing is
  loaded.
- Exact: everything a session is made of comes back, renewal grace included
  (when it ends, which manager renewed it, the idle timeout), and so do
  logins (when each began, which sessions belong together); the subject
  index is rebuilt from it. Sessions whose deadline (`policy.deadline`)
  passed while the process was down are dropped on load.
- Locations must be plain JSON data (None, bool, int of at most 4300
  digits, finite float, str, and lists and str-keyed dicts of those), so that
  they come back equal; any other
  location is refused at save time with `SnapshotError`
  (`SNAPSHOT_UNSERIALIZABLE`) and nothing is written. Every str in a snapshot
  is exact text (`session.exact_text`: no surrogate code points), which JSON
  gives back as it was; a file holding another is refused on load.
- Never unloadable: `save` checks every row with the function `load` checks
  rows with (`_row_fault`), so it never writes a file `load` would refuse.

The file holds the session ids: they are the keys, and a loaded session must
answer to its id. A snapshot is therefore as secret as the sessions
themselves: it is created with mode 0o600, and nothing here logs or reports
its contents (errors name sessions by handle only).

It is also a credential store: its checksum detects accidents, not forgery,
so whoever can write the file can create sessions for any subject. On POSIX,
`load` therefore trusts only (as OpenSSH's StrictModes does) a regular file,
not a symbolic link, owned by the process's effective user and writable by
no one else (no group or other write bit), in a directory owned by that
user or root that no one else may write (no group or other write bit,
unless the sticky bit is set, as on /tmp, where no one may replace another's
file). Anything else is refused with `SnapshotError` (`SNAPSHOT_UNTRUSTED`)
before a byte is read. The directory is opened first and the file relative
to it, without following a link and without blocking (a FIFO at the path
does not hang startup), and both are judged by `fstat` on what was opened,
so nothing can be swapped between the check and the read. The directory's
own ancestors are not checked: a directory someone else puts in place is
theirs, and refused. `save` refuses a directory that `load` would refuse,
before writing anything.

File layout: one header line, `{"format": "usersession-snapshot", "version":
2, "length": N, "sha256": "..."}`, then N bytes of JSON body whose SHA-256 the
header records: `{"saved_at": t, "sessions": [row, ...]}`, a row being
`[session_id, subject, ip, device, location, created_at, accessed_at,
expires_at, idle, grace_ends_at, renewed_by, authenticated_at, login]` with
`device` null or `[name, type]` and `login` null or the login's key
(`policy.login_key`). Version 1, written before logins, has rows of the
first 11 fields; it still loads, each session a login of its own that began
at its `created_at`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import stat
import sys
import tempfile
from typing import TYPE_CHECKING

from ..errors import (
    ErrorCode,
    InvalidOptionsError,
    InvalidTypeError,
    SessionStorageError,
    SnapshotError,
)
from ..ids import session_handle
from ..policy import deadline
from ..session import Device, SessionMetadata, exact_text

if TYPE_CHECKING:
    from .memory import InMemorySessionStorage

FORMAT = "usersession-snapshot"
VERSION = 2
"""The version this module writes."""

READABLE_VERSIONS = {1: 11, 2: 13}
"""The versions this module reads, with the fields of a row in each."""

_MAX_DEPTH = 64
"""Nesting accepted in a location: deeper data is refused, not recursed into."""

_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH

_INT_LIMIT = 10**sys.int_info.default_max_str_digits
"""Ints must be smaller in magnitude: Python prints and parses at most 4300
digits by default, so a longer one could be neither saved nor loaded."""

Row = list[object]


def save_snapshot(storage: InMemorySessionStorage, path: str | os.PathLike[str]) -> int:
    """Write `storage` to `path` atomically; return how many sessions were
    written. O(sessions held); the storage's lock is held only while the
    sessions are copied, not while they are checked, encoded and written.

    Every row is checked by the function `load` checks it with
    (`_row_fault`), so nothing is written that `load` would refuse: a
    session that fails raises `SnapshotError` (`SNAPSHOT_UNSERIALIZABLE`)
    naming it by handle, and the file at `path` is left as it was."""
    target = check_snapshot_path(path)
    try:
        _check_directory(target)
    except OSError as error:
        raise SessionStorageError(
            ErrorCode.STORAGE_FAILURE, f"Could not write the snapshot: {_reason(error)}."
        ) from error
    with storage._lock:
        saved_at = storage.clock()
        rows = [_row(session_id, metadata) for session_id, metadata in storage._sessions.items()]
    if not _whole(saved_at):
        raise SnapshotError(
            ErrorCode.SNAPSHOT_UNSERIALIZABLE,
            f"The storage's clock returned {type(saved_at).__name__}, not whole seconds of "
            "at most 4300 digits; nothing was written.",
        )
    fields = READABLE_VERSIONS[VERSION]
    for row in rows:
        fault = _row_fault(row, fields)
        if fault is not None:
            raise SnapshotError(
                ErrorCode.SNAPSHOT_UNSERIALIZABLE,
                f"Session '{session_handle(str(row[0]))}' cannot be saved, it has {fault}; "
                "nothing was written.",
            )
    try:
        body = json.dumps(
            {"saved_at": saved_at, "sessions": rows},
            ensure_ascii=True,
            allow_nan=False,
            separators=(",", ":"),
        ).encode("ascii")
    except (ValueError, TypeError, RecursionError):  # what the checks above rule out
        raise SnapshotError(
            ErrorCode.SNAPSHOT_UNSERIALIZABLE,
            "The sessions could not be encoded; nothing was written.",
        ) from None
    header = json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        },
        separators=(",", ":"),
    ).encode("ascii")
    try:
        _write_atomically(target, header + b"\n" + body)
    except (OSError, ValueError) as error:
        raise SessionStorageError(
            ErrorCode.STORAGE_FAILURE, f"Could not write the snapshot: {_reason(error)}."
        ) from error
    return len(rows)


def read_snapshot(path: str | os.PathLike[str], now: int) -> list[tuple[str, SessionMetadata]]:
    """The sessions of the snapshot at `path` still alive at `now`, as
    (session_id, metadata) pairs ready to be filed. Raises `SnapshotError`
    (`SNAPSHOT_INVALID`) for a file that is not a whole, valid snapshot of
    this version, `SessionStorageError` if it cannot be read. O(file size)."""
    source = check_snapshot_path(path)
    try:
        data = _read_trusted(source)
    except (OSError, ValueError) as error:
        raise SessionStorageError(
            ErrorCode.STORAGE_FAILURE, f"Could not read the snapshot: {_reason(error)}."
        ) from error
    return decode_snapshot(data, now)


def decode_snapshot(data: bytes, now: int) -> list[tuple[str, SessionMetadata]]:
    """`read_snapshot` on the bytes of a file."""
    newline = data.find(b"\n")
    if newline < 0:
        raise _invalid("it has no header line (truncated?)")
    header = _parse(data[:newline], "header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _invalid("it is not a usersession snapshot")
    version = header.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise _invalid(
            f"its version is {version!r}, this release reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    body = data[newline + 1 :]
    length = header.get("length")
    if type(length) is not int or length != len(body):
        raise _invalid("its length does not match its header (truncated?)")
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise _invalid("its checksum does not match (corrupted)")
    content = _parse(body, "body")
    if not isinstance(content, dict) or not isinstance(content.get("sessions"), list):
        raise _invalid("its body has no session list")
    if not _whole(content.get("saved_at")):
        raise _invalid("its body has a bad saved_at")
    entries: list[tuple[str, SessionMetadata]] = []
    seen: set[str] = set()
    fields = READABLE_VERSIONS[version]
    for row in content["sessions"]:
        session_id, metadata = _entry(row, fields)
        if session_id in seen:
            raise _invalid("it holds a session id twice")
        seen.add(session_id)
        if deadline(metadata)[0] > now:
            entries.append((session_id, metadata))
    return entries


def check_snapshot_path(path: object) -> str:
    """The one rule for a snapshot path, which `save`, `load` and `Autosaver`
    all apply: a non-empty str, or an `os.PathLike` giving one, that the
    file system can encode (no NUL character, no lone surrogate it cannot
    take). Never an int (`open` would take it for a file descriptor) nor
    bytes. A str subclass (a `StrEnum` member) is accepted and returned as
    its plain value, as subjects are. O(len(path))."""
    if isinstance(path, os.PathLike):
        try:
            path = os.fspath(path)
        except TypeError:  # its __fspath__ gave neither str nor bytes
            path = None
    if not isinstance(path, str):
        raise InvalidTypeError(
            ErrorCode.INVALID_OPTION,
            f"path must be a str or an os.PathLike of str, not {type(path).__name__}.",
        )
    # str.__str__, not str(): a subclass may override __str__ (Enum does).
    text = path if type(path) is str else str.__str__(path)
    if not text:
        raise InvalidOptionsError(ErrorCode.INVALID_OPTION, "path must not be empty.")
    try:
        encoded = os.fsencode(text)
    except UnicodeEncodeError:
        raise InvalidOptionsError(
            ErrorCode.INVALID_OPTION, "path has characters the file system cannot encode."
        ) from None
    if b"\0" in encoded:
        raise InvalidOptionsError(ErrorCode.INVALID_OPTION, "path must not contain NUL.")
    return text


def _read_trusted(path: str) -> bytes:
    """The bytes of the file at `path`, if it may be trusted (see the module
    docstring); else `SnapshotError` (`SNAPSHOT_UNTRUSTED`). OSError for a
    file that cannot be opened or read."""
    if os.name != "posix":  # no owners or modes to judge by
        with open(path, "rb") as file:
            return file.read()
    user = os.geteuid()
    directory = os.open(_directory_of(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            # O_NONBLOCK: opening a FIFO for reading would otherwise wait
            # for a writer; no effect on a regular file.
            descriptor = os.open(
                os.path.basename(path),
                os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC,
                dir_fd=directory,
            )
        except OSError as error:
            if error.errno == errno.ELOOP:  # O_NOFOLLOW met a link
                raise _untrusted("it is a symbolic link") from None
            if error.errno == errno.ENXIO:  # a socket
                raise _untrusted("it is not a regular file") from None
            raise
        try:
            fault = _file_fault(os.fstat(descriptor), user) or _directory_fault(
                os.fstat(directory), user
            )
            if fault is not None:
                raise _untrusted(fault)
            with open(descriptor, "rb", closefd=False) as file:
                return file.read()
        finally:
            os.close(descriptor)
    finally:
        os.close(directory)


def _check_directory(path: str) -> None:
    """Refuse to save into a directory `load` would not trust (POSIX)."""
    if os.name == "posix":
        fault = _directory_fault(os.stat(_directory_of(path)), os.geteuid())
        if fault is not None:
            raise SnapshotError(
                ErrorCode.SNAPSHOT_UNTRUSTED,
                f"The snapshot was not written: {fault}, so it could not be loaded.",
            )


def _file_fault(status: os.stat_result, user: int) -> str | None:
    """Why the snapshot file `status` describes may not be trusted, or None."""
    if not stat.S_ISREG(status.st_mode):
        return "it is not a regular file"
    if status.st_uid != user:
        return "it is owned by another user than this process's"
    if status.st_mode & _WRITABLE_BY_OTHERS:
        return "it is writable by others than its owner (group or other write permission)"
    return None


def _directory_fault(status: os.stat_result, user: int) -> str | None:
    """Why the directory `status` describes may not hold a trusted snapshot
    (someone else could replace the file in it), or None."""
    if status.st_uid not in (user, 0):
        return "its directory is owned by another user than this process's (or root)"
    if status.st_mode & _WRITABLE_BY_OTHERS and not status.st_mode & stat.S_ISVTX:
        return (
            "its directory is writable by others (group or other write permission, "
            "no sticky bit), who could replace the file"
        )
    return None


def _directory_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def _untrusted(why: str) -> SnapshotError:
    return SnapshotError(
        ErrorCode.SNAPSHOT_UNTRUSTED,
        f"The snapshot was refused: {why}. Only a regular file of this process's user, "
        "that no one else may write, in a directory no one else may write, is trusted.",
    )


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__


def _row(session_id: str, metadata: SessionMetadata) -> Row:
    device = metadata._device
    return [
        session_id,
        metadata._subject,
        metadata._ip,
        None if device is None else [device.name, device.type],
        metadata._location,
        metadata._created_at,
        metadata._accessed_at,
        metadata._expires_at,
        metadata._idle,
        metadata._grace_ends_at,
        metadata._renewed_by,
        metadata._authenticated_at,
        metadata._login,
    ]


def _row_fault(row: object, fields: int) -> str | None:
    """What is wrong with a session row of `fields` fields (see the module
    docstring for the layout), or None if `load` accepts it. The one rule:
    `save` checks every row it would write with it, `load` every row it
    reads. O(size of the row)."""
    if type(row) is not list or len(row) != fields:
        return "the wrong shape"
    (
        session_id,
        subject,
        ip,
        device,
        location,
        created_at,
        accessed_at,
        expires_at,
        idle,
        grace_ends_at,
        renewed_by,
    ) = row[:11]
    authenticated_at, login = row[11:] if fields == 13 else (created_at, None)
    if not (_text(session_id) and _text(subject) and subject):
        return "a bad id or subject"
    if not _text(ip):
        return "a bad ip"
    if device is not None and not (
        type(device) is list and len(device) == 2 and _text(device[0]) and _text(device[1])
    ):
        return "a bad device"
    if not (_whole(created_at) and _whole(accessed_at) and _whole(expires_at)):
        return "a bad timestamp"
    if idle is not None and not (_whole(idle) and idle > 0):
        return "a bad idle timeout"
    if (grace_ends_at is None) != (renewed_by is None) or (
        grace_ends_at is not None and not (_whole(grace_ends_at) and _text(renewed_by))
    ):
        return "a bad renewal"
    if not _whole(authenticated_at) or (login is not None and not _text(login)):
        return "a bad login"
    if not _plain(location, 0):
        return f"a location JSON cannot represent exactly ({type(location).__name__})"
    return None


def _entry(row: object, fields: int) -> tuple[str, SessionMetadata]:
    fault = _row_fault(row, fields)
    if fault is not None or type(row) is not list:  # (the second is for the type checker)
        raise _invalid(f"a session row has {fault}")
    (
        session_id,
        subject,
        ip,
        device,
        location,
        created_at,
        accessed_at,
        expires_at,
        idle,
        grace_ends_at,
        renewed_by,
    ) = row[:11]
    authenticated_at, login = row[11:] if fields == 13 else (created_at, None)
    return session_id, SessionMetadata(
        ip,
        None if device is None else Device(device[0], device[1]),
        location,
        created_at,
        accessed_at,
        expires_at,
        idle=idle,
        grace_ends_at=grace_ends_at,
        renewed_by=renewed_by,
        subject=subject,
        authenticated_at=authenticated_at,
        login=login,
    )


def _whole(value: object) -> bool:
    """Whether `value` is an int (not a bool) JSON can print and read back."""
    return type(value) is int and -_INT_LIMIT < value < _INT_LIMIT


def _text(value: object) -> bool:
    """Whether `value` is a str that JSON gives back exactly (`exact_text`)."""
    return type(value) is str and exact_text(value)


def _plain(value: object, depth: int) -> bool:
    """Whether JSON gives `value` back equal (and of the same types)."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if kind is int:
        return _whole(value)
    if value is None or kind is bool:
        return True
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if depth >= _MAX_DEPTH:
        return False
    if kind is list:
        return all(_plain(item, depth + 1) for item in value)  # type: ignore[attr-defined]
    if kind is dict:
        return all(
            _text(key) and _plain(item, depth + 1)
            for key, item in value.items()  # type: ignore[attr-defined]
        )
    return False


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _parse(text: bytes, part: str) -> object:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _invalid(f"its {part} is not valid JSON (truncated or corrupted)") from None


def _invalid(why: str) -> SnapshotError:
    return SnapshotError(ErrorCode.SNAPSHOT_INVALID, f"The snapshot was refused: {why}.")


def _write_atomically(path: str, data: bytes) -> None:
    directory = _directory_of(path)
    # mkstemp creates the file with mode 0o600: the snapshot is a secret.
    descriptor, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with open(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
