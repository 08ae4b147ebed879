"""How many watchers an instance streams to at once. A watcher holds its stream open for as
long as it likes, so watchers are not counted among the calls running at once
(`PODIUM_MAX_CONCURRENT_CALLS`) but against a limit of their own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta

from service.domain.errors import TooManyWatchers

MAX_WATCHERS = 10_000

RETRY_WHEN_FULL = timedelta(seconds=5)
"""The `RetryInfo` of `too_many_watchers`: watchers leave seldom, so retry later, not soon."""


class Watchers:
    def __init__(self, limit: int = MAX_WATCHERS) -> None:
        self.limit = limit
        self.count = 0

    @contextlib.contextmanager
    def joined(self) -> Iterator[None]:
        """One more watcher for as long as the block runs; `TooManyWatchers` when full."""
        if self.count >= self.limit:
            raise TooManyWatchers(RETRY_WHEN_FULL)
        self.count += 1
        try:
            yield
        finally:
            self.count -= 1
