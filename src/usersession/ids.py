"""Session ids and their handles.

Ids are URL-safe text cut from a pool of `os.urandom` bytes that is base64
encoded in one pass: one system call and one encode per ~2000 ids instead of
one each (`secrets.token_urlsafe` does both per call; see benchmarks/). Each
character carries 6 random bits, so an id of `id_bytes` bytes has at least
`8 * id_bytes` bits of entropy. Generators of one id length share one pool. A
forked child starts with empty pools, so it can never hand out an id its
parent will also hand out; for the same reason a pool is never pickled or
duplicated (a copy of a generator, and so of a manager, takes its ids from
the shared pool of its process, and a pickle carries no ids at all).

A handle is the public fingerprint of an id (SHA-256, the first 32 hex
characters): stable across processes and releases, safe to log and to show,
useless as a credential.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import os
from collections.abc import Callable
from typing import Protocol

from .options import check_session_id

_POOL_BYTES = 48 * 1024
"""Random bytes drawn per refill: large enough to amortise the system call,
small enough that a refill costs tens of microseconds."""

_pools: dict[int, list[str]] = {}
"""Ids not handed out yet, by id length in characters. The pools, not the
generators, are what a forked child must empty: a registry of generators
would need weak references, which compiled (mypyc) classes do not support,
and there are at most a few id lengths in a process."""


class IdGenerator:
    """Hands out session ids of `id_bytes` random bytes each.

    `new_id()` is O(1) amortized and safe to call from several threads: ids
    are kept in a list and `list.pop` is atomic, so no two callers get the
    same id (generators of one length share a pool, so this holds across
    them too, copies included).

    The pool holds the next ids in clear text, so it never leaves the
    process's memory: `pickle`, `copy.copy` and `copy.deepcopy` all rebuild a
    generator from `id_bytes` alone.
    """

    __slots__ = ("_chars", "_id_bytes", "_pool")

    def __init__(self, id_bytes: int) -> None:
        """`id_bytes` as `options.validate_options` accepts it (16 to 1024)."""
        self._id_bytes = id_bytes
        # ceil(8 * id_bytes / 6) characters of 6 bits each.
        self._chars = -(-id_bytes * 4 // 3)
        self._pool: list[str] = _pools.setdefault(self._chars, [])

    def __reduce__(self) -> tuple[type[IdGenerator], tuple[int]]:
        # Pickle, copy and deepcopy all go through here: a copy holding the
        # same pool would hand out the same ids, and a pickle would carry
        # them in clear text.
        return (IdGenerator, (self._id_bytes,))

    def new_id(self) -> str:
        """A fresh, unpredictable session id."""
        try:
            return self._pool.pop()
        except IndexError:
            self._refill()
            return self._pool.pop()

    def _refill(self) -> None:
        text = base64.urlsafe_b64encode(os.urandom(_POOL_BYTES)).decode("ascii")
        size = self._chars
        # _POOL_BYTES is a multiple of 3, so the text has no '=' padding.
        self._pool.extend([text[i : i + size] for i in range(0, len(text) - size + 1, size)])


def _forget_all_pools() -> None:
    # Emptied in place: every generator holds its pool, not a copy.
    for pool in _pools.values():
        pool.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all_pools)


class _Digest(Protocol):
    def hexdigest(self) -> str: ...


def _own_sha256() -> Callable[[bytes], _Digest]:
    """CPython's own SHA-256 (`_sha2` from 3.12, `_sha256` before), else
    hashlib's (OpenSSL's). Same digest; CPython's skips OpenSSL's per-call
    setup, which is most of what hashing 32 bytes costs: 0.40 us for
    `hexdigest` here, where `hashlib.sha256` takes 0.70 and BLAKE2b-128 0.55
    (a Python without the built-in module gets the OpenSSL one)."""
    for name in ("_sha2", "_sha256"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        constructor: Callable[[bytes], _Digest] = module.sha256
        return constructor
    return hashlib.sha256


_sha256 = _own_sha256()


def session_handle(session_id: str) -> str:
    """The handle of a session id: the SHA-256 digest of its UTF-8 bytes, in
    hex, cut to its first 32 characters (128 bits): URL-safe.

    O(len(session_id)). One-way: the id cannot be recovered from it (the id
    has at least 128 random bits). A session id that is not a str raises
    `InvalidTypeError` (`INVALID_SESSION_ID`).
    """
    if type(session_id) is not str:
        check_session_id(session_id)
    try:
        data = session_id.encode()
    except UnicodeEncodeError:  # a lone surrogate: still a str, still hashable
        data = session_id.encode("utf-8", "surrogatepass")
    # read_all pays this once per session it lists for the first time: see
    # _own_sha256 for why not hashlib. Hex needs no base64 or URL-safe
    # translation (those took SHA-256 + URL-safe base64 to 1.1 us).
    return _sha256(data).hexdigest()[:32]
