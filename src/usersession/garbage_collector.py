"""Deadline buckets: which keys come due at which second.

The collector knows keys and seconds, nothing about sessions. Keys are filed
in a bucket per deadline second (a list, in filing order); a
`sortedcontainers.SortedList` indexes the seconds that have a bucket, so the
due buckets are always a prefix of it.

Costs: `add` is O(1) amortized (O(log B) when it opens a new bucket, B the
number of buckets: at most one per second of the longest TTL); `pop_due(now)`
costs O(keys returned) plus O(log B) per bucket popped. Nothing is ever
O(keys held).

Removing a key is lazy: the collector has no `remove`. Its owner forgets the
key and, when the key's bucket comes due, skips it. Lists beat sets here: an
append is cheaper than a set insert, a key costs 8 bytes instead of ~30, and a
sweep walks a list about twice as fast (benchmarks/). The price is that a
forgotten key stays in its bucket until its second comes; `compact` (which
asks about each filing) or `replace` (which takes the filings the owner
knows to be current) gives that memory back early, and the owner decides
when it is worth it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from sortedcontainers import SortedList

K = TypeVar("K")


class BucketGarbageCollector(Generic[K]):
    """Files keys under deadline seconds and reports the ones that come due."""

    __slots__ = ("_buckets", "_recent", "_recent_second", "_seconds")

    def __init__(self) -> None:
        self._buckets: dict[int, list[K]] = {}
        self._seconds = SortedList()
        # The bucket `add` filed into last, while it is still held (every
        # method that drops or replaces buckets forgets it). Keys come in
        # runs with one deadline (the sessions created in one second with one
        # TTL), and compiled code looks a second up in `_buckets` by making
        # an int object of it.
        self._recent: list[K] | None = None
        self._recent_second = 0

    def add(self, key: K, second: int) -> None:
        """File `key` under `second`. O(1) amortized; O(log B) for a new bucket.

        A key may be filed under several seconds (the owner re-files it when
        its deadline moves); each filing is reported once when it comes due.
        """
        bucket = self._recent
        if bucket is not None and second == self._recent_second:
            bucket.append(key)
            return
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = [key]
            self._seconds.add(second)
        else:
            bucket.append(key)
        self._recent = bucket
        self._recent_second = second

    def pop_due(self, now: int) -> Iterator[tuple[int, list[K]]]:
        """Remove and yield, earliest first, each (second, keys) with second <= now.

        A bucket is popped before it is yielded, so keys the caller files
        while iterating (at seconds > now) are not reported again.
        """
        seconds = self._seconds
        buckets = self._buckets
        while seconds and seconds[0] <= now:
            second = seconds.pop(0)
            self._recent = None
            yield second, buckets.pop(second)

    def next_due(self) -> int | None:
        """The earliest second that has a bucket, or None. O(1)."""
        seconds = self._seconds
        return seconds[0] if seconds else None

    def pop_earliest(self) -> tuple[K, int] | None:
        """Remove and return one filing (key, second) of the earliest bucket,
        or None if nothing is filed. O(1); O(log B) when it empties a bucket.

        The filing may be stale: the owner judges it, as in `pop_due`. Which
        key of the bucket comes out is unspecified (they share the second).
        """
        seconds = self._seconds
        if not seconds:
            return None
        second = seconds[0]
        bucket = self._buckets[second]
        key = bucket.pop()
        if not bucket:
            del self._buckets[second]
            seconds.pop(0)
            self._recent = None
        return key, second

    def compact(self, keep: Callable[[K, int], bool]) -> int:
        """Drop every filing for which `keep(key, second)` is false; return how
        many were dropped. O(filings held): run it rarely (amortized)."""
        self._recent = None
        dropped = 0
        for second in list(self._seconds):
            bucket = self._buckets[second]
            kept = [key for key in bucket if keep(key, second)]
            dropped += len(bucket) - len(kept)
            if kept:
                self._buckets[second] = kept
            else:
                del self._buckets[second]
                self._seconds.remove(second)
        return dropped

    def replace(self, buckets: dict[int, list[K]]) -> None:
        """Drop every filing and hold `buckets` (second -> keys, taken as
        they are) instead. O(filings held + B log B). The owner builds them
        from what it knows to be current, which costs nothing per forgotten
        key: cheaper than `compact` when most filings are stale."""
        self._recent = None
        self._buckets.clear()
        self._buckets.update(buckets)
        self._seconds.clear()
        self._seconds.update(buckets)

    def __len__(self) -> int:
        """Filings held, stale ones included. O(B)."""
        return sum(len(bucket) for bucket in self._buckets.values())

    def __repr__(self) -> str:
        return f"BucketGarbageCollector(buckets={len(self._buckets)})"
