"""The one consumer loop for every topic: getmany -> decode -> apply -> commit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

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
        family_of.get(record.topic, ""), record.value, record.headers, record.arrived_at
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
        try:
            while not stop.is_set():
                batch = await consumer.getmany(
                    timeout_ms=POLL_MS, max_records=self._settings.batch_max_records
                )
                async with self._lock:
                    if batch:
                        await self._apply(consumer, listener, batch)
                    self._check_caught_up(listener)
        finally:
            await consumer.stop()

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
        fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    ) -> None:
        owned = {tp: msgs for tp, msgs in fetched.items() if tp in listener.positions and msgs}
        if not owned:
            return
        moves = {
            (tp.topic, tp.partition): (listener.positions[tp], msgs[-1].offset + 1)
            for tp, msgs in owned.items()
        }
        records = [to_record(m) for msgs in owned.values() for m in msgs]
        started = time.perf_counter()
        try:
            applied = await asyncio.to_thread(self._apply_records, records, moves)
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
        self._count(records, applied, time.perf_counter() - started)
        await self._commit_to_kafka(consumer, moves)

    def _apply_records(
        self, records: list[Record], moves: dict[tuple[str, int], tuple[int | None, int]]
    ) -> Applied:
        received, dead = split(records, self._family_of)
        return apply_batch(
            lambda: SqlUnitOfWork(self._engine),
            Batch(received=received, dead=dead, offsets=moves),
            rules=self._rules,
            consumer_group=self._settings.consumer_group,
            now=self._clock.now(),
        )

    def _count(self, records: list[Record], applied: Applied, seconds: float) -> None:
        self._metrics.batch_seconds.observe(seconds)
        dead_by_topic: dict[str, int] = {}
        for letter in applied.dead_lettered:
            dead_by_topic[letter.record.topic] = dead_by_topic.get(letter.record.topic, 0) + 1
        for topic, count in dead_by_topic.items():
            self._metrics.events_dead_lettered.labels(topic).inc(count)
        by_topic: dict[str, int] = {}
        for record in records:
            by_topic[record.topic] = by_topic.get(record.topic, 0) + 1
        for topic, count in by_topic.items():
            self._metrics.events_folded.labels(topic).inc(count - dead_by_topic.get(topic, 0))
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
