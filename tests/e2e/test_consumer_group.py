"""A stopped Podium leaves its consumer group, so the next start joins at once instead of
waiting for the old member's session to expire (consumers/consumer.py, `leave_first_generation`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from consumers.local_broker import LocalBroker
from service.bootstrap import Podium
from service.config import Settings
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings

pytestmark = [pytest.mark.e2e]


async def group_members(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([settings.consumer_group])
    finally:
        await admin.close()
    [group] = described.groups
    return [member[0] for member in group[5]]  # (error_code, group, state, ..., members)


async def test_a_stopped_podium_leaves_its_group_even_in_the_brokers_first_generation(
    broker: LocalBroker, tmp_path: Path
) -> None:
    with empty_database("sqlite", tmp_path) as url:
        settings = isolated_settings(broker, url)
        podium = Podium(settings)
        await podium.start()
        try:
            await asyncio.wait_for(podium.ready.wait(), 60)
            assert len(await group_members(settings)) == 1
        finally:
            await podium.stop()
        assert await group_members(settings) == []
