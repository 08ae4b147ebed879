"""Where the loop reads from: each partition sought to its stored offset, fetched from, and
stopped when the log cannot be followed.

- **Nothing is lost.** A partition never stored starts at the log's start; an offset outside
  the log stops its partition with an alarm instead of skipping.
- An operator may move a stored offset (`podium offsets reset`): the owned partitions are
  looked at again every few seconds, a stalled one included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors

from consumers.backoff import Backoff, DatabaseWatch
from consumers.consumer import Consumer
from consumers.positions import Positions, Status
from consumers.reporter import Reporter
from consumers.runs import Fetched
from service.app.ports import StorageUnavailable
from service.logs import describe

log = logging.getLogger(__name__)

POLL_MS = 200
RECHECK_SECONDS = 5.0
"""How often the stored offsets of owned partitions are read again: an operator may have moved
one (a stalled partition, or a replay from the start)."""
UNREADABLE_PAUSE_SECONDS = 1.0

LoadOffsets = Callable[[list[TopicPartition]], dict[TopicPartition, int]]
"""The stored next offsets of these partitions (absent: never stored)."""


class Fetcher:
    def __init__(
        self,
        consumer: Consumer,
        positions: Positions,
        load_offsets: LoadOffsets,
        reporter: Reporter,
        database: DatabaseWatch,
        *,
        max_records: int,
        first_backoff: float,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self._consumer = consumer
        self._positions = positions
        self._load_offsets = load_offsets
        self._reporter = reporter
        self._database = database
        self._max_records = max_records
        self._recheck_seconds = recheck_seconds
        self._resolve_backoff = Backoff(first_backoff)
        self._resolve_after = 0.0
        self._recheck_at = 0.0

    # --- seeking -----------------------------------------------------------------------------

    async def resolve(self) -> None:
        """Seek newly assigned partitions to their stored offsets, after checking those are
        inside the log; every few seconds, look again at the owned ones whose stored offset
        an operator may have moved (`podium offsets reset`), a stalled one included."""
        now = time.monotonic()
        if now < self._resolve_after:
            return
        unresolved = self._positions.with_status(Status.UNRESOLVED)
        settled: list[TopicPartition] = []
        if now >= self._recheck_at:
            self._recheck_at = now + self._recheck_seconds
            settled = self._positions.with_status(Status.READY)
            settled += self._positions.with_status(Status.STALLED)
        if not unresolved and not settled:
            return
        log.debug("resolving %s and rechecking %s", unresolved, settled)
        try:
            stored = await self._database(
                asyncio.to_thread(self._load_offsets, unresolved + settled)
            )
            moved = [p for p in settled if self._moved_by_operator(p, stored.get(p))]
            todo = unresolved + moved
            starts = await self._consumer.beginning_offsets(todo) if todo else {}
        except (StorageUnavailable, kafka_errors.KafkaError) as error:
            delay = self._resolve_backoff.next()
            log.warning(
                "cannot resolve partitions yet (%s); again in %.1f s", describe(error), delay
            )
            self._resolve_after = now + delay
            return
        self._resolve_backoff.reset()
        for partition in moved:
            log.warning("%s[%d] was moved to %s by an operator", *partition, stored.get(partition))
        for partition in todo:
            self._place(partition, stored.get(partition), starts[partition])

    def _moved_by_operator(self, partition: TopicPartition, stored: int | None) -> bool:
        """The stored offset is not where this loop left it (a batch in hand would find out
        by itself: its commit is fenced)."""
        if partition not in self._positions:
            return False
        position = self._positions[partition]
        if position.status is Status.READY and position.in_hand:
            return False
        return stored != position.stored

    def _place(self, partition: TopicPartition, stored: int | None, start: int) -> None:
        """Seek to the stored offset, unless it is below the log's start (records deleted
        before they were folded). One past the log's end is found by the first fetch, from
        its high watermark (`_measure`): brokers do not all report the end right otherwise."""
        if partition not in self._positions:
            return  # revoked meanwhile
        if stored is not None and stored < start:
            self.stall(
                partition, stored, f"stored offset {stored} is before the log's start {start}"
            )
            return
        fetch_from = start if stored is None else stored
        self._consumer.seek(partition, fetch_from)
        self._positions.resolve(partition, stored, fetch_from)
        self._consumer.resume(partition)
        self._reporter.resumed(partition)

    def stall(self, partition: TopicPartition, stored: int | None, why: str) -> None:
        """Stop the partition at `stored` until an operator moves it."""
        log.error(
            "partition %s[%d] stopped: %s (stored offset %s). Nothing of it is folded until an "
            "operator moves it: podium offsets show / podium offsets reset",
            partition.topic,
            partition.partition,
            why,
            stored,
        )
        self._positions.stall(partition, why, stored)
        self._consumer.pause(partition)

    # --- fetching ----------------------------------------------------------------------------

    async def fetch(self) -> list[Fetched]:
        """The records fetched since the last call from the partitions ready for them."""
        try:
            batch = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=self._max_records)
        except kafka_errors.OffsetOutOfRangeError as error:
            await self._out_of_range(list(error.args[0]) if error.args else [])
            return []
        except kafka_errors.NoOffsetForPartitionError:
            return []  # a new partition not sought yet: `resolve` seeks it
        except kafka_errors.KafkaError as error:
            await self._unreadable(error)
            return []
        fetched = []
        for partition, messages in batch.items():
            if partition not in self._positions or self._positions[partition].status is not (
                Status.READY
            ):
                continue  # revoked, stalled or not resolved since: fetched anew once it is
            position = self._positions[partition]
            # In offset order: if the first is fresh, all are (no pass over the records).
            fresh = (
                messages
                if messages and messages[0].offset >= position.fetched
                else [m for m in messages if m.offset >= position.fetched]
            )
            if fresh:
                fetched.append(Fetched(partition, position.epoch, fresh))
                self._positions.fetched_to(partition, fresh[-1].offset + 1)
        await self._measure(batch)
        return fetched

    async def _measure(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """From each partition's high watermark: the lag, the first catch-up's target, and
        whether the partition stands past the log's end (a log that restarted or was
        re-created: skipping to where new records reach the old offset would lose them). A
        partition whose log moved on without records for us (transaction markers,
        compaction) counts as consumed that far."""
        for partition in self._positions.with_status(Status.READY):
            position = self._positions[partition]
            highwater = self._consumer.highwater(partition)
            if highwater is None:
                continue
            if not position.in_hand and position.fetched > highwater:
                self.stall(
                    partition,
                    position.stored,
                    f"offset {position.fetched} is past the log's end {highwater}",
                )
                continue
            if not position.in_hand and partition not in batch and highwater > position.consumed:
                self._positions.skipped_to(partition, await self._consumer.position(partition))
            consumed = self._positions[partition].consumed
            self._reporter.measured(partition, highwater, max(highwater - consumed, 0))

    async def _out_of_range(self, partitions: list[TopicPartition]) -> None:
        mine = [p for p in partitions if p in self._positions]
        if not mine:
            return
        try:
            starts = await self._consumer.beginning_offsets(mine)
            ends = await self._consumer.end_offsets(mine)
        except kafka_errors.KafkaError:
            starts, ends = {}, {}
        for partition in mine:
            position = self._positions[partition]
            span = f"[{starts.get(partition, '?')}, {ends.get(partition, '?')}]"
            self.stall(
                partition,
                position.stored,
                f"offset {position.fetched} is no longer in the log {span} "
                "(retention, or a re-created topic)",
            )

    async def _unreadable(self, error: kafka_errors.KafkaError) -> None:
        """A fetch failed on records the client cannot read (corrupt, an unknown codec, too
        large): find the partition by asking each alone, stall it, and fetch the others again
        from where the loop stands (the failed call may have dropped records it had read)."""
        log.warning("fetch failed: %s", describe(error))
        for partition in self._positions.with_status(Status.READY):
            try:
                await self._consumer.getmany(partition, timeout_ms=0)
            except kafka_errors.KafkaError as again:
                position = self._positions[partition]
                self.stall(
                    partition,
                    position.stored,
                    f"records at offset {position.fetched} cannot be read: {describe(again)}",
                )
        for partition in self._positions.with_status(Status.READY):
            self._consumer.seek(partition, self._positions[partition].fetched)
        await asyncio.sleep(UNREADABLE_PAUSE_SECONDS)
