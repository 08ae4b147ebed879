"""Ingest: trip events a second from Kafka to committed state, beside a bare aiokafka consumer
reading the same topic in the same run (the ceiling)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from sqlalchemy import Engine

from service.adapters.database import create_writer_engine
from service.bootstrap import Storage, consumer_loop
from service.clock import SystemClock
from service.config import Settings
from service.metrics import Metrics


@dataclass(frozen=True)
class Rate:
    records: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else float("nan")


def bench_settings(servers: str, database_url: str, prefix: str, partitions: int = 6) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": servers,
            "PODIUM_TOPIC_PREFIX": prefix,
            "PODIUM_CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:6]}",
            "PODIUM_TOPIC_PARTITIONS": str(partitions),
            "PODIUM_GRPC_ADDRESS": "127.0.0.1:0",
            # One key measures thousands of calls a second: the per-key rate is lifted.
            "PODIUM_RATE_LIMIT_PER_KEY": "0",
        }
    )


async def bare_consumer_rate(servers: str, topic: str, expected: int) -> Rate:
    """Read every record of the topic and do nothing with it: the broker-and-client ceiling.
    Timed from the first record to the last, so the group join is left out."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=f"bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen, first_batch, first = 0, 0, 0.0
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            got = sum(len(records) for records in batch.values())
            if got and not first:
                first, first_batch = time.perf_counter(), got  # the first batch opens the clock
            seen += got
        return Rate(expected - first_batch, time.perf_counter() - first)
    finally:
        await consumer.stop()


def lag_of(metrics: Metrics, topic: str) -> float:
    """The consumer lag of `topic` summed over its partitions: above 0 once fetched from."""
    return sum(
        sample.value
        for family in metrics.consumer_lag.collect()
        for sample in family.samples
        if sample.labels.get("topic") == topic
    )


async def podium_ingest_rate(
    settings: Settings, engine: Engine, expected: int, family: str = "trips"
) -> Rate:
    """Fold every record through Podium's consumer loop into the database, timed from the
    first records fetched (the topic's consumer lag first above 0) to the last folded, every
    record counted. Timed from the first committed batch instead, the window would leave out
    that batch and the decoding of the next one, done meanwhile (`consumers.runner`): most of
    a short run's decoding (bench/RESULTS.md, issue 26's growth at full size)."""
    metrics = Metrics()
    storage = Storage(engine, create_writer_engine(settings.database_url))
    loop = consumer_loop(settings, storage, SystemClock(), metrics)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    topic = settings.topic(family)
    folded = metrics.events_folded.labels(topic)
    try:
        first = 0.0
        while folded._value.get() < expected:
            if task.done():
                task.result()
            if not first and (folded._value.get() or lag_of(metrics, topic)):
                first = time.perf_counter()
            await asyncio.sleep(0.005)
        return Rate(expected, time.perf_counter() - first)
    finally:
        stop.set()
        await task
        if storage.writer is not None:
            storage.writer.dispose()
