"""Watchers: streams that get a message whenever what they watch changes.

Whatever their number, the watchers of one thing (a board's top) share one look-out: a task
that looks at it whenever the state's versions move (or every `RECHECK_SECONDS`, for what
time alone changes, like a month's turn) and publishes what it sees when it differs from what
it saw last. A thousand watchers of a board then cost what one does, in database reads and in
CPU alike; each watcher takes the latest publication when it is ready for one, so a slow one
skips intermediate states rather than queueing them.

A watcher holds its stream open for as long as it likes, so watchers are not counted among
the calls running at once (`PODIUM_MAX_CONCURRENT_CALLS`) but against a limit of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from datetime import timedelta

from service.domain.errors import TooManyWatchers

log = logging.getLogger(__name__)

MAX_WATCHERS = 10_000

RETRY_WHEN_FULL = timedelta(seconds=5)
"""The `RetryInfo` of `too_many_watchers`: watchers leave seldom, so retry later, not soon."""

RECHECK_SECONDS = 0.05
"""How long a look-out waits at most before looking again when the versions did not move: an
answer cached just before the last change may still be served for a moment (the answers'
fresh-enough window), and a month turns over with no event."""

Look = Callable[[], Awaitable[tuple[bytes, bytes]]]
"""What a look-out does: what it sees, as (what changes count in, the message to send)."""

Wake = Callable[[], Awaitable[None]]
"""Returns when it is worth looking again."""


class Watchers:
    def __init__(self, limit: int = MAX_WATCHERS) -> None:
        self.limit = limit
        self.count = 0
        self._lookouts: dict[Hashable, LookOut] = {}

    @contextlib.asynccontextmanager
    async def watch(self, key: Hashable, look: Look, wake: Wake) -> AsyncIterator[Subscription]:
        """Watch what `key` names, looked at by `look` (the first watcher's `look` and `wake`
        serve all of them); `TooManyWatchers` when this instance streams to its limit."""
        if self.count >= self.limit:
            raise TooManyWatchers(RETRY_WHEN_FULL)
        lookout = self._lookouts.get(key)
        if lookout is None or lookout.done:
            lookout = self._lookouts[key] = LookOut(look, wake)
        self.count += 1
        lookout.watchers += 1
        try:
            yield Subscription(lookout)
        finally:
            self.count -= 1
            lookout.watchers -= 1
            if lookout.watchers == 0:
                await lookout.close()
                if self._lookouts.get(key) is lookout:
                    del self._lookouts[key]


class LookOut:
    """One task looking at one thing for all its watchers."""

    def __init__(self, look: Look, wake: Wake) -> None:
        self._look = look
        self._wake = wake
        self.watchers = 0
        self.seen: bytes | None = None
        self.message = b""
        self.error: BaseException | None = None
        self._published = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="watch-lookout")

    @property
    def done(self) -> bool:
        return self._task.done()

    async def next_publication(self) -> None:
        """Return once something new is published (or the look-out failed)."""
        await self._published.wait()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        try:
            while True:
                seen, message = await self._look()
                if seen != self.seen:
                    self.seen, self.message = seen, message
                    self._publish()
                await self._wake()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the watchers' streams end with it
            self.error = error
            self._publish()

    def _publish(self) -> None:
        self._published.set()
        self._published = asyncio.Event()


class Subscription:
    """One watcher's view of a look-out: the latest publication it has not had yet."""

    def __init__(self, lookout: LookOut) -> None:
        self._lookout = lookout
        self._last: bytes | None = None

    async def next(self) -> bytes:
        """The next message whose content differs from the last one this watcher had; the
        look-out's failure, if it failed."""
        lookout = self._lookout
        while True:
            if lookout.error is not None:
                raise lookout.error
            if lookout.seen is not None and lookout.seen != self._last:
                self._last = lookout.seen
                return lookout.message
            await lookout.next_publication()


async def moved_or_after(moved: Awaitable[None], seconds: float = RECHECK_SECONDS) -> None:
    """Wait for `moved`, `seconds` at most."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(moved, seconds)
