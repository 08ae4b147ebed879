"""Challenges through the broker and the gRPC API, and what an operator sees with grpcurl."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from podium.v1 import challenges_pb2, challenges_pb2_grpc

from tests.builders import (
    challenge_envelope,
    produce,
    registration_envelope,
    trip_envelope,
    user_envelope,
)
from tests.e2e.conftest import Running
from tests.e2e.test_operator_grpcurl import grpcurl
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def seed(running: Running, *, start: datetime, end: datetime) -> None:
    topic, tenant = running.settings.topic, running.tenant
    await produce(
        running.servers,
        topic("catalog"),
        [
            (b"ann", user_envelope("ann", "north", firstname="Ann", tenant=tenant)),
            (b"bob", user_envelope("bob", "north", tenant=tenant)),
            (
                b"c1",
                challenge_envelope("c1", start=start, end=end, groups=["north"], tenant=tenant),
            ),
        ],
    )
    await produce(
        running.servers,
        topic("enrollments"),
        [
            (u.encode(), registration_envelope("c1", u, registered_at=start, tenant=tenant))
            for u in ("ann", "bob")
        ],
    )
    trips = []
    for user, before, during in (("ann", 6.0, 9.0), ("bob", 7.0, 7.5)):
        for i in range(2):
            trips.append(
                (
                    user.encode(),
                    trip_envelope(
                        f"{user}-pre{i}",
                        user,
                        safety=before,
                        ended_at=start - timedelta(hours=i + 1),
                        tenant=tenant,
                    ),
                )
            )
            trips.append(
                (
                    user.encode(),
                    trip_envelope(
                        f"{user}-in{i}",
                        user,
                        safety=during,
                        ended_at=start + timedelta(hours=i + 1),
                        tenant=tenant,
                    ),
                )
            )
    await produce(running.servers, topic("trips"), trips, as_json=True)


async def test_a_finished_challenge_shows_ranking_and_progress(running: Running) -> None:
    now = datetime.now(UTC)
    await seed(running, start=now - timedelta(days=5), end=now - timedelta(hours=1))
    stub = challenges_pb2_grpc.ChallengeServiceStub(running.channel)

    async def progress() -> challenges_pb2.GetChallengeProgressResponse:
        request = challenges_pb2.GetChallengeProgressRequest(challenge_id="c1", group="north")
        return await stub.GetChallengeProgress(request, metadata=running.auth)

    answer = await eventually(progress, lambda p: p.totalNumberTrips == 4 and len(p.users) == 2)
    assert (
        answer.challengeId,
        answer.group,
        answer.registeredUsers,
        answer.rankedUsers,
        answer.usersWithDataBefore,
        answer.totalDistance,
    ) == ("c1", "north", 2, 2, 2, 40.0)
    assert [
        (u.username, u.rank, u.score, u.scoreBefore, u.scoreEvolution, u.numberTrips)
        for u in answer.users
    ] == [("ann", 1, 9.0, 6.0, 3.0, 2), ("bob", 2, 7.5, 7.0, 0.5, 2)]
    assert answer.users[0].firstname == "Ann"

    ranking = await stub.GetChallengeRanking(
        challenges_pb2.GetChallengeRankingRequest(challenge_id="c1"), metadata=running.auth
    )
    assert [(u.username, u.rank) for u in ranking.users] == [("ann", 1), ("bob", 2)]

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetChallengeRanking(
            challenges_pb2.GetChallengeRankingRequest(challenge_id="c1", group="south"),
            metadata=running.auth,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_operator_sees_when_progress_will_be_available(running: Running) -> None:
    now = datetime.now(UTC)
    end = (now + timedelta(days=2)).replace(microsecond=0)
    await seed(running, start=now - timedelta(days=1), end=end)
    stub = challenges_pb2_grpc.ChallengeServiceStub(running.channel)

    async def live() -> challenges_pb2.GetChallengeRankingResponse:
        return await stub.GetChallengeRanking(
            challenges_pb2.GetChallengeRankingRequest(challenge_id="c1"), metadata=running.auth
        )

    await eventually(live, lambda r: r.rankedUsers == 2)
    with pytest.raises(grpc.aio.AioRpcError) as early:
        await stub.GetChallengeProgress(
            challenges_pb2.GetChallengeProgressRequest(challenge_id="c1"), metadata=running.auth
        )
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(early.value)
    assert status is not None
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert status.details[1].Unpack(retry)
    assert info.reason == "progress_not_available"
    assert info.metadata["retry_after"] == end.isoformat().replace("+00:00", "Z")
    assert timedelta(days=1) < retry.retry_delay.ToTimedelta() <= timedelta(days=2)

    code, output = await grpcurl(
        "-H",
        f"x-api-key: {running.key}",
        "-d",
        json.dumps({"challenge_id": "c1"}),
        running.address,
        "podium.v1.ChallengeService/GetChallengeProgress",
    )
    assert code != 0
    assert "Code: FailedPrecondition" in output
    compact = output.replace(" ", "")
    assert '"reason":"progress_not_available"' in compact
    assert f'"retry_after":"{info.metadata["retry_after"]}"' in compact
    assert "google.rpc.RetryInfo" in output


async def test_another_tenants_challenge_is_not_found(running: Running) -> None:
    stranger = running.for_new_tenant()
    now = datetime.now(UTC)
    await seed(running, start=now - timedelta(days=5), end=now - timedelta(hours=1))
    stub = challenges_pb2_grpc.ChallengeServiceStub(running.channel)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetChallengeRanking(
            challenges_pb2.GetChallengeRankingRequest(challenge_id="c1"), metadata=stranger.auth
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_challenge_compares_and_scores_the_exact_figures(running: Running) -> None:
    """docs/rules.md#exact-figures: a safety challenge of 20 km where 8.12496 ties with 8.12
    and 19.9996 km falls a metre short; a distance challenge where ten trips of half a metre
    score 0.01 km."""
    now, tenant, topic = datetime.now(UTC), running.tenant, running.settings.topic
    start, end = now - timedelta(days=1), now + timedelta(days=1)
    safety = challenge_envelope("safe", start=start, end=end, tenant=tenant)
    safety.challenge_published.min_distance_km = 20  # type: ignore[attr-defined]
    distance = challenge_envelope(
        "far", start=start, end=end, theme="CHALLENGE_THEME_DISTANCE", tenant=tenant
    )
    await produce(running.servers, topic("catalog"), [(b"safe", safety), (b"far", distance)])
    drivers = {"ann": (5, 5.0, 8.12496), "bob": (5, 6.0, 8.12), "dee": (5, 3.99992, 8.0)}
    drivers["eve"] = (10, 0.0005, 9.0)
    await produce(
        running.servers,
        topic("enrollments"),
        [
            (user.encode(), registration_envelope(c, user, registered_at=start, tenant=tenant))
            for c in ("safe", "far")
            for user in drivers
        ],
    )
    trips = [
        (u.encode(), trip_envelope(f"{u}{i}", u, km=km, safety=score, tenant=tenant))
        for u, (count, km, score) in drivers.items()
        for i in range(count)
    ]
    await produce(running.servers, topic("trips"), trips)
    stub = challenges_pb2_grpc.ChallengeServiceStub(running.channel)

    async def ranking(challenge_id: str) -> challenges_pb2.GetChallengeRankingResponse:
        request = challenges_pb2.GetChallengeRankingRequest(challenge_id=challenge_id)
        return await stub.GetChallengeRanking(request, metadata=running.auth)

    def all_trips(answer: challenges_pb2.GetChallengeRankingResponse) -> int:
        ranked = sum(u.numberTrips for u in answer.users)
        return ranked + sum(u.numberTrips for u in answer.usersNotRanked)

    safe = await eventually(lambda: ranking("safe"), lambda r: all_trips(r) == 25)
    assert [(u.username, u.rank, u.score, u.distance) for u in safe.users] == [
        ("bob", 1, 8.12, 30.0),
        ("ann", 1, 8.12, 25.0),
    ]
    assert [(u.username, u.distance) for u in safe.usersNotRanked] == [
        ("dee", 20.0),
        ("eve", 0.005),
    ]
    rank = await stub.GetChallengeRank(
        challenges_pb2.GetChallengeRankRequest(challenge_id="safe", user_id="dee"),
        metadata=running.auth,
    )
    assert (rank.shortfall.tripsShort, rank.shortfall.distanceShortKm) == (0, 0.001)

    far = await eventually(lambda: ranking("far"), lambda r: all_trips(r) == 25)
    assert [(u.username, u.rank, u.score) for u in far.users] == [
        ("bob", 1, 30.0),
        ("ann", 2, 25.0),
        ("dee", 3, 20.0),
        ("eve", 4, 0.01),
    ]
