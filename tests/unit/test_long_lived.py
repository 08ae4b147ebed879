"""What lives long is frozen out of the collector's sight, and everything is collected in full
now and then, so a cycle frozen while alive is not kept for ever."""

from __future__ import annotations

import gc
import weakref

from service.bootstrap import LongLived


class Node:
    def __init__(self) -> None:
        self.links = [self]


def test_a_frozen_cycle_become_garbage_is_collected_at_the_next_renewal() -> None:
    now = [0.0]
    long_lived = LongLived(renew_seconds=10.0, clock=lambda: now[0])
    try:
        node = Node()
        gone = weakref.ref(node)
        long_lived()  # frozen while alive
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert gone() is not None  # out of the collector's sight
        now[0] += 10.0
        long_lived()
        assert gone() is None
    finally:
        gc.unfreeze()
