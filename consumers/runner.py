"""The one consumer loop for every topic: getmany -> decode -> apply -> commit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from sqlalchemy import Engine

from consumers.decode import decode
from consumers.rebalance import ResumeFromDatabase
from service.adapters.stores.operations import OffsetMoved, OffsetStore
from service.adapters.unit_of_work import SqlUnitOfWork
from service.app.ingest import Applied, Batch, apply_batch
from service.app.records import FAMILIES, DeadLetter, Received, Record, Rejected
from service.clock import Clock
from service.config import Settings
from service.domain.rules import Rules
from service.metrics import Metrics

log = logging.getLogger(__name__)

POLL_MS = 200
RETRY_SECONDS = 1.0


def to_record(message: ConsumerRecord[bytes, bytes]) -> Record:
    headers = tuple((name, bytes(value)) for name, value in message.headers or ())
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=message.timestamp,
        key=message.key,
        value=message.value or b"",
        headers=headers,
    )


def decode_record(record: Record, family_of: dict[str, str]) -> Received | DeadLetter:
    decoded = decode(
        family_of.get(record.topic, ""), record.value, record.headers, record.timestamp_ms
    )
    if isinstance(decoded, Rejected):
        return DeadLetter(record, decoded)
    return Received(decoded, record)


def split(
    records: list[Record], family_of: dict[str, str]
) -> tuple[list[Received], list[DeadLetter]]:
    received: list[Received] = []
    dead: list[DeadLetter] = []
    for record in records:
        outcome = decode_record(record, family_of)
        if isinstance(outcome, DeadLetter):
            dead.append(outcome)
        else:
            received.append(outcome)
    return received, dead


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop the consumer (leaving its group), whatever its fetcher was doing.

    aiokafka 0.14's `Fetcher.close` cancels its pending fetches and awaits them; one that is
    sleeping in its retry back-off after a failed fetch re-raises the CancelledError, and
    `stop()` then skips closing the client. Only a cancellation of our own task is passed on.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        log.warning("a failed fetch was retrying as the consumer stopped; closing its client")
        await consumer._client.close()  # what stop() would have done next


Fetched = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


@dataclass(frozen=True, slots=True)
class Run:
    """A partition's fetched records, decoded: where they start and the offset after them."""

    first_offset: int
    next_offset: int
    received: list[Received]
    dead: list[DeadLetter]

    def continues(self, position: int | None) -> bool:
        """Whether the run starts where the partition's state stands (a partition never
        stored starts wherever the log does)."""
        return position is None or self.first_offset == position


def decode_run(messages: list[ConsumerRecord[bytes, bytes]], family_of: dict[str, str]) -> Run:
    received, dead = split([to_record(m) for m in messages], family_of)
    return Run(messages[0].offset, messages[-1].offset + 1, received, dead)


class ConsumerLoop:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        rules: Rules,
        clock: Clock,
        metrics: Metrics,
        on_caught_up: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._rules = rules
        self._clock = clock
        self._metrics = metrics
        self._on_caught_up = on_caught_up
        self._family_of = {settings.topic(f): f for f in FAMILIES}
        self._lock = asyncio.Lock()
        self._catch_up_targets: dict[TopicPartition, int] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.caught_up = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is applied before returning."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self._settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._consumer = consumer
        listener = ResumeFromDatabase(consumer, self._load_offsets, self._lock, self._assigned)
        consumer.subscribe(list(self._family_of), listener=listener)
        await consumer.start()
        applying: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                fetched = await consumer.getmany(
                    timeout_ms=POLL_MS, max_records=self._settings.batch_max_records
                )
                # Decoding is pure, so it runs while the previous batch is still being applied
                # (on PostgreSQL that batch mostly waits on the server, with the GIL free).
                decoded = await asyncio.to_thread(self._decode, fetched)
                if applying is not None:
                    await applying
                applying = asyncio.create_task(self._apply_in_turn(consumer, listener, decoded))
        finally:
            if applying is not None:
                await applying
            await stop_consumer(consumer)

    def _decode(self, fetched: Fetched) -> dict[TopicPartition, Run]:
        return {tp: decode_run(msgs, self._family_of) for tp, msgs in fetched.items() if msgs}

    async def _apply_in_turn(
        self,
        consumer: AIOKafkaConsumer,
        listener: ResumeFromDatabase,
        decoded: dict[TopicPartition, Run],
    ) -> None:
        async with self._lock:
            if decoded:
                await self._apply(consumer, listener, decoded)
            self._check_caught_up(listener)

    def _load_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        with self._engine.connect() as connection:
            stored = OffsetStore(connection).load(
                self._settings.consumer_group, ((p.topic, p.partition) for p in partitions)
            )
        return {TopicPartition(t, p): o for (t, p), o in stored.items()}

    async def _assigned(self, partitions: list[TopicPartition]) -> None:
        """The first assignment fixes what "caught up" means: the high watermarks now."""
        if self._catch_up_targets is None and self._consumer is not None:
            ends = await self._consumer.end_offsets(partitions) if partitions else {}
            self._catch_up_targets = dict(ends)

    async def _apply(
        self,
        consumer: AIOKafkaConsumer,
        listener: ResumeFromDatabase,
        decoded: dict[TopicPartition, Run],
    ) -> None:
        owned = {tp: run for tp, run in decoded.items() if tp in listener.positions}
        stale = [tp for tp, run in owned.items() if not run.continues(listener.positions[tp])]
        if stale:  # fetched before the partition was rewound (a failed or discarded batch)
            await listener.resume(stale)
        owned = {tp: run for tp, run in owned.items() if tp not in stale}
        if not owned:
            return
        moves = {
            (tp.topic, tp.partition): (listener.positions[tp], run.next_offset)
            for tp, run in owned.items()
        }
        received = [r for run in owned.values() for r in run.received]
        dead = [d for run in owned.values() for d in run.dead]
        started = time.perf_counter()
        try:
            applied = await asyncio.to_thread(self._apply_records, received, dead, moves)
        except OffsetMoved as moved:
            log.warning("batch discarded, partition moved: %s", moved)
            await listener.resume(list(owned))
            return
        except Exception:
            log.exception("batch failed; retrying from the stored offsets")
            await asyncio.sleep(RETRY_SECONDS)
            await listener.resume(list(owned))
            return
        for tp, (_, next_offset) in moves.items():
            listener.positions[TopicPartition(*tp)] = next_offset
        self._count(received, dead, applied, time.perf_counter() - started)
        await self._commit_to_kafka(consumer, moves)

    def _apply_records(
        self,
        received: list[Received],
        dead: list[DeadLetter],
        moves: dict[tuple[str, int], tuple[int | None, int]],
    ) -> Applied:
        return apply_batch(
            lambda: SqlUnitOfWork(self._engine),
            Batch(received=received, dead=dead, offsets=moves),
            rules=self._rules,
            consumer_group=self._settings.consumer_group,
            now=self._clock.now(),
        )

    def _count(
        self, received: list[Received], dead: list[DeadLetter], applied: Applied, seconds: float
    ) -> None:
        self._metrics.batch_seconds.observe(seconds)
        dead_by_topic: Counter[str] = Counter(d.record.topic for d in applied.dead_lettered)
        for topic, count in dead_by_topic.items():
            self._metrics.events_dead_lettered.labels(topic).inc(count)
        by_topic = Counter([r.record.topic for r in received] + [d.record.topic for d in dead])
        for topic, count in by_topic.items():
            self._metrics.events_folded.labels(topic).inc(count - dead_by_topic[topic])
        for ignored in applied.ignored:
            self._metrics.events_ignored.labels(ignored.kind).inc()

    async def _commit_to_kafka(
        self, consumer: AIOKafkaConsumer, moves: dict[tuple[str, int], tuple[int | None, int]]
    ) -> None:
        """Mirror the offsets to Kafka so the usual lag tools see them. The database copy is
        the one Podium resumes from, so a failure here loses nothing."""
        try:
            await consumer.commit({TopicPartition(*tp): nxt for tp, (_, nxt) in moves.items()})
        except Exception as error:  # a rebalance in progress, typically
            log.debug("offsets not mirrored to Kafka: %s", error)

    def _check_caught_up(self, listener: ResumeFromDatabase) -> None:
        targets = self._catch_up_targets
        if self.caught_up.is_set() or targets is None:
            return
        owned = {tp: end for tp, end in targets.items() if tp in listener.positions}
        if all((listener.positions[tp] or 0) >= end for tp, end in owned.items()):
            self.caught_up.set()
            self._on_caught_up()
