"""Operational numbers of a storage, as one immutable record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StorageStats:
    """A storage's counters at one moment (`InMemorySessionStorage.stats()`).

    `sessions` and `subjects` are what is held now (due sessions not yet swept
    included, like `len(storage)`); the removal counts are totals since the
    storage was created, one per delete event, by `DeleteReason`; `refused`
    counts the sessions a limit refused; `sweeps` the expiry sweeps run
    (opportunistic ones and `collect()`).
    """

    sessions: int
    subjects: int
    deleted: int
    expired: int
    idle: int
    renewed: int
    evicted: int
    refused: int
    sweeps: int

    @property
    def removed(self) -> int:
        """Removals of every reason together."""
        return self.deleted + self.expired + self.idle + self.renewed + self.evicted
