"""Topics that keep every event, against the real broker: what Podium creates its topics with,
what it says of topics that can lose events, and a start refused when durability is required.
The local broker (Tansu) takes configs when a topic is created and describes the configs a
topic was created with (none for one created without), which is what these tests use."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from consumers.local_broker import LocalBroker
from consumers.topics import check_durability, describe_configs, ensure_topics
from service.app.records import FAMILIES
from service.bootstrap import Podium
from service.config import Settings
from service.metrics import Metrics
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import PODIUM

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="function")]

RISK = "podium_topic_config_risk"
WEEK_MS = "604800000"


def risk(metrics: Metrics, topic: str, setting: str) -> float | None:
    return metrics.registry.get_sample_value(RISK, {"topic": topic, "setting": setting})


async def create(settings: Settings, configs: dict[str, dict[str, str]]) -> None:
    """Create topics as someone else would, before Podium starts: family -> configs."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(settings.topic(f), 2, 1, topic_configs=c) for f, c in configs.items()]
        )
    finally:
        await admin.close()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_the_topics_podium_creates_keep_every_event_and_are_reported_so(
    broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    settings = isolated_settings(broker, "sqlite://")
    topics = [settings.topic(f) for f in FAMILIES]
    assert await ensure_topics(settings) == topics
    described = await describe_configs(settings, topics)
    durable = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
    assert described == {topic: durable for topic in topics}
    metrics = Metrics()
    caplog.set_level(logging.INFO, logger="consumers.topics")
    await check_durability(settings, metrics)
    assert warnings(caplog) == []
    for topic in topics:
        for setting in durable:
            assert risk(metrics, topic, setting) == 0


async def test_finite_retention_and_compaction_are_warned_of_and_unreported_configs_are_unknown(
    broker: LocalBroker, caplog: pytest.LogCaptureFixture
) -> None:
    settings = isolated_settings(broker, "sqlite://")
    await create(
        settings,
        {
            "trips": {"retention.ms": WEEK_MS, "cleanup.policy": "compact"},
            "catalog": {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"},
            "tasks": {},
        },
    )
    await ensure_topics(settings)  # creates enrollments, durable
    metrics = Metrics()
    caplog.set_level(logging.INFO, logger="consumers.topics")
    await check_durability(settings, metrics)
    trips, catalog, tasks = (settings.topic(f) for f in ("trips", "catalog", "tasks"))
    assert (risk(metrics, trips, "retention.ms"), risk(metrics, trips, "cleanup.policy")) == (1, 1)
    assert risk(metrics, trips, "retention.bytes") is None  # not reported: unknown
    assert [risk(metrics, tasks, s) for s in ("retention.ms", "cleanup.policy")] == [None, None]
    assert risk(metrics, catalog, "retention.ms") == 0
    lines = warnings(caplog)
    assert len(lines) == 4
    assert f"topic {trips} has retention.ms={WEEK_MS} (7 days): the broker deletes" in lines[-2]
    assert "would lose every older event" in lines[-2]
    assert f"topic {trips} has cleanup.policy=compact: compaction keeps only" in lines[-1]
    assert any(f"does not report retention.bytes of topic {trips}" in line for line in lines)
    assert any(
        f"does not report retention.ms, retention.bytes, cleanup.policy of topic {tasks}" in line
        for line in lines
    )


async def test_podium_serve_refuses_to_start_on_a_topic_that_forgets_when_durability_is_required(
    broker: LocalBroker, tmp_path: Path
) -> None:
    settings = isolated_settings(broker, f"sqlite:///{tmp_path / 'podium.db'}")
    await create(settings, {"trips": {"retention.ms": WEEK_MS}})
    env = {**settings.to_env(), "PODIUM_REQUIRE_DURABLE_TOPICS": "true"}
    refused = await asyncio.to_thread(
        subprocess.run, [PODIUM, "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.splitlines()[-1].startswith(  # after the log's JSON lines
        f"podium: PODIUM_REQUIRE_DURABLE_TOPICS is set and topic {settings.topic('trips')} has "
        f"retention.ms={WEEK_MS} (7 days)"
    )


async def test_topics_whose_configs_are_unknown_never_stop_podium_from_starting(
    broker: LocalBroker, tmp_path: Path
) -> None:
    with empty_database("sqlite", tmp_path) as url:
        settings = isolated_settings(broker, url, PODIUM_REQUIRE_DURABLE_TOPICS="true")
        await create(settings, {family: {} for family in FAMILIES})
        podium = Podium(settings)
        try:
            await podium.start()  # refused, it would raise
            topic = settings.topic("trips")
            assert (
                podium.metrics.registry.get_sample_value(
                    RISK, {"topic": topic, "setting": "retention.ms"}
                )
                is None
            )
            await asyncio.wait_for(podium.ready.wait(), 60)
        finally:
            await podium.stop()
