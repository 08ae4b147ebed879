"""The rules that converge in any order and keep frozen windows frozen, end to end through
Kafka and gRPC, one family each (docs/rules.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from podium.events.v1 import enrollments_pb2
from podium.events.v1 import tasks_pb2 as task_events
from podium.v1 import (
    challenges_pb2,
    challenges_pb2_grpc,
    common_pb2,
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
    paths_pb2,
    paths_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

from service.domain.ranking import Month
from tests.builders import (
    catalog_session_envelope,
    challenge_envelope,
    enrollment_envelope,
    produce,
    registration_envelope,
    task_envelope,
    trip_envelope,
    user_envelope,
)
from tests.e2e.conftest import Running
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

NOW = datetime.now(UTC)


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(moment)
    return value


async def test_a_pause_cancels_what_had_started_by_its_time_in_whatever_order_it_comes(
    running: Running,
) -> None:
    """The pause is keyed by tenant, the tasks by task: they travel on different partitions.
    Events of a task sent before its creation wait for it."""
    tenant, topic = running.tenant, running.settings.topic("tasks")
    paused = NOW - timedelta(minutes=30)
    pause = task_envelope(
        "pause",
        tenant,
        push_service_paused=task_events.PushServicePaused(type="TASK_TYPE_PUSH_FAILED_TRIPS"),
    )
    assert isinstance(pause, task_events.TaskEvent)
    pause.occurred_at.FromDatetime(paused)

    def created(task_id: str) -> tuple[bytes, Message]:
        return task_id.encode(), task_envelope(
            task_id,
            tenant,
            task_created=task_events.TaskCreated(
                task_id=task_id,
                type="TASK_TYPE_PUSH_FAILED_TRIPS",
                nb_items=10,
                created_at=stamp(NOW - timedelta(hours=2)),
            ),
        )

    def started(task_id: str, at: datetime) -> tuple[bytes, Message]:
        return task_id.encode(), task_envelope(
            task_id,
            tenant,
            task_started=task_events.TaskStarted(task_id=task_id, started_at=stamp(at)),
        )

    report = task_envelope(
        "early",
        tenant,
        task_progressed=task_events.TaskProgressed(task_id="early", nb_remaining_items=4),
    )
    assert isinstance(report, task_events.TaskEvent)
    report.occurred_at.FromDatetime(NOW - timedelta(hours=1))  # before the pause canceled it
    progressed = (b"early", report)
    await produce(running.servers, topic, [(tenant.encode(), pause)])
    await produce(
        running.servers,
        topic,
        [
            created("before"),
            started("before", NOW - timedelta(hours=1)),
            created("after"),
            started("after", NOW - timedelta(minutes=10)),
            started("early", NOW - timedelta(hours=1, minutes=30)),
            progressed,
        ],
    )
    await produce(running.servers, topic, [created("early")])
    stub = tasks_pb2_grpc.TaskServiceStub(running.channel)

    async def status(task_id: str) -> tasks_pb2.GetTaskResponse:
        return await stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id), metadata=running.auth)

    before = await eventually(
        lambda: status("before"), lambda t: t.status == common_pb2.TASK_STATUS_CANCELED
    )
    assert before.status == common_pb2.TASK_STATUS_CANCELED
    assert (await status("after")).status == common_pb2.TASK_STATUS_IN_PROGRESS
    early = await eventually(lambda: status("early"), lambda t: t.nbRemainingItems == 4)
    assert early.nbRemainingItems == 4


async def test_a_registration_arriving_after_the_freeze_changes_nothing_and_is_listed(
    running: Running,
) -> None:
    """Arrival is the record's timestamp: the producer sets it to say when events came."""
    tenant, servers = running.tenant, running.servers
    start, end = NOW - timedelta(days=10), NOW - timedelta(days=5)  # frozen since NOW - 4 days
    in_time = start + timedelta(hours=1)
    await produce(
        servers,
        running.settings.topic("catalog"),
        [(b"c1", challenge_envelope("c1", start=start, end=end, tenant=tenant))],
        arrived_at=start - timedelta(days=1),
    )
    await produce(
        servers,
        running.settings.topic("enrollments"),
        [(b"ann", registration_envelope("c1", "ann", registered_at=in_time, tenant=tenant))],
        arrived_at=in_time,
    )
    ride = start + timedelta(days=1)
    await produce(
        servers,
        running.settings.topic("trips"),
        [(b"ann", trip_envelope("ride", "ann", km=12, ended_at=ride, tenant=tenant))],
        arrived_at=ride,
    )
    stub = challenges_pb2_grpc.ChallengeServiceStub(running.channel)

    async def ranking() -> challenges_pb2.GetChallengeRankingResponse:
        return await stub.GetChallengeRanking(
            challenges_pb2.GetChallengeRankingRequest(challenge_id="c1"), metadata=running.auth
        )

    before = await eventually(ranking, lambda r: r.rankedUsers == 1)
    late = registration_envelope(
        "c1", "ann", registered_at=start - timedelta(days=1), tenant=tenant
    )
    assert isinstance(late, enrollments_pb2.EnrollmentEvent)
    await produce(servers, running.settings.topic("enrollments"), [(b"ann", late)])

    async def listed() -> list[str]:
        with running.podium.storage.read() as read:
            return [e.event_id for e in read.ignored_events(tenant, "after_freeze", None)]

    assert await eventually(listed, lambda ids: bool(ids)) == [late.event_id]
    # An answer that reflects the late registration (its asOf moved to the registration's
    # arrival) ranks as before it.
    after = await eventually(ranking, lambda r: r.asOf != before.asOf)
    for answer in (after, before):
        answer.ClearField("asOf")
    assert after == before


async def test_optional_steps_never_make_a_learner_late_and_an_assessors_wait_is_not_failed(
    running: Running,
) -> None:
    tenant, servers = running.tenant, running.servers
    optional = catalog_session_envelope(
        "optional",
        tenant=tenant,
        starts_at=NOW - timedelta(days=10),
        ends_at=NOW + timedelta(days=10),
        steps=[
            {"step_id": "s1", "mandatory": False, "due_at": stamp(NOW - timedelta(days=1))},
            {"step_id": "s2", "mandatory": False},
        ],
    )
    ended = catalog_session_envelope(
        "ended",
        tenant=tenant,
        starts_at=NOW - timedelta(days=10),
        ends_at=NOW - timedelta(days=1),
        steps=[{"step_id": "s1", "mandatory": True, "requires_correction": True}],
    )
    await produce(
        servers, running.settings.topic("catalog"), [(b"optional", optional), (b"ended", ended)]
    )
    attempt = enrollments_pb2.StepAttempted(
        session_id="ended",
        user_id="lea",
        step_id="s1",
        attempt_id="a1",
        started_at=stamp(NOW - timedelta(days=3, hours=1)),
        ended_at=stamp(NOW - timedelta(days=3)),
        time_spent_ms=60_000,
    )
    enrolled = NOW - timedelta(days=5)
    await produce(
        servers,
        running.settings.topic("enrollments"),
        [
            (
                b"lea",
                enrollment_envelope(
                    tenant,
                    path_enrolled=enrollments_pb2.PathEnrolled(
                        session_id="optional", user_id="lea", enrolled_at=stamp(enrolled)
                    ),
                ),
            ),
            (
                b"lea",
                enrollment_envelope(
                    tenant,
                    path_enrolled=enrollments_pb2.PathEnrolled(
                        session_id="ended", user_id="lea", enrolled_at=stamp(enrolled)
                    ),
                ),
            ),
            (b"lea", enrollment_envelope(tenant, step_attempted=attempt)),
        ],
    )
    stub = paths_pb2_grpc.PathServiceStub(running.channel)

    async def stats(session: str) -> paths_pb2.GetPathSessionStatsResponse:
        return await stub.GetPathSessionStats(
            paths_pb2.GetPathSessionStatsRequest(session_id=session, user_email_or_id="lea"),
            metadata=running.auth,
        )

    optional_stats = await eventually(lambda: stats("optional"), lambda s: s.status != 0)
    assert optional_stats.status == paths_pb2.PATH_STATUS_ON_TIME
    waiting = await eventually(lambda: stats("ended"), lambda s: s.globalTime == 60_000)
    assert waiting.detailedStatus.type == paths_pb2.DETAILED_STATUS_TYPE_AWAITING_CORRECTION
    assert waiting.status == paths_pb2.PATH_STATUS_AWAITING_CORRECTION


async def test_last_months_group_ranking_keeps_the_membership_it_had_when_it_froze(
    running: Running,
) -> None:
    """Ann drove in the west last month and moved east today: once last month froze (its end
    plus the grace), its west ranking still lists her; this month's lists her in the east."""
    tenant, servers = running.tenant, running.servers
    last_month = Month.of(NOW).previous()
    mid = last_month.starts_at + timedelta(days=10)
    frozen = last_month.freezes_at(running.settings.late_event_grace) <= NOW
    catalog, trips = running.settings.topic("catalog"), running.settings.topic("trips")
    west = user_envelope("ann", "west", tenant=tenant, at=mid)
    await produce(servers, catalog, [(b"ann", west)], arrived_at=mid)
    rides = [
        (b"ann", trip_envelope(f"last-{i}", "ann", km=5, ended_at=mid, tenant=tenant))
        for i in range(5)
    ]
    await produce(servers, trips, rides, arrived_at=mid)
    await produce(servers, catalog, [(b"ann", user_envelope("ann", "east", tenant=tenant))])
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)

    async def group(label: str) -> driver_ranking_pb2.GetDriverRankingResponse:
        return await stub.GetDriverRanking(
            driver_ranking_pb2.GetDriverRankingRequest(
                type="RANKING_TYPE_SAFETY", group_label=label
            ),
            metadata=running.auth,
        )

    east = await eventually(
        lambda: group("east"), lambda r: len(r.currentMonth.driverNotRanked) == 1
    )
    west_answer = await group("west")  # still known: a profile listed it
    last_east = [d.userId for d in east.previousMonth.driverRanked]
    last_west = [d.userId for d in west_answer.previousMonth.driverRanked]
    if frozen:
        assert (last_west, last_east) == (["ann"], [])
    else:  # the 1st of the month, before the grace: last month is still live
        assert (last_west, last_east) == ([], ["ann"])
    assert list(west_answer.currentMonth.driverNotRanked) == []


async def test_profiles_sent_today_place_last_months_drivers_and_a_frozen_challenges_users(
    running: Running,
) -> None:
    """Adoption day: last month's trips and registrations arrived then, the catalog is sent
    today. Last month's north ranking lists both drivers with today's names (so does the
    tenant's), and the challenge that ended last month, frozen now, counts them in north."""
    tenant, servers, topic = running.tenant, running.servers, running.settings.topic
    last_month = Month.of(NOW).previous()
    start, end = last_month.starts_at + timedelta(days=5), last_month.starts_at + timedelta(days=15)
    await produce(
        servers,
        topic("catalog"),
        [(b"c1", challenge_envelope("c1", start=start, end=end, tenant=tenant, groups=["north"]))],
        arrived_at=start - timedelta(days=1),
    )
    for user_id, safety in (("ann", 9.0), ("bob", 7.0)):
        registered = registration_envelope("c1", user_id, registered_at=start, tenant=tenant)
        await produce(
            servers, topic("enrollments"), [(user_id.encode(), registered)], arrived_at=start
        )
        for day, when in enumerate((start - timedelta(days=2), start - timedelta(days=1))):
            ride = trip_envelope(
                f"{user_id}-pre-{day}", user_id, km=5, safety=5.0, ended_at=when, tenant=tenant
            )
            await produce(servers, topic("trips"), [(user_id.encode(), ride)], arrived_at=when)
        ride_at = start + timedelta(days=2)
        rides = [
            (
                user_id.encode(),
                trip_envelope(
                    f"{user_id}-{i}", user_id, km=5, safety=safety, ended_at=ride_at, tenant=tenant
                ),
            )
            for i in range(5)
        ]
        await produce(servers, topic("trips"), rides, arrived_at=ride_at + timedelta(minutes=5))
    today = [
        (b"ann", user_envelope("ann", "north", tenant=tenant, firstname="Annie")),
        (b"bob", user_envelope("bob", "north", tenant=tenant, firstname="Bobby")),
    ]
    await produce(servers, topic("catalog"), today)
    rankings = driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)
    challenges = challenges_pb2_grpc.ChallengeServiceStub(running.channel)

    async def month(group: str) -> driver_ranking_pb2.MonthRanking:
        answer = await rankings.GetDriverRanking(
            driver_ranking_pb2.GetDriverRankingRequest(
                type="RANKING_TYPE_SAFETY", group_label=group
            ),
            metadata=running.auth,
        )
        return answer.previousMonth

    def names(ranking: driver_ranking_pb2.MonthRanking) -> list[tuple[str, str]]:
        return [(d.userId, d.firstname) for d in ranking.driverRanked]

    expected = [("ann", "Annie"), ("bob", "Bobby")]
    north = await eventually(lambda: month("north"), lambda m: names(m) == expected)
    assert (names(north), north.driverRankedNumber) == (expected, 2)
    assert names(await eventually(lambda: month(""), lambda m: names(m) == expected)) == expected

    async def progress() -> challenges_pb2.GetChallengeProgressResponse:
        return await challenges.GetChallengeProgress(
            challenges_pb2.GetChallengeProgressRequest(challenge_id="c1", group="north"),
            metadata=running.auth,
        )

    shown = await eventually(progress, lambda p: p.registeredUsers == 2)
    assert (shown.registeredUsers, shown.rankedUsers, shown.usersWithDataBefore) == (2, 2, 2)
    assert (shown.totalNumberTrips, shown.totalDistance) == (10, 50.0)
    assert [(u.username, u.firstname) for u in shown.users] == [("ann", "Annie"), ("bob", "Bobby")]
