"""Partition ownership as the consumer group hands it out.

Nothing here reads the database: a new partition is paused and left for the loop to resolve
(read its stored offset, check it against the log, seek), so a rebalance never waits on the
database nor fails with it.
"""

from __future__ import annotations

import asyncio
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
        self._started = False
        self._stopped = False

    async def join(self, topics: list[str]) -> None:
        """Subscribe and start (the join goes on in the background), once."""
        if not self._started:
            self._started = True
            self.consumer.subscribe(topics, listener=self.listener)
            await self.consumer.start()

    async def leave(self) -> None:
        """Stop the consumer, leaving the group, once."""
        if self._started and not self._stopped:
            self._stopped = True
            await stop_consumer(self.consumer)
