"""The deadline buckets, on their own: keys and seconds, nothing about sessions."""

from __future__ import annotations

from usersession import BucketGarbageCollector


def test_due_buckets_come_out_earliest_first_and_only_once() -> None:
    collector: BucketGarbageCollector[str] = BucketGarbageCollector()
    collector.add("c", 30)
    collector.add("a", 10)
    collector.add("b", 10)
    collector.add("d", 40)
    assert list(collector.pop_due(30)) == [(10, ["a", "b"]), (30, ["c"])]
    assert list(collector.pop_due(30)) == []
    assert collector.next_due() == 40


def test_keys_filed_while_sweeping_for_a_later_second_wait_their_turn() -> None:
    collector: BucketGarbageCollector[str] = BucketGarbageCollector()
    collector.add("a", 10)
    seen = []
    for second, keys in collector.pop_due(20):
        seen.append((second, keys))
        collector.add("a", 25)
    assert seen == [(10, ["a"])]
    assert list(collector.pop_due(25)) == [(25, ["a"])]


def test_compact_drops_what_the_owner_no_longer_wants_and_empty_buckets() -> None:
    collector: BucketGarbageCollector[int] = BucketGarbageCollector()
    for key in range(10):
        collector.add(key, 100 + key % 3)
    assert collector.compact(lambda key, second: key % 2 == 0) == 5
    assert len(collector) == 5
    assert collector.compact(lambda key, second: second != 100) == 2
    assert collector.next_due() == 101
    assert sorted(k for _, keys in collector.pop_due(200) for k in keys) == [2, 4, 8]
    assert collector.next_due() is None


def test_replace_holds_exactly_the_buckets_given() -> None:
    collector: BucketGarbageCollector[str] = BucketGarbageCollector()
    for key in "abcdef":
        collector.add(key, 50)
    collector.add("g", 20)
    collector.replace({60: ["b"], 30: ["a", "c"]})
    assert len(collector) == 3
    assert collector.next_due() == 30
    assert list(collector.pop_due(100)) == [(30, ["a", "c"]), (60, ["b"])]
    assert collector.next_due() is None
