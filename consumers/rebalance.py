"""Partition ownership: on assignment, resume from the offsets stored with the state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

Positions = dict[TopicPartition, int | None]
"""Per owned partition, the next offset as stored in the database (None: never stored)."""


class ResumeFromDatabase(ConsumerRebalanceListener):  # type: ignore[misc]
    """Seeks every assigned partition to the offset committed with the state.

    `lock` is held by the loop while a batch is applied; revocation waits for it, so a
    partition is never handed over in the middle of a batch.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        load_offsets: Callable[[list[TopicPartition]], dict[TopicPartition, int]],
        lock: asyncio.Lock,
        on_assigned: Callable[[list[TopicPartition]], Any] | None = None,
    ) -> None:
        self._consumer = consumer
        self._load = load_offsets
        self._lock = lock
        self._on_assigned = on_assigned
        self.positions: Positions = {}

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            for partition in revoked:
                self.positions.pop(partition, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self._lock:
            await self.resume(list(assigned))
        if self._on_assigned is not None:
            await self._on_assigned(list(assigned))

    async def resume(self, partitions: list[TopicPartition]) -> None:
        """Seek to the stored offsets (also after a batch was rolled back)."""
        stored = await asyncio.to_thread(self._load, partitions)
        for partition in partitions:
            offset = stored.get(partition)
            self.positions[partition] = offset
            if offset is None:
                await self._consumer.seek_to_beginning(partition)
            else:
                self._consumer.seek(partition, offset)
