"""Podium's topics: created when missing (`podium serve` does it on start); their logs' ranges."""

from __future__ import annotations

import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from consumers.connection import kafka_options
from service.app.records import FAMILIES
from service.config import Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the topics that are missing; returns their names (new, empty logs)."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [settings.topic(f) for f in FAMILIES if settings.topic(f) not in existing]
        if not missing:
            return []
        topics = [
            NewTopic(name, settings.topic_partitions, settings.topic_replication_factor)
            for name in missing
        ]
        # Another instance may have created them first.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(topics)
        log.info("created topics %s", ", ".join(missing))
        return missing
    finally:
        await admin.close()


LogRange = tuple[int, int]
"""A partition's log: its first offset and the offset after its last record."""


async def log_ranges(settings: Settings, topics: list[str]) -> dict[tuple[str, int], LogRange]:
    """Each partition's log range, for operators (`podium offsets`). The end is the larger of
    what the broker lists and the high watermark a fetch reports: some Kafka-protocol brokers
    (Tansu 0.x) list the end of a log whose last batch holds several records as one past
    that batch's first offset."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        known = await consumer.topics()
        partitions = [
            TopicPartition(topic, number)
            for topic in topics
            if topic in known
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return {}
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        marks = await _high_watermarks(
            consumer, {p: max(starts[p], ends[p] - 1) for p in partitions}
        )
        return {
            (p.topic, p.partition): (starts[p], max(ends[p], marks.get(p, 0))) for p in partitions
        }
    finally:
        await consumer.stop()


async def _high_watermarks(
    consumer: AIOKafkaConsumer, fetch_from: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Fetch once from each partition's last listed record, for the high watermarks."""
    consumer.assign(list(fetch_from))
    for partition, offset in fetch_from.items():
        consumer.seek(partition, offset)
    marks: dict[TopicPartition, int] = {}
    for _ in range(HIGH_WATERMARK_TRIES):
        await consumer.getmany(timeout_ms=500)
        marks = {p: m for p in fetch_from if (m := consumer.highwater(p)) is not None}
        if len(marks) == len(fetch_from):
            break
    return marks


HIGH_WATERMARK_TRIES = 10
