"""An in-memory stand-in for aiokafka's consumer, for unit tests of the consumer loop.

It keeps a log per partition, positions, pauses and the group's assignment, and calls the
rebalance listener as the real group would. Integration tests never use it: they run the real
broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.structs import ConsumerRecord

from tests.builders import consumer_record


class FakeConsumer:
    def __init__(self, partitions: Iterable[TopicPartition]) -> None:
        self.logs: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {
            p: [] for p in partitions
        }
        self.log_start: dict[TopicPartition, int] = dict.fromkeys(self.logs, 0)
        self.assigned: list[TopicPartition] = []
        self.paused: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.broken: dict[TopicPartition, Exception] = {}
        """Partitions whose next fetch raises (records the client cannot read)."""
        self.listener: Any = None
        self.polls = 0
        """How many times getmany was called: a test can wait for the loop to poll again."""
        self.started = asyncio.Event()
        self.stopped = False

    # --- what the test does ---------------------------------------------------------------

    def append(self, partition: TopicPartition, value: bytes, *, timestamp_ms: int) -> int:
        log = self.logs[partition]
        offset = log[-1].offset + 1 if log else self.log_start[partition]
        log.append(consumer_record(partition, offset, value, timestamp_ms=timestamp_ms))
        return offset

    def end(self, partition: TopicPartition) -> int:
        log = self.logs[partition]
        return log[-1].offset + 1 if log else self.log_start[partition]

    def retain_from(self, partition: TopicPartition, offset: int) -> None:
        """Retention: records before `offset` are gone."""
        self.logs[partition] = [r for r in self.logs[partition] if r.offset >= offset]
        self.log_start[partition] = offset

    async def rebalance(
        self, *, revoke: Iterable[TopicPartition] = (), assign: Iterable[TopicPartition] = ()
    ) -> None:
        revoked, added = list(revoke), list(assign)
        if revoked:
            await self.listener.on_partitions_revoked(revoked)
            self.assigned = [p for p in self.assigned if p not in revoked]
            for partition in revoked:
                self.positions.pop(partition, None)
                self.paused.discard(partition)
        self.assigned += added
        await self.listener.on_partitions_assigned(added)

    # --- the consumer's API ----------------------------------------------------------------

    def subscribe(self, topics: list[str], *, listener: Any) -> None:
        self.listener = listener

    async def start(self) -> None:
        await self.rebalance(assign=sorted(self.logs))
        self.started.set()

    async def stop(self) -> None:
        self.stopped = True

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        self.polls += 1
        await asyncio.sleep(0)
        chosen = list(partitions) or list(self.assigned)
        fetchable = [p for p in chosen if p not in self.paused and p in self.positions]
        for partition in fetchable:
            if partition in self.broken:
                raise self.broken[partition]
            if self.positions[partition] < self.log_start[partition]:
                raise kafka_errors.OffsetOutOfRangeError({partition: self.positions[partition]})
        out: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        budget = max_records if max_records is not None else 10**9
        for partition in fetchable:
            position = self.positions[partition]
            ready = [r for r in self.logs[partition] if r.offset >= position][:budget]
            if ready:
                out[partition] = ready
                budget -= len(ready)
                self.positions[partition] = ready[-1].offset + 1
        if not out and timeout_ms:
            await asyncio.sleep(min(timeout_ms, 20) / 1000)
        return out

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition] = offset

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.end(partition) if partition in self.positions else None

    async def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return {p: self.log_start[p] for p in partitions}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {p: self.end(p) for p in partitions}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)
