"""Events produced to the real broker, answers read through the generated gRPC client."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from podium.events.v1 import tasks_pb2 as events
from podium.v1 import driver_ranking_pb2, driver_ranking_pb2_grpc
from sqlalchemy import select

from service.adapters.tables import dead_letters
from tests.builders import (
    challenge_envelope,
    deletion_envelope,
    produce,
    task_envelope,
    trip_envelope,
    user_envelope,
)
from tests.e2e.conftest import Running
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def ranking_request(group: str = "") -> driver_ranking_pb2.GetDriverRankingRequest:
    return driver_ranking_pb2.GetDriverRankingRequest(type="RANKING_TYPE_SAFETY", group_label=group)


async def test_trips_in_binary_and_json_reach_the_ranking(running: Running) -> None:
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)
    topic = running.settings.topic
    await produce(
        running.servers,
        topic("catalog"),
        [
            (b"ann", user_envelope("ann", "north", firstname="Ann", tenant=running.tenant)),
            (b"bob", user_envelope("bob", "north", tenant=running.tenant)),
            (b"cyd", user_envelope("cyd", "south", tenant=running.tenant)),
        ],
    )
    await produce(
        running.servers,
        topic("trips"),
        [
            (b"ann", trip_envelope(f"a{i}", "ann", km=5, safety=9.0, tenant=running.tenant))
            for i in range(5)
        ],
    )
    await produce(
        running.servers,
        topic("trips"),
        [
            (b"bob", trip_envelope(f"b{i}", "bob", km=6, safety=7.5, tenant=running.tenant))
            for i in range(6)
        ],
        as_json=True,
    )

    async def north() -> driver_ranking_pb2.GetDriverRankingResponse:
        return await stub.GetDriverRanking(ranking_request("north"), metadata=running.auth)

    answer = await eventually(north, lambda r: r.currentMonth.driverRankedNumber == 2)
    month = answer.currentMonth
    assert [(d.userId, d.rank, d.score, d.distance, d.tripNumber) for d in month.driverRanked] == [
        ("ann", 1, 9.0, 25.0, 5),
        ("bob", 2, 7.5, 36.0, 6),
    ]
    assert month.driverRanked[0].firstname == "Ann"
    assert list(month.driverNotRanked) == []
    assert answer.previousMonth.monthNumber == (month.monthNumber - 2) % 12 + 1

    await produce(
        running.servers,
        topic("trips"),
        [(b"ann", deletion_envelope("a0", "ann", tenant=running.tenant))],
    )
    answer = await eventually(north, lambda r: r.currentMonth.driverRankedNumber == 1)
    assert [d.userId for d in answer.currentMonth.driverRanked] == ["bob"]
    assert [(d.userId, d.tripNumber) for d in answer.currentMonth.driverNotRanked] == [("ann", 4)]


async def test_errors_carry_their_reason_domain_and_numeric_code(running: Running) -> None:
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetDriverRanking(ranking_request("atlantis"), metadata=running.auth)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = _error_info(refused.value)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "invalid_group_label",
        "podium",
        {"code": "4"},
    )

    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.GetDriverRanking(ranking_request())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _error_info(anonymous.value).reason == "invalid_api_key"

    with pytest.raises(grpc.aio.AioRpcError) as unknown_type:
        await stub.GetDriverRanking(
            driver_ranking_pb2.GetDriverRankingRequest(), metadata=running.auth
        )
    assert unknown_type.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(unknown_type.value).reason == "invalid_rank_type"


async def test_a_key_without_the_ranking_scope_is_refused(running: Running) -> None:
    tasks_only = running.for_new_tenant("tasks").key
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetDriverRanking(ranking_request(), metadata=(("x-api-key", tasks_only),))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = _error_info(refused.value)
    assert (info.reason, dict(info.metadata)) == ("ranking_feature_disabled", {"code": "2"})


async def test_health_answers_without_a_key(running: Running) -> None:
    health = health_pb2_grpc.HealthStub(running.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_bad_event_is_dead_lettered_and_consumption_goes_on(running: Running) -> None:
    servers = running.servers
    topic = running.settings.topic("trips")
    broken = trip_envelope("bad", "ann", safety=8.0, tenant=running.tenant)
    broken.trip_completed.scores.safety = 42.0
    await produce(servers, topic, [(b"ann", broken)])
    await produce(
        servers,
        topic,
        [(b"ann", trip_envelope(f"ok{i}", "ann", km=5, tenant=running.tenant)) for i in range(5)],
    )
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)

    async def ranked() -> int:
        answer = await stub.GetDriverRanking(ranking_request(), metadata=running.auth)
        return answer.currentMonth.driverRankedNumber

    assert await eventually(ranked, lambda n: n == 1) == 1
    with running.podium.storage.engine.connect() as c:
        rows = c.execute(
            select(dead_letters.c.topic, dead_letters.c.reason, dead_letters.c.value)
        ).all()
    assert [(r.topic, r.reason) for r in rows] == [
        (topic, "scores.safety 42.0 is out of range [0, 10]")
    ]
    assert rows[0].value == broken.SerializeToString()


def _error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


async def test_figures_are_exact_and_rounded_once(running: Running) -> None:
    """docs/rules.md#exact-figures, through Kafka and gRPC: a mean of 8.12496 ties with 8.12;
    19.9996 km is short of 20 km by a metre; a trip of 1e-9 km carries its score; trips of
    0 km carry none."""
    tenant = running.tenant
    drivers = {"ann": (5.0, 8.12496), "bob": (6.0, 8.12), "dee": (3.99992, 8.0)}
    drivers |= {"eve": (1e-9, 5.0), "fay": (0.0, 9.0)}
    trips = [
        (user.encode(), trip_envelope(f"{user}{i}", user, km=km, safety=score, tenant=tenant))
        for user, (km, score) in drivers.items()
        for i in range(1 if user == "eve" else 5)
    ]
    await produce(running.servers, running.settings.topic("trips"), trips)
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)

    async def ranking() -> driver_ranking_pb2.MonthRanking:
        answer = await stub.GetDriverRanking(ranking_request(), metadata=running.auth)
        return answer.currentMonth

    month = await eventually(ranking, lambda m: len(m.driverRanked) + len(m.driverNotRanked) == 5)
    assert [(d.userId, d.rank, d.score, d.distance) for d in month.driverRanked] == [
        ("bob", 1, 8.12, 30.0),
        ("ann", 1, 8.12, 25.0),
    ]
    assert [(d.userId, d.distance, d.tripNumber) for d in month.driverNotRanked] == [
        ("dee", 20.0, 5),
        ("eve", 0.0, 1),
        ("fay", 0.0, 5),
    ]

    async def shortfall(user: str) -> tuple[int, float, bool]:
        request = driver_ranking_pb2.GetDriverRankRequest(type="RANKING_TYPE_SAFETY", user_id=user)
        found = (await stub.GetDriverRank(request, metadata=running.auth)).shortfall
        return (found.tripsShort, found.distanceShortKm, found.noScore)

    assert await shortfall("dee") == (0, 0.001, False)
    assert await shortfall("eve") == (4, 20.0, False)
    assert await shortfall("fay") == (0, 20.0, True)


async def test_dead_letters_are_counted_by_the_kind_the_rules_give_them(running: Running) -> None:
    """docs/rules.md#validation-and-dead-letters: what cannot be decoded into an event is
    `undecodable` (a missing time, an unspecified enum, a NaN distance of a challenge), what
    breaks a rule `invalid`."""
    tenant, topic = running.tenant, running.settings.topic
    no_end = trip_envelope("no-end", "ann", tenant=tenant)
    no_end.trip_completed.ClearField("ended_at")
    out_of_range = trip_envelope("out", "ann", safety=8.0, tenant=tenant)
    out_of_range.trip_completed.scores.safety = 42.0
    now = datetime.now(UTC)
    nan = challenge_envelope("nan", start=now, end=now + timedelta(days=1), tenant=tenant)
    nan.challenge_published.min_distance_km = math.nan  # type: ignore[attr-defined]
    untyped = task_envelope("k", tenant, task_created=events.TaskCreated(task_id="k", nb_items=3))
    untyped.task_created.created_at.FromDatetime(now)  # type: ignore[attr-defined]
    letters = {
        ("trips", "undecodable"): 1,
        ("trips", "invalid"): 1,
        ("catalog", "undecodable"): 1,
        ("tasks", "undecodable"): 1,
    }

    def counted() -> dict[tuple[str, str], float]:
        registry = running.podium.metrics.registry
        return {
            (family, kind): registry.get_sample_value(
                "podium_events_dead_lettered_total", {"topic": topic(family), "reason": kind}
            )
            or 0.0
            for family, kind in letters
        }

    before = counted()
    await produce(running.servers, topic("trips"), [(b"ann", no_end), (b"ann", out_of_range)])
    await produce(running.servers, topic("catalog"), [(b"nan", nan)])
    await produce(running.servers, topic("tasks"), [(b"k", untyped)])

    async def added() -> dict[tuple[str, str], float]:
        return {key: count - before[key] for key, count in counted().items()}

    assert await eventually(added, lambda found: found == letters) == letters
