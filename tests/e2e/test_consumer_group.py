"""A stopped Podium leaves its consumer group, so the next start joins at once instead of
waiting for the old member's session to expire (consumers/consumer.py, `leave_first_generation`);
a killed one is removed by its successor under the same instance name (consumers/handover.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from consumers.local_broker import LocalBroker
from service.bootstrap import Podium
from service.config import Settings
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.e2e.test_assignment import settled
from tests.processes import ServeProcess

pytestmark = [pytest.mark.e2e]


async def group_members(settings: Settings) -> list[str]:
    return (await described_group(settings))[1]


async def described_group(settings: Settings) -> tuple[str, list[str]]:
    """The group's state and its members' ids."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([settings.consumer_group])
    finally:
        await admin.close()
    [group] = described.groups
    return group[2], [member[0] for member in group[5]]  # (error_code, group, state, ..., members)


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


async def until_members(settings: Settings, count: int) -> list[str]:
    """Until the group is at rest (a member is removed only from a group at rest) with
    `count` members."""
    for _ in range(600):
        state, members = await described_group(settings)
        if state == "Stable" and len(members) == count:
            return members
        await asyncio.sleep(0.1)
    raise AssertionError(f"the group never had {count} member(s) at rest: {state} {members}")


async def test_a_member_killed_is_removed_by_its_successor_under_the_same_instance_name(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """kill -9 leaves the member in the group until its session ends; the replacement under
    the same PODIUM_INSTANCE_ID removes it before joining (consumers/handover.py), while a
    member under another name is left alone."""
    with empty_database("sqlite", tmp_path) as url:
        settings = isolated_settings(
            broker, url, PODIUM_INSTANCE_ID="consumers-0", PODIUM_SESSION_TIMEOUT_SECONDS="20"
        )
        other = replace(settings, instance_id="consumers-1")
        killed = ServeProcess(settings, tmp_path / "killed.log", role="consumers")
        neighbour = ServeProcess(other, tmp_path / "neighbour.log", role="consumers")
        async with killed, neighbour:
            # Both assigned (the group formed over both), then at rest.
            topics = [settings.topic(f) for f in ("catalog", "trips", "enrollments", "tasks")]
            await settled([killed, neighbour], topics, 2)
            [*before] = await until_members(settings, 2)
            await killed.kill()
            assert sorted(await group_members(settings)) == sorted(before)  # still there
            async with ServeProcess(settings, tmp_path / "successor.log", role="consumers"):
                # The 20 s session has not ended: only the successor could have removed it.
                for _ in range(300):
                    if "removed member" in (tmp_path / "successor.log").read_text():
                        break
                    await asyncio.sleep(0.1)
                log = (tmp_path / "successor.log").read_text()
                [dead] = [m for m in before if m.startswith("podium-consumers-0-")]
                [kept] = [m for m in before if m.startswith("podium-consumers-1-")]
                assert f"removed member {dead}," in log
                assert kept not in log
                after = await until_members(settings, 2)
                assert dead not in after
                assert kept in after
