"""Partitions handed out by number (consumers/assignment.py): a partition number's trips and
enrollments to one member, the members' loads within one partition number of each other."""

from __future__ import annotations

import pytest
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from consumers.assignment import (
    WITH_ROUND_ROBIN,
    PartitionNumbers,
    assignors,
    co_partitioning_problem,
    offered_to,
    plan,
)

TOPICS = ("p.catalog", "p.trips", "p.enrollments", "p.tasks")


def numbers_of(assigned: dict[str, list[int]], topic: str) -> list[int]:
    return assigned.get(topic, [])


@pytest.mark.parametrize("members", [1, 2, 3])
def test_each_member_holds_the_same_numbers_of_every_topic(members: int) -> None:
    ids = [f"m{n}" for n in range(members)]
    planned = plan({m: TOPICS for m in ids}, dict.fromkeys(TOPICS, range(6)))
    for topic in TOPICS:  # every partition, once
        held = sorted(n for m in ids for n in numbers_of(planned[m], topic))
        assert held == list(range(6))
    for member in ids:
        trips = numbers_of(planned[member], "p.trips")
        assert trips == numbers_of(planned[member], "p.enrollments")
        assert all(numbers_of(planned[member], t) == trips for t in TOPICS)
    counts = [len(numbers_of(planned[m], "p.trips")) for m in ids]
    assert max(counts) - min(counts) <= 1
    assert sum(counts) == 6


def test_more_members_than_partition_numbers_leaves_some_with_none() -> None:
    ids = ["a", "b", "c"]
    planned = plan({m: TOPICS for m in ids}, dict.fromkeys(TOPICS, range(2)))
    assert planned["a"] == {t: [0] for t in TOPICS}
    assert planned["b"] == {t: [1] for t in TOPICS}
    assert planned["c"] == {}


def test_topics_with_fewer_partitions_go_with_their_numbers() -> None:
    partitions = {"p.catalog": range(1), "p.trips": range(4), "p.enrollments": range(4)}
    planned = plan({"a": partitions, "b": partitions}, partitions)
    # Loads count partitions: number 0 weighs three, so `b` takes the next two numbers.
    assert planned["a"] == {"p.catalog": [0], "p.trips": [0, 3], "p.enrollments": [0, 3]}
    assert planned["b"] == {"p.trips": [1, 2], "p.enrollments": [1, 2]}


def test_a_member_reading_fewer_topics_gets_numbers_only_of_those_it_reads() -> None:
    """A rolling upgrade: `old` does not read the enrollments topic yet."""
    subscriptions = {"new": TOPICS, "old": ("p.catalog", "p.trips", "p.tasks")}
    planned = plan(subscriptions, dict.fromkeys(TOPICS, range(4)))
    assert "p.enrollments" not in planned["old"]
    assert sorted(planned["new"]["p.enrollments"]) == [0, 1, 2, 3]
    for topic in TOPICS:
        held = sorted(n for m in subscriptions for n in numbers_of(planned[m], topic))
        assert held == [0, 1, 2, 3]
    # The numbers `new` holds whole stay together; `old` takes the others but enrollments.
    whole = set(planned["new"]["p.trips"])
    assert whole
    assert all(set(planned["new"][t]) >= whole for t in TOPICS)


def test_members_reading_disjoint_topics_share_nothing_they_do_not_read() -> None:
    subscriptions = {"a": ("p.trips",), "b": ("p.enrollments",), "c": ("p.trips",)}
    planned = plan(subscriptions, {"p.trips": range(3), "p.enrollments": range(3)})
    assert planned["b"] == {"p.enrollments": [0, 1, 2]}
    assert sorted(planned["a"]["p.trips"] + planned["c"]["p.trips"]) == [0, 1, 2]


def test_no_members_no_plan() -> None:
    assert plan({}, dict.fromkeys(TOPICS, range(3))) == {}


def test_the_assignor_answers_aiokafkas_leader_with_the_plan() -> None:
    cluster = ClusterMetadata()
    cluster.partitions_for_topic = lambda topic: {0, 1, 2} if topic in TOPICS else None
    members = {m: ConsumerProtocolMemberMetadata(0, list(TOPICS), b"") for m in ("x", "y")}
    assigned = PartitionNumbers.assign(cluster, members)
    assert dict(assigned["x"].assignment) == {t: [0, 2] for t in TOPICS}
    assert dict(assigned["y"].assignment) == {t: [1] for t in TOPICS}
    assert PartitionNumbers.metadata(TOPICS).subscription == list(TOPICS)


def test_counts_that_differ_are_named_topic_by_topic() -> None:
    problem = co_partitioning_problem({"p.trips": 6, "p.enrollments": 4})
    assert problem is not None
    assert "p.trips has 6" in problem
    assert "p.enrollments has 4" in problem
    assert co_partitioning_problem({"p.trips": 6, "p.enrollments": 6}) is None
    assert co_partitioning_problem({"p.trips": 6, "p.enrollments": None}) is None


def test_partition_numbers_alone_unless_another_member_may_know_only_round_robin() -> None:
    assert assignors("", 0) == (PartitionNumbers,)  # an empty group
    assert assignors(PartitionNumbers.name, 2) == (PartitionNumbers,)
    assert assignors("roundrobin", 1) == WITH_ROUND_ROBIN  # older members: an upgrade
    assert assignors("", 1) == WITH_ROUND_ROBIN  # the broker does not say (Tansu)
    assert assignors("", None) == WITH_ROUND_ROBIN  # the group could not be read
    assert WITH_ROUND_ROBIN[0] is PartitionNumbers


class Coordinator:
    """What aiokafka's group coordinator keeps of the assignors a member offers."""

    def __init__(self, offered: tuple[type, ...]) -> None:
        self._assignors = offered


class Member:
    def __init__(self, offered: tuple[type, ...]) -> None:
        self._coordinator = Coordinator(offered)


def test_a_member_offering_round_robin_too_offers_partition_numbers_alone_once_chosen() -> None:
    members: list[Member] = []
    offered = offered_to(lambda: members[0], WITH_ROUND_ROBIN)
    members.append(Member(offered))
    chosen, fallback = offered
    assert issubclass(chosen, PartitionNumbers)
    assert chosen.name == PartitionNumbers.name  # the same protocol for the broker
    assert fallback is RoundRobinPartitionAssignor
    fallback.on_assignment(ConsumerProtocolMemberAssignment(0, [], b""))  # an older group's
    assert members[0]._coordinator._assignors == offered
    chosen.on_assignment(ConsumerProtocolMemberAssignment(0, [], b""))  # the group chose it
    assert members[0]._coordinator._assignors == (chosen,)


def test_a_member_offering_partition_numbers_alone_is_left_as_it_is() -> None:
    assert offered_to(lambda: None, (PartitionNumbers,)) == (PartitionNumbers,)
