"""What the API remembers of keys: bounded in size and time, unknown keys included, emptied
when the keys' version moves; when keys were last used, written at most once a minute; the
per-key token bucket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from service.app.keys import create_key, find_key
from service.grpc.auth import KeyCache, KeyUses, TokenBuckets
from tests.fake_keys import FakeKeyStore

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cache_over(
    store: FakeKeyStore,
    ticks: Ticks,
    generation: Callable[[], int | None] | None = None,
    max_entries: int = 10_000,
) -> KeyCache:
    return KeyCache(
        lambda key: find_key(store, key),
        generation or (lambda: store.version),
        clock=ticks,
        known_seconds=60,
        unknown_seconds=5,
        max_entries=max_entries,
    )


def unknown(n: int) -> str:
    return f"pod_{n:016x}_" + "u" * 43


async def test_unknown_keys_are_remembered_but_never_more_than_the_cache_holds() -> None:
    store, ticks = FakeKeyStore(), Ticks()
    cache = cache_over(store, ticks, max_entries=3)
    for n in range(10):
        assert await cache.key(unknown(n)) is None
    assert len(cache) == 3
    assert await cache.key(unknown(9)) is None
    assert store.finds == 10


async def test_an_unknown_key_is_asked_again_after_its_short_while() -> None:
    store, ticks = FakeKeyStore(), Ticks()
    cache = cache_over(store, ticks)
    await cache.key(unknown(1))
    ticks.now = 4.9
    await cache.key(unknown(1))
    assert store.finds == 1
    ticks.now = 5.0
    await cache.key(unknown(1))
    assert store.finds == 2


async def test_a_known_key_is_asked_again_only_after_its_while_or_when_keys_change() -> None:
    store, ticks = FakeKeyStore(), Ticks()
    key = create_key(store, "acme", "ranking", NOW)
    cache = cache_over(store, ticks)
    assert await cache.key(key) is not None
    ticks.now = 59
    await cache.key(key)
    assert store.finds == 1
    create_key(store, "globex", "ranking", NOW)  # any change of keys empties the cache
    await cache.key(key)
    assert store.finds == 2
    ticks.now = 119.5
    await cache.key(key)
    assert store.finds == 3


async def test_a_revoked_key_is_seen_revoked_at_the_next_call_once_the_version_moves() -> None:
    store, ticks = FakeKeyStore(), Ticks()
    key = create_key(store, "acme", "ranking", NOW)
    cache = cache_over(store, ticks)
    found = await cache.key(key)
    assert found is not None
    store.revoke(found.key_id, NOW)
    again = await cache.key(key)
    assert again is not None
    assert not again.usable(NOW)


async def test_while_the_keys_version_cannot_be_read_every_call_asks_the_store() -> None:
    store, ticks = FakeKeyStore(), Ticks()
    key = create_key(store, "acme", "ranking", NOW)
    cache = cache_over(store, ticks, generation=lambda: None)
    for _ in range(3):
        await cache.key(key)
    assert store.finds == 3
    assert len(cache) == 0


async def test_a_string_not_shaped_like_a_key_costs_no_look_up_and_no_entry() -> None:
    store, ticks = FakeKeyStore(), Ticks()
    cache = cache_over(store, ticks)
    for garbage in ("", "key", "x" * 100_000, "pod_\x00"):
        assert await cache.key(garbage) is None
    assert (store.finds, len(cache)) == (0, 0)


async def test_concurrent_calls_with_one_key_share_one_look_up() -> None:
    store = FakeKeyStore()
    key = create_key(store, "acme", "ranking", NOW)
    release = asyncio.Event()

    async def slowly(work: Callable[[], object]) -> object:
        await release.wait()
        return work()

    cache = KeyCache(lambda k: find_key(store, k), lambda: store.version, run=slowly)  # type: ignore[arg-type]
    calls = [asyncio.ensure_future(cache.key(key)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert all(found is not None for found in await asyncio.gather(*calls))
    assert store.finds == 1


async def test_when_a_key_was_last_used_is_written_at_most_once_a_minute() -> None:
    written: list[dict[str, datetime]] = []

    def record(uses: Mapping[str, datetime]) -> None:
        written.append(dict(uses))

    uses = KeyUses(record)
    for second in range(0, 150, 1):
        uses.used("k1", NOW + timedelta(seconds=second))
        if second % 5 == 4:
            await uses.flush()
    assert [next(iter(w.values())) - NOW for w in written] == [
        timedelta(seconds=4),
        timedelta(seconds=64),
        timedelta(seconds=124),
    ]


async def test_a_failed_write_of_last_uses_is_tried_again_at_the_next_flush() -> None:
    written: list[dict[str, datetime]] = []
    failing = [True]

    def record(uses: Mapping[str, datetime]) -> None:
        if failing.pop() if failing else False:
            raise OSError("database away")
        written.append(dict(uses))

    uses = KeyUses(record)
    uses.used("k1", NOW)
    await uses.flush()
    await uses.flush()
    assert written == [{"k1": NOW}]


def test_a_key_may_burst_its_rate_then_waits_for_its_next_token() -> None:
    ticks = Ticks()
    buckets = TokenBuckets(2, clock=ticks)
    assert [buckets.take("k1"), buckets.take("k1")] == [0, 0]
    assert buckets.take("k1") == 0.5
    assert buckets.take("k2") == 0
    ticks.now = 0.5
    assert buckets.take("k1") == 0
    assert TokenBuckets(0).take("k1") == 0
