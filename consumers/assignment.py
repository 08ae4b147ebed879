"""Partitions handed out by number: every topic's partition N to the same member.

Producers key trips and enrollments by user, so on co-partitioned topics (the same partition
count, the same partitioner) a user's trips and enrollments share a partition number. A member
that holds partition N of every topic therefore holds all of those users' events: the state a
batch reads and writes for a user belongs to one member. Two checks keep it so:

- at start, `check_co_partitioned` refuses topics whose counts differ (`TopicsNotCoPartitioned`:
  once the batches stop locking the whole tenant, two members would fold one user's trips and
  enrollments side by side; a warning would be read only after the state was wrong);
- in the group, `PartitionNumbers` is the assignor the leader runs.

Members whose subscriptions differ (a rolling upgrade that adds a topic) are served too: a
number's partitions go to the least loaded member subscribed to most of their topics, and a
topic that member does not read goes to the least loaded member that does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from consumers.connection import kafka_options
from service.config import Settings

log = logging.getLogger(__name__)

CO_PARTITIONED = ("trips", "enrollments")
"""The families keyed by user whose partitions must match number for number."""

Plan = dict[str, dict[str, list[int]]]
"""Member id -> topic -> partition numbers."""


def plan(
    subscriptions: Mapping[str, Iterable[str]], partitions: Mapping[str, Iterable[int]]
) -> Plan:
    """Every partition of every subscribed topic to one member, a partition number's to the same
    member wherever the subscriptions allow; members sorted by id, each number to the least
    loaded (fewest partitions) of those subscribed to most of its topics."""
    members = sorted(subscriptions)
    subscribed = {member: set(subscriptions[member]) for member in members}
    wanted = set().union(*subscribed.values()) if members else set()
    numbers: dict[int, list[str]] = {}
    for topic in sorted(wanted):
        for number in sorted(partitions.get(topic, ())):
            numbers.setdefault(number, []).append(topic)
    assigned: Plan = {member: {} for member in members}
    load = dict.fromkeys(members, 0)

    def give(member: str, topic: str, number: int) -> None:
        assigned[member].setdefault(topic, []).append(number)
        load[member] += 1

    for number in sorted(numbers):
        topics = numbers[number]
        best = max(len(subscribed[m].intersection(topics)) for m in members)
        owner = min(
            (m for m in members if len(subscribed[m].intersection(topics)) == best),
            key=lambda m: (load[m], members.index(m)),
        )
        for topic in topics:
            if topic in subscribed[owner]:
                give(owner, topic, number)
            else:
                readers = [m for m in members if topic in subscribed[m]]
                give(min(readers, key=lambda m: (load[m], members.index(m))), topic, number)
    return assigned


class PartitionNumbers(AbstractPartitionAssignor):  # type: ignore[misc]
    """aiokafka's assignor interface over `plan`, run by the group's leader."""

    name = "podium-partition-numbers"
    version = 0

    @classmethod
    def assign(
        cls,
        cluster: ClusterMetadata,
        members: Mapping[str, ConsumerProtocolMemberMetadata],
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        partitions = {}
        for metadata in members.values():
            for topic in metadata.subscription:
                found = cluster.partitions_for_topic(topic)
                if found is None:
                    log.warning("no partition metadata for topic %s", topic)
                    continue
                partitions[topic] = found
        planned = plan({m: d.subscription for m, d in members.items()}, partitions)
        return {
            member: ConsumerProtocolMemberAssignment(cls.version, sorted(topics.items()), b"")
            for member, topics in planned.items()
        }

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, list(topics), b"")

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        pass


Assignors = tuple[type[AbstractPartitionAssignor], ...]


def assignors(group_protocol: str, others: int | None) -> Assignors:
    """What a member offers the group: `PartitionNumbers` alone when no other member can need
    round robin (the group is empty, or already runs it), else round robin second, for older
    members of the group that know no other (an upgrade). Offering one only matters on the
    local broker: Tansu holds the join of a member offering two twice as long (6 s instead of
    3 s with a 6 s session, measured)."""
    if others == 0 or group_protocol == PartitionNumbers.name:
        return (PartitionNumbers,)
    return WITH_ROUND_ROBIN


WITH_ROUND_ROBIN: Assignors = (PartitionNumbers, RoundRobinPartitionAssignor)
"""What a member offers a group it knows nothing of."""


def offered_to(consumer: Callable[[], Any], offered: Assignors) -> Assignors:
    """`offered` for the member `consumer()` returns, `PartitionNumbers` made to narrow what
    the member offers to itself alone once its group has chosen it (every member knows it
    then): aiokafka (0.14) sends one JoinGroup per assignor it offers, each offering one more
    ([A], then [A, B]), and the broker answers each, the local one after half the session: a
    member offering round robin beside it took twice as long at every rebalance (6 s instead
    of 3 s at the default session, bench/RESULTS.md, issue 26). aiokafka tells the assignor
    the group chose (`on_assignment`) before the member's partitions are handed to it."""
    if len(offered) < 2 or PartitionNumbers not in offered:
        return offered

    class Chosen(PartitionNumbers):
        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            coordinator = getattr(consumer(), "_coordinator", None)
            if coordinator is not None:
                coordinator._assignors = (cls,)  # read anew at each rejoin

    return tuple(Chosen if assignor is PartitionNumbers else assignor for assignor in offered)


class TopicsNotCoPartitioned(Exception):
    """The trips and enrollments topics have different partition counts."""


def co_partitioning_problem(counts: Mapping[str, int | None]) -> str | None:
    """What is wrong with these topics' partition counts (None: a topic missing), if
    anything: counts that differ, named topic by topic."""
    known = {topic: count for topic, count in counts.items() if count is not None}
    if len(set(known.values())) <= 1:
        return None
    listed = " and ".join(f"{topic} has {count}" for topic, count in known.items())
    return (
        f"the topics keyed by user must have as many partitions as each other, but {listed} "
        "partitions: add partitions to the smaller so that the counts match "
        '(docs/operations.md, "Co-partitioned topics")'
    )


async def check_co_partitioned(settings: Settings) -> int | None:
    """Refuse to consume (`TopicsNotCoPartitioned`) when the trips and enrollments topics'
    partition counts differ; else their count (None: the broker knows neither topic)."""
    topics = [settings.topic(family) for family in CO_PARTITIONED]
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        counts = {topic: _count(consumer.partitions_for_topic(topic)) for topic in topics}
    finally:
        await consumer.stop()
    problem = co_partitioning_problem(counts)
    if problem is not None:
        raise TopicsNotCoPartitioned(problem)
    return max((count for count in counts.values() if count is not None), default=None)


def _count(partitions: Sequence[int] | set[int] | None) -> int | None:
    return None if partitions is None else len(partitions)
