"""Partition ownership as the consumer group hands it out.

Nothing here reads the database: a new partition is paused and left for the loop to resolve
(read its stored offset, check it against the log, seek), so a rebalance never waits on the
database nor fails with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

from consumers.consumer import Consumer, stop_consumer
from consumers.positions import Positions


class TrackAssignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """`lock` is held by the loop while a batch is applied; revocation waits for it, so a
    partition is never handed over in the middle of a batch."""

    def __init__(self, consumer: Any, positions: Positions, lock: asyncio.Lock) -> None:
        self._consumer = consumer
        self._positions = positions
        self._lock = lock
        self.joined = asyncio.Event()
        """Set once the group gave this member its first assignment (perhaps an empty one)."""

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            self._positions.revoke(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._positions.assign(assigned)
        if assigned:
            self._consumer.pause(*assigned)
        self.joined.set()


class Member:
    """A consumer group member and what follows its partitions from its first assignment on:
    their positions, and the lock a batch holds (revocation waits for it). Made and joined
    before the rest of the process is loaded, when a process joins early
    (`consumers.handover.join`); else by the loop itself."""

    def __init__(self, consumer: Consumer, created: tuple[str, ...] = ()) -> None:
        self.consumer = consumer
        self.created = created
        """Topics this process created before joining: their stored offsets, from an older log,
        are forgotten before the first batch."""
        self.positions = Positions()
        self.lock = asyncio.Lock()
        self.listener = TrackAssignments(consumer, self.positions, self.lock)
        self._starting: asyncio.Task[None] | None = None
        self._stopped = False

    def join(self, topics: list[str]) -> None:
        """Subscribe and start joining, once. The consumer's start lasts until the group
        has formed (seconds: the broker holds the join), so it runs in a task of its own,
        awaited by `started`, and the caller goes on meanwhile."""
        if self._starting is None:
            self.consumer.subscribe(topics, listener=self.listener)
            self._starting = asyncio.create_task(self.consumer.start(), name="group-join")

    async def started(self) -> None:
        """Wait for the consumer's start (raising what failed it)."""
        assert self._starting is not None, "join first"
        await asyncio.shield(self._starting)

    async def leave(self) -> None:
        """Stop the consumer, leaving the group, once (a start still going on is cut)."""
        if self._starting is None or self._stopped:
            return
        self._stopped = True
        if not self._starting.done():
            self._starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._starting
        await stop_consumer(self.consumer)
