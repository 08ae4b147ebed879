"""Partitions handed out by number between real `podium serve` processes (consumers/assignment.py):
each member holds the same partition numbers of the trips and enrollments topics; topics whose
partition counts differ are refused at start; a group of older members is joined."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from consumers.local_broker import LocalBroker
from service.config import Settings
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import ServeProcess

pytestmark = [pytest.mark.e2e]

ASSIGNED = re.compile(r"Setting newly assigned partitions \{(.*?)\} for group")
PARTITION = re.compile(r"TopicPartition\(topic='([^']+)', partition=(\d+)\)")


def last_assignment(process: ServeProcess) -> set[tuple[str, int]]:
    """The partitions the process was given last, as its consumer logged them."""
    found = ASSIGNED.findall(process.log())
    if not found:
        return set()
    return {(topic, int(number)) for topic, number in PARTITION.findall(found[-1])}


async def settled(processes: list[ServeProcess], topics: list[str], partitions: int) -> None:
    """Until the processes' last assignments split every partition of the topics between
    them, each once (the group has rebalanced over all of them)."""
    everything = {(topic, n) for topic in topics for n in range(partitions)}
    for _ in range(1200):
        held = [last_assignment(p) for p in processes]
        if (
            all(held)
            and sum(map(len, held)) == len(everything)
            and set().union(*held) == everything
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("\n".join(p.tail() for p in processes))


def numbers(held: set[tuple[str, int]], topic: str) -> list[int]:
    return sorted(n for t, n in held if t == topic)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_two_processes_each_hold_the_same_numbers_of_trips_and_enrollments(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    with empty_database(kind, tmp_path) as url:
        # Three partitions: round robin over the sorted partitions would split numbers.
        settings = isolated_settings(broker, url, PODIUM_TOPIC_PARTITIONS="3")
        topics = [settings.topic(f) for f in ("catalog", "trips", "enrollments", "tasks")]
        first = ServeProcess(settings, tmp_path / "first.log", role="consumers")
        second = ServeProcess(settings, tmp_path / "second.log", role="consumers")
        async with first, second:
            await settled([first, second], topics, 3)
            held = [last_assignment(first), last_assignment(second)]
        trips, enrollments = settings.topic("trips"), settings.topic("enrollments")
        assert sorted(numbers(h, trips) for h in held) == [[0, 2], [1]]
        for member in held:
            assert numbers(member, trips) == numbers(member, enrollments)
            assert all(numbers(member, t) == numbers(member, trips) for t in topics)


async def create_topics(settings: Settings, counts: dict[str, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(settings.topic(family), n, 1) for family, n in counts.items()]
        )
    finally:
        await admin.close()


async def test_trips_and_enrollments_with_different_partition_counts_are_refused(
    broker: LocalBroker, tmp_path: Path
) -> None:
    with empty_database("sqlite", tmp_path) as url:
        settings = isolated_settings(broker, url)
        await create_topics(settings, {"trips": 4, "enrollments": 2})
        process = ServeProcess(settings, tmp_path / "serve.log", role="consumers")
        async with process:
            assert await process.exited(within=60) == 1
        log = process.log()
        assert f"{settings.topic('trips')} has 4" in log
        assert f"{settings.topic('enrollments')} has 2" in log


async def test_a_group_of_older_members_knowing_only_round_robin_takes_a_new_one(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """An upgrade: the group's member offers round robin alone, as Podium did before; the new
    process offers round robin second and is given partitions instead of being refused."""
    with empty_database("sqlite", tmp_path) as url:
        settings = isolated_settings(broker, url, PODIUM_TOPIC_PARTITIONS="2")
        topics = [settings.topic(f) for f in ("catalog", "trips", "enrollments", "tasks")]
        await create_topics(
            settings, dict.fromkeys(("catalog", "trips", "enrollments", "tasks"), 2)
        )
        older = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            partition_assignment_strategy=(RoundRobinPartitionAssignor,),
        )
        await older.start()
        try:
            while not older.assignment():
                await older.getmany(timeout_ms=100)
            async with ServeProcess(settings, tmp_path / "new.log", role="consumers") as new:
                for _ in range(1200):
                    if last_assignment(new):
                        break
                    assert new.running, new.tail()
                    await older.getmany(timeout_ms=100)  # the older member keeps polling
                assert last_assignment(new), new.tail()
                assert new.running
                # The older member led the group with round robin and kept the rest.
                held = last_assignment(new) | {(p.topic, p.partition) for p in older.assignment()}
                assert held == {(topic, n) for topic in topics for n in range(2)}
        finally:
            await older.stop()
