"""Partition ownership as the consumer group hands it out.

Nothing here reads the database: a new partition is paused and left for the loop to resolve
(read its stored offset, check it against the log, seek), so a rebalance never waits on the
database nor fails with it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

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
