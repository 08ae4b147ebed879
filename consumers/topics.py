"""Create Podium's topics when they are missing (`podium serve` does it on start)."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from service.app.records import FAMILIES
from service.config import Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [settings.topic(f) for f in FAMILIES if settings.topic(f) not in existing]
        if not missing:
            return
        topics = [NewTopic(name, settings.topic_partitions, 1) for name in missing]
        # Another instance may have created them first.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(topics)
        log.info("created topics %s", ", ".join(missing))
    finally:
        await admin.close()
