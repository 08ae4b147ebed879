"""Lock buckets and shard stamps (`service.app.shards`): a key's bucket is the partition
Kafka's default partitioner gives it, and the locks a batch takes follow what it folds."""

from __future__ import annotations

import zlib

from aiokafka.partitioner import DefaultPartitioner, murmur2

from service.app.shards import Buckets, Locks, bucket, locks_of, shard_range, stamp
from service.app.shards import murmur2 as our_murmur2
from tests.builders import trip, user

KEYS = ["", "a", "ab", "abc", "abcd", "u-ann", "u-bob", "6753030831fe9826412bac5c", "é-ü", "x" * 99]


def test_murmur2_is_kafkas() -> None:
    assert [our_murmur2(k.encode()) for k in KEYS] == [murmur2(k.encode()) for k in KEYS]


def test_a_keys_bucket_is_the_partition_kafkas_default_partitioner_gives_it() -> None:
    for partitions in (1, 3, 4, 12):
        every = list(range(partitions))
        for key in KEYS:
            expected = DefaultPartitioner()(key.encode(), every, every)
            assert bucket(key, partitions) == expected


def test_a_batch_holds_its_tenant_exclusively_only_with_catalog_events() -> None:
    events = [
        trip("t1", "ann"),
        trip("t2", "bob"),
        trip("t3", "ann", tenant="beta"),
        user("cid", tenant="beta"),
    ]
    four = Buckets(4)
    assert locks_of(events, four) == Locks({"beta"}, {"acme": {four.of("ann"), four.of("bob")}})
    assert locks_of(events[:1], Buckets(1)) == Locks(set(), {"acme": {0}})


def test_librdkafkas_partitioner_puts_a_key_by_its_crc32() -> None:
    """librdkafka's `consistent_random`: crc32 of the key modulo the partitions."""
    assert bucket("u-ann", 7, "crc32") == zlib.crc32(b"u-ann") % 7
    assert Buckets(7, "crc32").of("u-ann") == zlib.crc32(b"u-ann") % 7
    assert Buckets.parse(str(Buckets(7, "crc32"))) == Buckets(7, "crc32")
    assert Buckets.parse("6") == Buckets(6, "murmur2")


def test_each_shard_has_its_own_range_of_stamps() -> None:
    low, high = shard_range(2, 5)
    assert low < stamp(2, 6) < high
    assert not low < stamp(2, 5) < high
    assert not low < stamp(3, 0) < high
    assert not low < stamp(1, 10**9) < high


def test_a_batch_finds_each_keys_bucket_once() -> None:
    """However many of a user's events a batch holds, their bucket is looked up once."""
    asked: list[str] = []

    class Counted(Buckets):
        def of(self, key: str) -> int:
            asked.append(key)
            return super().of(key)

    events = [trip(f"t{n}", "ann" if n % 3 else "bob") for n in range(30)]
    assert locks_of(events, Counted(4)) == Locks(
        set(), {"acme": {bucket(u, 4) for u in ("ann", "bob")}}
    )
    assert sorted(asked) == ["ann", "bob"]


def test_the_buckets_of_a_100000_user_tenant_are_remembered() -> None:
    """murmur2 in Python costs several times a batch's other work on an event: a tenant of
    100,000 users is looked up again without computing it again."""
    bucket.cache_clear()
    users = [f"user-{n}" for n in range(100_000)]
    first = [bucket(u, 4) for u in users]
    assert [bucket(u, 4) for u in users] == first
    assert bucket.cache_info().hits == len(users)
