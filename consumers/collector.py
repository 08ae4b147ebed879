"""The cyclic garbage collector while batches are folded: once per batch, not every N
allocations.

A batch allocates a few hundred thousand objects (the records, their events, the fold's
rows) that live until the batch is done and hold no cycles: reference counting frees them.
Collected automatically, the collector ran every `GC_THRESHOLDS[0]` allocations in the middle
of a batch, found those objects alive, traversed them and carried them into the older
generations to traverse them again (2.6-3.6 us of a JSON trip's 31-34 us of CPU,
bench/RESULTS.md). While a batch is in hand automatic collection is off; once the batch is
let go the youngest generation is collected (little is left in it), and the older ones on
CPython's own schedule (`gc.get_threshold()`'s counts). When nothing is in hand, or a batch waits
for the database to come back (`consumers.applier`), automatic collection is back on, so
whatever else the process does (the API) is collected as before; garbage made meanwhile waits
at most one batch."""

from __future__ import annotations

import gc


class BatchCollector:
    def __init__(self) -> None:
        self._paused = False

    def pause(self) -> None:
        """A batch is in hand: no automatic collection until `resume` (if it was on)."""
        if not self._paused and gc.isenabled():
            gc.disable()
            self._paused = True

    def batch_done(self) -> None:
        """A batch was let go: collect the young generation; every `middle` of those, the
        middle one too, and every `old` of those, all of them (`gc.get_threshold()`)."""
        if not self._paused:
            return
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
