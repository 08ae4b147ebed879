"""The cyclic garbage collector while batches are folded: once every few seconds, not every N
allocations nor every batch.

A batch allocates a few hundred thousand objects (the records, their events, the fold's
rows) that live until the batch is done and hold no cycles: reference counting frees them.
Collected automatically, the collector ran every `GC_THRESHOLDS[0]` allocations in the middle
of a batch, found those objects alive, traversed them and carried them into the older
generations to traverse them again (2.6-3.6 us of a JSON trip's 31-34 us of CPU,
bench/RESULTS.md). While a batch is in hand automatic collection is off. Collecting the young
generation after each batch was not cheap either: the next batch is decoded while the last
one is applied, so there is always one in hand, alive in the young generation, and each such
collection traversed it (20-35 ms a batch of 20,000 JSON trips, about 1.5 us a trip) to find
some 20-50 objects of garbage (bench/RESULTS.md, issue 26). So while batches come, the young
generation is collected once every `COLLECT_SECONDS` after a batch is let go, and the older
ones on CPython's own schedule (`gc.get_threshold()`'s counts of young collections). When
nothing is in hand, or a batch waits for the database to come back (`consumers.applier`),
automatic collection is back on, so whatever else the process does (the API) is collected as
before; garbage made meanwhile waits at most `COLLECT_SECONDS` and a batch."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

COLLECT_SECONDS = 5.0
"""How long garbage with cycles may wait while batches keep coming (a few dozen objects a
batch: a few seconds of it is nothing, a collection over a batch in hand is 20-35 ms)."""


class BatchCollector:
    def __init__(
        self,
        every_seconds: float = COLLECT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paused = False
        self._every = every_seconds
        self._clock = clock
        self._collected_at = clock()

    def pause(self) -> None:
        """A batch is in hand: no automatic collection until `resume` (if it was on)."""
        if not self._paused and gc.isenabled():
            gc.disable()
            self._paused = True
            self._collected_at = self._clock()  # automatic collection ran until now

    def batch_done(self) -> None:
        """A batch was let go: if `every_seconds` passed since the last collection, collect
        the young generation; every `middle` of those, the middle one too, and every `old` of
        those, all of them (`gc.get_threshold()`)."""
        if not self._paused:
            return
        now = self._clock()
        if now - self._collected_at < self._every:
            return
        self._collected_at = now
        gc.collect(0)
        _, middle, old = gc.get_threshold()
        _, young_collections, middle_collections = gc.get_count()
        if young_collections >= middle:
            gc.collect(2 if middle_collections + 1 >= old else 1)

    def resume(self) -> None:
        """Nothing in hand: automatic collection as before `pause`."""
        if self._paused:
            gc.enable()
            self._paused = False
