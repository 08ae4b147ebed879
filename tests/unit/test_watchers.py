"""Look-outs: whatever the number of watchers of one thing, one task looks at it, and each
watcher gets the latest change it has not had."""

from __future__ import annotations

import asyncio
import contextlib
import functools

import pytest

from service.domain.errors import TooManyWatchers
from service.grpc.watchers import Subscription, Watchers
from tests.waiting import eventually


class Watched:
    """What the look-out looks at: a value a test changes, and a wake a test rings."""

    def __init__(self) -> None:
        self.value = b"v1"
        self.looks = 0
        self.failure: Exception | None = None
        self._ring = asyncio.Event()

    async def look(self) -> tuple[bytes, bytes]:
        self.looks += 1
        if self.failure is not None:
            raise self.failure
        return self.value, b"message " + self.value

    async def wake(self) -> None:
        await self._ring.wait()
        self._ring = asyncio.Event()

    def change(self, value: bytes) -> None:
        self.value = value
        self._ring.set()


async def test_the_watchers_of_one_thing_share_one_look_out() -> None:
    watched, watchers = Watched(), Watchers()
    async with contextlib.AsyncExitStack() as stack:
        subscriptions: list[Subscription] = [
            await stack.enter_async_context(watchers.watch("top", watched.look, watched.wake))
            for _ in range(100)
        ]
        firsts = await asyncio.gather(*(s.next() for s in subscriptions))
        assert set(firsts) == {b"message v1"}
        assert watched.looks == 1
        watched.change(b"v2")
        seconds = await asyncio.gather(*(s.next() for s in subscriptions))
        assert set(seconds) == {b"message v2"}
        assert watched.looks == 2
        assert watchers.count == 100
    assert watchers.count == 0


async def test_a_look_that_sees_no_change_publishes_nothing() -> None:
    watched, watchers = Watched(), Watchers()
    async with watchers.watch("top", watched.look, watched.wake) as watching:
        assert await watching.next() == b"message v1"
        waiting = asyncio.ensure_future(watching.next())
        watched.change(b"v1")  # looked at again, the same
        await until(lambda: watched.looks == 2)
        assert not waiting.done()
        watched.change(b"v3")
        assert await asyncio.wait_for(waiting, 5) == b"message v3"


async def test_a_watcher_not_ready_gets_the_latest_change_and_skips_the_others() -> None:
    watched, watchers = Watched(), Watchers()
    async with watchers.watch("top", watched.look, watched.wake) as watching:
        assert await watching.next() == b"message v1"
        for looks, value in enumerate((b"v2", b"v3", b"v4"), start=2):
            watched.change(value)
            await until(lambda: watched.looks == looks)  # noqa: B023 (awaited at once)
        assert await watching.next() == b"message v4"


async def test_a_failing_look_ends_every_watch_with_its_failure_and_the_next_watch_looks_anew() -> (
    None
):
    watched, watchers = Watched(), Watchers()
    async with (
        watchers.watch("top", watched.look, watched.wake) as one,
        watchers.watch("top", watched.look, watched.wake) as two,
    ):
        await one.next()
        watched.failure = RuntimeError("the database is away")
        watched.change(b"v2")
        for watching in (one, two):
            with pytest.raises(RuntimeError, match="away"):
                await watching.next()
    watched.failure = None
    async with watchers.watch("top", watched.look, watched.wake) as three:
        assert await three.next() == b"message v2"


async def test_watchers_beyond_the_limit_are_refused() -> None:
    watched, watchers = Watched(), Watchers(limit=1)
    async with watchers.watch("top", watched.look, watched.wake):
        with pytest.raises(TooManyWatchers):
            async with watchers.watch("other", watched.look, watched.wake):
                pass
    async with watchers.watch("other", watched.look, watched.wake) as watching:
        assert await watching.next() == b"message v1"


until = functools.partial(eventually, within=5.0, every=0.001)
