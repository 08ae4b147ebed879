"""The demo's world, folded by the rules through the consumer's decoder and the ingest use case
(in memory): it holds what it promises (rankings with ranked and not-ranked drivers in both
months, a running, an ended and a distance challenge, tasks in every state, learners in every
status), it is the same for the same (tenant, now, seed), and folding it twice changes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from consumers.decode import decode
from consumers.publish import from_envelope
from service.app.ingest import Applied, Batch, apply_batch
from service.app.queries import (
    challenge_progress,
    challenge_ranking,
    get_task,
    path_session_stats,
    ranking_months,
)
from service.app.records import Received, Record, Rejected
from service.demo.world import World, demo_world
from service.domain.errors import ProgressNotAvailable
from service.domain.events import ScoreKind, TaskStatus
from service.domain.paths import DetailedStatusReason, DetailedStatusType, PathResult, PathStatus
from tests.builders import RULES, Ports, driver_ranking
from tests.fakes import FakePorts

NOW = datetime(2026, 11, 18, 9, 30, tzinfo=UTC)
EARLY = datetime(2027, 3, 1, 0, 20, tzinfo=UTC)
"""Twenty minutes into a month that follows February: this month's trips all fit in those
minutes, and last month's windows in its 28 days."""


def asked(world: World) -> datetime:
    """When the tests ask: a minute after the world was made."""
    return world.now + timedelta(minutes=1)


def fold(ports: Ports, world: World) -> list[Applied]:
    """Send the world as records (the binary envelopes) and fold them in batches of 1,000."""
    received = []
    for offset, (envelope, at) in enumerate(world.sent):
        stamp = int(at.timestamp() * 1000)
        outgoing = from_envelope(envelope, stamp)
        event = decode(outgoing.family, outgoing.value, outgoing.headers, stamp)
        assert not isinstance(event, Rejected)
        record = Record(outgoing.family, 0, offset, stamp, outgoing.key, outgoing.value)
        received.append(Received(event, record))
    return [
        apply_batch(
            ports.unit_of_work,
            Batch(received=received[start : start + 1000]),
            rules=RULES,
            consumer_group="demo",
            now=asked(world),
        )
        for start in range(0, len(received), 1000)
    ]


@pytest.fixture(scope="module", params=[NOW, EARLY], ids=["mid-month", "early-in-march"])
def world(request: pytest.FixtureRequest) -> World:
    now: datetime = request.param
    return demo_world("demo", now)


@pytest.fixture(scope="module")
def folded(world: World) -> FakePorts:
    ports = FakePorts()
    applied = fold(ports, world)
    assert [a.dead_lettered for a in applied if a.dead_lettered] == []
    return ports


def test_the_ranking_has_ranked_and_not_ranked_drivers_this_month_and_last(
    world: World, folded: FakePorts
) -> None:
    with folded.read() as read:
        ranking = driver_ranking(read, "demo", ScoreKind.SAFETY, "", asked(world), RULES)
        group = driver_ranking(read, "demo", ScoreKind.ECO_DRIVING, "north", asked(world), RULES)
    for month in (ranking.current, ranking.previous, group.current):
        assert month.standings.ranked
        assert month.standings.not_ranked
    current = ranking.current.standings
    assert len(current.ranked) + len(current.not_ranked) == world.drivers == 300
    assert len(world.groups) == 5
    assert ranking_months(asked(world)) == (ranking.current.month, ranking.previous.month)


def test_one_challenge_runs_one_ended_with_its_progress_and_one_is_on_distance(
    world: World, folded: FakePorts
) -> None:
    with folded.read() as read:
        rankings = {
            challenge: challenge_ranking(read, "demo", challenge, "", asked(world), RULES)
            for challenge in (world.running_challenge, world.ended_challenge)
        }
        distance = challenge_ranking(
            read, "demo", world.distance_challenge, "", asked(world), RULES
        )
        progress = challenge_progress(read, "demo", world.ended_challenge, "", asked(world), RULES)
        with pytest.raises(ProgressNotAvailable):
            challenge_progress(read, "demo", world.running_challenge, "", asked(world), RULES)
    for ranking in (*rankings.values(), distance):
        assert ranking.registered > 0
        assert ranking.standings.ranked
    assert distance.challenge.theme.name == "DISTANCE"
    assert progress.progress.users
    assert progress.progress.users_with_data_before <= progress.progress.ranked_users


def test_four_tasks_are_in_each_state(world: World, folded: FakePorts) -> None:
    with folded.read() as read:
        found = {
            task_id: get_task(read, "demo", task_id).status
            for ids in world.tasks.values()
            for task_id in ids
        }
    assert {status: tuple(t for t, s in found.items() if s is status) for status in TaskStatus} == (
        world.tasks
    )
    assert Counter(found.values()) == dict.fromkeys(TaskStatus, 4)
    with folded.read() as read:
        assert get_task(read, "demo", world.anchor_task).created_at == world.now


EXPECTED_LEARNERS = {
    ("ps-safe-driving", "successful"): (
        PathStatus.COMPLETED,
        DetailedStatusType.SUCCESSFUL,
        None,
        PathResult.SUCCESSFUL,
    ),
    ("ps-safe-driving", "unsuccessful, out of attempts"): (
        PathStatus.ON_TIME,
        DetailedStatusType.UNSUCCESSFUL,
        None,
        PathResult.UNSUCCESSFUL,
    ),
    ("ps-safe-driving", "awaiting correction"): (
        PathStatus.AWAITING_CORRECTION,
        DetailedStatusType.AWAITING_CORRECTION,
        None,
        None,
    ),
    ("ps-safe-driving", "to retake"): (
        PathStatus.ON_TIME,
        DetailedStatusType.TO_RETAKE,
        None,
        PathResult.RETAKE,
    ),
    ("ps-safe-driving", "to retake, mandatory replay"): (
        PathStatus.ON_TIME,
        DetailedStatusType.TO_RETAKE,
        DetailedStatusReason.MANDATORY_REPLAY,
        None,
    ),
    ("ps-safe-driving", "not yet started"): (
        PathStatus.ON_TIME,
        DetailedStatusType.NOT_YET_STARTED,
        None,
        None,
    ),
    ("ps-safe-driving", "late"): (PathStatus.LATE, DetailedStatusType.LATE, None, None),
    ("ps-safe-driving", "on time"): (PathStatus.ON_TIME, DetailedStatusType.ON_TIME, None, None),
    ("ps-eco-refresher", "successful"): (
        PathStatus.COMPLETED,
        DetailedStatusType.SUCCESSFUL,
        None,
        PathResult.SUCCESSFUL,
    ),
    ("ps-eco-refresher", "unsuccessful, session ended"): (
        PathStatus.LATE,
        DetailedStatusType.UNSUCCESSFUL,
        DetailedStatusReason.SESSION_ENDED,
        None,
    ),
    ("ps-eco-refresher", "awaiting correction"): (
        PathStatus.AWAITING_CORRECTION,
        DetailedStatusType.AWAITING_CORRECTION,
        None,
        None,
    ),
}


def test_each_learner_is_where_the_world_put_them_and_every_status_is_there(
    world: World, folded: FakePorts
) -> None:
    seen = {}
    with folded.read() as read:
        for learner in world.learners:
            stats = path_session_stats(
                read, "demo", learner.session_id, learner.email, asked(world)
            )
            seen[(learner.session_id, learner.label)] = stats
    archived = seen.pop(("ps-safe-driving", "unenrolled"))
    assert archived.archived_at is not None
    found = {
        key: (s.status, s.detailed_type, s.detailed_reason, s.result) for key, s in seen.items()
    }
    assert found == EXPECTED_LEARNERS
    assert {s.status for s in seen.values()} == set(PathStatus)
    assert {s.result for s in seen.values()} == {*PathResult, None}
    # A session not opened yet has no learner: the world's two sessions are open and ended.
    assert {s.detailed_type for s in seen.values()} == (
        set(DetailedStatusType) - {DetailedStatusType.SESSION_NOT_OPENED}
    )


def test_nothing_is_dated_after_now_and_every_event_id_is_unique(world: World) -> None:
    assert max(at for _, at in world.sent) == world.now
    event_ids = [envelope.event_id for envelope, _ in world.sent]  # type: ignore[attr-defined]
    assert len(event_ids) == len(set(event_ids))


def test_the_same_tenant_now_and_seed_make_the_same_world_and_another_seed_another(
    world: World,
) -> None:
    again = demo_world("demo", world.now)
    assert [(e.SerializeToString(), at) for e, at in again.sent] == [
        (e.SerializeToString(), at) for e, at in world.sent
    ]
    other = demo_world("demo", world.now, seed=16)
    assert [e.SerializeToString() for e, _ in other.sent] != [
        e.SerializeToString() for e, _ in world.sent
    ]


def test_ids_depend_on_the_seed_only_so_a_later_run_finds_the_world_it_made(world: World) -> None:
    later = demo_world("demo", world.now + timedelta(days=40))
    assert later.anchor_task == world.anchor_task
    assert [e.event_id for e, _ in later.sent] == [  # type: ignore[attr-defined]
        e.event_id  # type: ignore[attr-defined]
        for e, _ in world.sent
    ]


def test_the_world_folded_a_second_time_changes_no_answer_and_is_never_dead_lettered(
    world: World,
) -> None:
    ports = FakePorts()
    fold(ports, world)
    with ports.read() as read:
        before = driver_ranking(read, "demo", ScoreKind.SAFETY, "", asked(world), RULES)
        progress = challenge_progress(read, "demo", world.ended_challenge, "", asked(world), RULES)
    again = fold(ports, world)
    assert [a.dead_lettered for a in again if a.dead_lettered] == []
    with ports.read() as read:
        assert driver_ranking(read, "demo", ScoreKind.SAFETY, "", asked(world), RULES) == before
        assert (
            challenge_progress(read, "demo", world.ended_challenge, "", asked(world), RULES)
            == progress
        )
