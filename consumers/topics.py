"""Podium's topics: created when missing, durable, and checked to be so (`podium serve` does
both on start); their logs' ranges.

The topics are the events' only copy that a rebuild of the state can start from (docs/events.md,
"Topics that keep every event"): a topic that deletes old records (finite retention) or keeps
only the newest of each key (compaction) makes a rebuild lose events without a word.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from consumers.connection import kafka_options
from consumers.topic_configs import DURABLE, SettingCheck, check_settings
from service.app.records import FAMILIES
from service.config import Settings
from service.logs import describe
from service.metrics import Metrics

log = logging.getLogger(__name__)


class TopicsNotDurable(Exception):
    """PODIUM_REQUIRE_DURABLE_TOPICS is set and a topic Podium reads can lose events."""


@contextlib.asynccontextmanager
async def _admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


def creation_configs(settings: Settings) -> dict[str, str]:
    """The configs of a topic Podium creates: every record kept, for ever; with replicas,
    acknowledged writes on `min.insync.replicas` of them."""
    configs = dict(DURABLE)
    if settings.topic_replication_factor > 1:
        configs["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
    return configs


async def ensure_topics(settings: Settings) -> list[str]:
    """Create the topics that are missing (durable: `creation_configs`); returns their names
    (new, empty logs)."""
    async with _admin(settings) as admin:
        existing = set(await admin.list_topics())
        missing = [settings.topic(f) for f in FAMILIES if settings.topic(f) not in existing]
        if not missing:
            return []
        configs = creation_configs(settings)
        topics = [
            NewTopic(
                name,
                settings.topic_partitions,
                settings.topic_replication_factor,
                topic_configs=configs,
            )
            for name in missing
        ]
        # Another instance may have created them first.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(topics)
        log.info(
            "created topics %s (%s)",
            ", ".join(missing),
            ", ".join(f"{name}={value}" for name, value in configs.items()),
        )
        return missing


async def check_durability(settings: Settings, metrics: Metrics) -> None:
    """Describe the configs of every topic Podium reads and report each setting that can
    lose events: a WARNING per topic and setting and `podium_topic_config_risk` 1 (0 for a
    setting that keeps them); with PODIUM_REQUIRE_DURABLE_TOPICS, `TopicsNotDurable`
    instead. A setting the broker does not report is unknown, not a risk: one WARNING per
    topic, never fatal."""
    topics = [settings.topic(f) for f in FAMILIES]
    described = await describe_configs(settings, topics)
    risks: list[tuple[str, SettingCheck]] = []
    for topic in topics:
        checks = check_settings(described.get(topic, {}))
        for check in checks:
            if check.known:
                metrics.topic_config_risk.labels(topic, check.setting).set(check.risky)
        unknown = [check.setting for check in checks if not check.known]
        if unknown:
            log.warning(
                "the broker does not report %s of topic %s: Podium cannot tell whether the "
                "topic keeps every event a rebuild needs",
                ", ".join(unknown),
                topic,
                extra={"topic": topic},
            )
        risks += [(topic, check) for check in checks if check.risky]
    if risks and settings.require_durable_topics:
        raise TopicsNotDurable(
            "PODIUM_REQUIRE_DURABLE_TOPICS is set and "
            + "; ".join(f"topic {topic} has {check.risk}" for topic, check in risks)
        )
    for topic, check in risks:
        log.warning(
            "topic %s has %s",
            topic,
            check.risk,
            extra={"topic": topic, "setting": check.setting},
        )


async def describe_configs(settings: Settings, topics: list[str]) -> dict[str, dict[str, str]]:
    """The configs the broker reports of each topic (none for a topic it reports an error
    for, nor when it cannot describe configs at all)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
    try:
        async with _admin(settings) as admin:
            responses = await admin.describe_configs(resources)
    except KafkaError as error:
        log.warning("the broker cannot describe the topics' configs: %s", describe(error))
        return {}
    described: dict[str, dict[str, str]] = {}
    for response in responses:
        for error_code, _, _, name, entries in response.resources:
            if error_code == 0:
                described[name] = {e[0]: e[1] for e in entries if e[1] is not None}
    return described


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
