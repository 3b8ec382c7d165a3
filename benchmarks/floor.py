"""The floor: the least work the interpreter can do for each operation.

One plain dict of session id -> record (a list), nothing else: no expiry, no
subject index, no lock, no argument checks. It shows how close to the
interpreter's limit the other two sides are, not a usable design.

Because there is no index, the per-subject operations (`read_all`,
`delete_all`) and the sweep are given the session ids to visit by the
benchmark: the floor of "list 10 sessions" is 10 dict lookups, the floor of
"evict N sessions" is N `dict.pop` calls. Ids are cut from a pooled
`os.urandom` buffer (the cheapest secure source), so that the floor of create
does not pay a system call per id.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable

from usersession import SessionContext

_ID_CHARS = 32  # 24 random bytes in URL-safe base64, like the other two sides
_POOL_BYTES = 48 * 1024


class DictFloor:
    """Sessions in one dict; the same calls as the manager where that makes sense."""

    def __init__(self, *, session_ttl: int, clock: Callable[[], int]) -> None:
        self._ttl = session_ttl
        self._clock = clock
        self._sessions: dict[str, list[object]] = {}
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._sessions)

    def _new_id(self) -> str:
        ids = self._ids
        if not ids:
            text = base64.urlsafe_b64encode(os.urandom(_POOL_BYTES)).decode("ascii")
            ids.extend(text[i : i + _ID_CHARS] for i in range(0, len(text), _ID_CHARS))
        return ids.pop()

    def create(self, subject: str, context: SessionContext, ttl: int | None = None) -> str:
        session_id = self._new_id()
        now = self._clock()
        self._sessions[session_id] = [subject, context.ip, now, now, now + (ttl or self._ttl)]
        return session_id

    def read(self, subject: str, session_id: str, context: SessionContext) -> tuple[object, None]:
        record = self._sessions.get(session_id)
        if record is None or record[0] != subject:
            raise KeyError(subject)
        record[3] = self._clock()
        return record, None

    def renew(self, subject: str, session_id: str, context: SessionContext) -> str:
        """Insert a successor and mark the old record (the floor of a renewal)."""
        record = self._sessions[session_id]
        now = self._clock()
        new_id = self._new_id()
        self._sessions[new_id] = [subject, context.ip, now, now, now + record[4] - record[2]]
        record.append(new_id)
        return new_id

    def read_all(self, session_ids: Iterable[str]) -> dict[str, object]:
        sessions = self._sessions
        return {session_id: sessions[session_id] for session_id in session_ids}

    def delete(self, subject: str, session_id: str) -> None:
        record = self._sessions.get(session_id)
        if record is not None and record[0] == subject:
            del self._sessions[session_id]

    def delete_all(self, session_ids: Iterable[str]) -> int:
        pop = self._sessions.pop
        removed = 0
        for session_id in session_ids:
            pop(session_id)
            removed += 1
        return removed

    def collect(self, session_ids: Iterable[str]) -> int:
        """`dict.pop` each of the given ids; return how many."""
        pop = self._sessions.pop
        removed = 0
        for session_id in session_ids:
            pop(session_id)
            removed += 1
        return removed
