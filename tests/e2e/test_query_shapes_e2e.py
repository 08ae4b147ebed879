"""The query shapes beyond the seeds, through Kafka and gRPC on each database: one driver
with their neighbours, pages, past months, `asOf`, a live top, a user's place in a challenge.
Each answer is checked against another method's whole list, never against numbers written
here."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from podium.v1 import (
    challenges_pb2,
    challenges_pb2_grpc,
    common_pb2,
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
)

from service.bootstrap import Podium
from service.domain.ranking import Month
from tests.builders import (
    challenge_envelope,
    produce,
    registration_envelope,
    trip_envelope,
    user_envelope,
)
from tests.e2e.conftest import Running
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

SAFETY = common_pb2.RANKING_TYPE_SAFETY
DRIVERS = 40


def trips_of(index: int) -> int:
    """From 1 to 8 trips: about a third of the drivers have fewer than the 5 that rank."""
    return 1 + (index * 7) % 8


def score_of(index: int) -> float:
    """Few distinct scores, so ties (shared ranks) happen."""
    return 5.0 + (index * 3) % 7 * 0.5


async def seed_month(running: Running, group: str, at: datetime, arrived_at: datetime) -> None:
    """`DRIVERS` drivers of `group` with their trips ending at `at`, arriving `arrived_at`."""
    tenant, topic = running.tenant, running.settings.topic
    users = [
        (f"d{i:02d}".encode(), user_envelope(f"d{i:02d}", group, tenant=tenant, at=arrived_at))
        for i in range(DRIVERS)
    ]
    trips = [
        (
            f"d{i:02d}".encode(),
            trip_envelope(
                f"{group}-t{i}-{k}",
                f"d{i:02d}",
                km=4.0 + i % 5,
                safety=score_of(i),
                ended_at=at - timedelta(minutes=k),
                tenant=tenant,
            ),
        )
        for i in range(DRIVERS)
        for k in range(trips_of(i))
    ]
    await produce(running.servers, topic("catalog"), users, arrived_at=arrived_at)
    await produce(running.servers, topic("trips"), trips, arrived_at=arrived_at)


def year_month(month: Month) -> common_pb2.YearMonth:
    return common_pb2.YearMonth(year=month.year, month_number=month.number)


def reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return str(info.reason)


async def refusal(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    return refused.value


def stub(running: Running) -> driver_ranking_pb2_grpc.DriverRankingServiceAsyncStub:
    return driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)


async def whole_month(
    running: Running, group: str, month: Month
) -> driver_ranking_pb2.MonthRanking:
    """The month as GetDriverRanking answers it (the current or the previous month)."""
    request = driver_ranking_pb2.GetDriverRankingRequest(type=SAFETY, group_label=group)
    answer = await stub(running).GetDriverRanking(request, metadata=running.auth)
    for candidate in (answer.currentMonth, answer.previousMonth):
        if (candidate.year, candidate.monthNumber) == (month.year, month.number):
            return candidate
    raise AssertionError(f"{month} is neither month of the ranking")


async def all_pages(
    running: Running, group: str, month: Month, *, not_ranked: bool, page_size: int
) -> list[driver_ranking_pb2.ListMonthRankingResponse]:
    pages, token = [], ""
    while True:
        request = driver_ranking_pb2.ListMonthRankingRequest(
            type=SAFETY,
            group_label=group,
            month=year_month(month),
            page_size=page_size,
            page_token=token,
            not_ranked=not_ranked,
        )
        page = await stub(running).ListMonthRanking(request, metadata=running.auth)
        pages.append(page)
        token = page.nextPageToken
        if not token:
            return pages


async def seeded_now(running: Running, group: str) -> Month:
    """This month's drivers, folded; the month they count in."""
    at = datetime.now(UTC) - timedelta(minutes=1)
    month = Month.of(at - timedelta(minutes=10))
    await seed_month(running, group, at, datetime.now(UTC))

    async def folded() -> driver_ranking_pb2.MonthRanking:
        return await whole_month(running, group, month)

    def trips(month: driver_ranking_pb2.MonthRanking) -> list[int]:
        return [d.tripNumber for d in month.driverRanked] + [
            d.tripNumber for d in month.driverNotRanked
        ]

    await eventually(folded, lambda m: sorted(trips(m)) == sorted(map(trips_of, range(DRIVERS))))
    return month


async def test_a_driver_with_neighbours_is_the_slice_of_the_whole_ranking(
    running: Running,
) -> None:
    month = await seeded_now(running, "g")
    whole = await whole_month(running, "g", month)
    ranked, others = list(whole.driverRanked), list(whole.driverNotRanked)
    assert ranked
    assert others
    for index in (0, 1, len(ranked) // 2, len(ranked) - 1):
        request = driver_ranking_pb2.GetDriverRankRequest(
            type=SAFETY,
            group_label="g",
            user_id=ranked[index].userId,
            neighbors=3,
            month=year_month(month),
        )
        answer = await stub(running).GetDriverRank(request, metadata=running.auth)
        assert answer.driver == ranked[index]
        assert list(answer.above) == ranked[max(0, index - 3) : index]
        assert list(answer.below) == ranked[index + 1 : index + 4]
        assert answer.driverRankedNumber == whole.driverRankedNumber
        assert not answer.HasField("shortfall")
    for driver in others:
        request = driver_ranking_pb2.GetDriverRankRequest(
            type=SAFETY, group_label="g", user_id=driver.userId, neighbors=3
        )
        answer = await stub(running).GetDriverRank(request, metadata=running.auth)
        assert answer.driverNotRanked == driver
        assert (list(answer.above), list(answer.below)) == ([], [])
        assert answer.shortfall.tripsShort == max(0, 5 - driver.tripNumber)
        assert answer.shortfall.distanceShortKm == pytest.approx(max(0.0, 20 - driver.distance))
    unknown = await refusal(
        stub(running).GetDriverRank(
            driver_ranking_pb2.GetDriverRankRequest(type=SAFETY, group_label="g", user_id="zed"),
            metadata=running.auth,
        )
    )
    assert (unknown.code(), reason(unknown)) == (grpc.StatusCode.NOT_FOUND, "driver_not_found")


async def test_pages_joined_are_the_whole_list_and_a_token_keeps_to_its_request(
    running: Running,
) -> None:
    month = await seeded_now(running, "g")
    whole = await whole_month(running, "g", month)
    ranked_pages = await all_pages(running, "g", month, not_ranked=False, page_size=7)
    other_pages = await all_pages(running, "g", month, not_ranked=True, page_size=4)
    assert [d for p in ranked_pages for d in p.driverRanked] == list(whole.driverRanked)
    assert [d for p in other_pages for d in p.driverNotRanked] == list(whole.driverNotRanked)
    assert all(len(p.driverRanked) == 7 for p in ranked_pages[:-1])
    assert {p.driverRankedNumber for p in ranked_pages} == {whole.driverRankedNumber}
    assert not any(p.frozen for p in ranked_pages)

    token = ranked_pages[0].nextPageToken
    elsewhere = driver_ranking_pb2.ListMonthRankingRequest(
        type=SAFETY, group_label="other", month=year_month(month), page_token=token
    )
    refused = await refusal(stub(running).ListMonthRanking(elsewhere, metadata=running.auth))
    assert (refused.code(), reason(refused)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_page_token",
    )
    too_big = driver_ranking_pb2.ListMonthRankingRequest(type=SAFETY, page_size=1001)
    refused = await refusal(stub(running).ListMonthRanking(too_big, metadata=running.auth))
    assert reason(refused) == "invalid_page_size"


async def test_a_past_month_answers_as_it_froze_and_a_future_one_is_invalid(
    running: Running,
) -> None:
    """d05 has 4 trips in the past month; a fifth arriving after the freeze would rank them.
    A trip of this month sent after it on the same key (so the same partition) shows when
    it has been folded."""
    now = datetime.now(UTC)
    past = Month.of(now).previous().previous().previous()
    in_past = past.starts_at + timedelta(days=10)
    await seed_month(running, "g", in_past, in_past + timedelta(hours=1))
    assert trips_of(5) == 4
    tenant, trips = running.tenant, running.settings.topic("trips")
    late = trip_envelope("late", "d05", km=50, ended_at=in_past, tenant=tenant)
    sentinel = trip_envelope("sentinel", "d05", ended_at=now - timedelta(minutes=5), tenant=tenant)
    await produce(running.servers, trips, [(b"d05", late), (b"d05", sentinel)])
    this_month = driver_ranking_pb2.GetDriverRankRequest(
        type=SAFETY, user_id="d05", month=year_month(Month.of(now - timedelta(minutes=5)))
    )

    async def d05_now() -> driver_ranking_pb2.GetDriverRankResponse:
        return await stub(running).GetDriverRank(this_month, metadata=running.auth)

    await eventually(d05_now, lambda r: r.driverNotRanked.tripNumber == 1)
    ranked = await all_pages(running, "g", past, not_ranked=False, page_size=1000)
    others = await all_pages(running, "g", past, not_ranked=True, page_size=1000)
    assert ranked[0].frozen
    assert (ranked[0].year, ranked[0].monthNumber) == (past.year, past.number)
    expected = sorted(trips_of(i) for i in range(DRIVERS) if trips_of(i) >= 5)
    assert sorted(d.tripNumber for p in ranked for d in p.driverRanked) == expected
    [d05] = [d for p in others for d in p.driverNotRanked if d.userId == "d05"]
    assert d05.tripNumber == 4

    future = driver_ranking_pb2.GetDriverRankRequest(
        type=SAFETY, user_id="d00", month=year_month(Month.of(now).next())
    )
    refused = await refusal(stub(running).GetDriverRank(future, metadata=running.auth))
    assert (refused.code(), reason(refused)) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_month")


async def test_as_of_is_the_arrival_of_the_newest_event_folded(running: Running) -> None:
    month = await seeded_now(running, "g")
    request = driver_ranking_pb2.GetDriverRankRequest(
        type=SAFETY, group_label="g", user_id="d01", month=year_month(month)
    )
    before = await stub(running).GetDriverRank(request, metadata=running.auth)
    assert before.HasField("asOf")
    arrived = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    trip = trip_envelope("newest", "d01", ended_at=datetime.now(UTC), tenant=running.tenant)
    await produce(
        running.servers, running.settings.topic("trips"), [(b"d01", trip)], arrived_at=arrived
    )

    async def rank() -> driver_ranking_pb2.GetDriverRankResponse:
        return await stub(running).GetDriverRank(request, metadata=running.auth)

    after = await eventually(rank, lambda r: r.asOf.ToDatetime(UTC) == arrived)
    assert after.asOf.ToDatetime(UTC) == arrived > before.asOf.ToDatetime(UTC)

    async def whole() -> driver_ranking_pb2.GetDriverRankingResponse:
        return await stub(running).GetDriverRanking(
            driver_ranking_pb2.GetDriverRankingRequest(type=SAFETY, group_label="g"),
            metadata=running.auth,
        )

    # While the newer month is serialized the previous answer may stand in, saying so.
    ranking = await eventually(whole, lambda r: r.asOf.ToDatetime(UTC) == arrived)
    current = ranking.currentMonth
    month_trips = {d.userId: d.tripNumber for d in current.driverRanked}
    month_trips |= {d.userId: d.tripNumber for d in current.driverNotRanked}
    mine = after.driver if after.HasField("driver") else after.driverNotRanked
    assert month_trips["d01"] == mine.tripNumber  # the answer is the state its asOf names


async def test_a_watcher_gets_the_top_then_the_change_an_event_makes(running: Running) -> None:
    month = await seeded_now(running, "w")
    request = driver_ranking_pb2.WatchDriverRankingRequest(type=SAFETY, group_label="w", top=3)
    stream = stub(running).WatchDriverRanking(request, metadata=running.auth)
    messages = aiter(stream)
    first = await asyncio.wait_for(anext(messages), 30)
    whole = await whole_month(running, "w", month)
    assert (first.year, first.monthNumber) == (month.year, month.number)
    assert list(first.driverRanked) == list(whole.driverRanked)[:3]
    assert first.driverRankedNumber == whole.driverRankedNumber
    newcomer = [
        (
            b"ace",
            trip_envelope(f"ace-{k}", "ace", km=10, safety=10.0, tenant=running.tenant),
        )
        for k in range(5)
    ]
    await produce(
        running.servers,
        running.settings.topic("catalog"),
        [(b"ace", user_envelope("ace", "w", tenant=running.tenant))],
    )
    await produce(running.servers, running.settings.topic("trips"), newcomer)
    changed = await asyncio.wait_for(anext(messages), 30)
    assert changed.driverRanked[0].userId == "ace"
    assert changed.driverRankedNumber == whole.driverRankedNumber + 1
    assert changed.asOf.ToDatetime(UTC) > first.asOf.ToDatetime(UTC)
    stream.cancel()


async def test_a_users_place_in_a_challenge_is_the_slice_of_its_ranking(running: Running) -> None:
    tenant, topic = running.tenant, running.settings.topic
    now = datetime.now(UTC)
    start, end = now - timedelta(days=1), now + timedelta(days=1)
    users = [f"u{i}" for i in range(12)]
    await produce(
        running.servers,
        topic("catalog"),
        [
            *[(u.encode(), user_envelope(u, "north", tenant=tenant)) for u in users],
            (b"c1", challenge_envelope("c1", start=start, end=end, tenant=tenant)),
        ],
    )
    await produce(
        running.servers,
        topic("enrollments"),
        [
            (u.encode(), registration_envelope("c1", u, registered_at=start, tenant=tenant))
            for u in users[:10]
        ],
    )
    await produce(
        running.servers,
        topic("trips"),
        [
            (
                u.encode(),
                trip_envelope(
                    f"{u}-{k}",
                    u,
                    safety=score_of(i),
                    ended_at=now - timedelta(hours=k + 1),
                    tenant=tenant,
                ),
            )
            for i, u in enumerate(users)
            for k in range(i % 3)
        ],
    )
    challenges = challenges_pb2_grpc.ChallengeServiceStub(running.channel)

    async def ranking() -> challenges_pb2.GetChallengeRankingResponse:
        request = challenges_pb2.GetChallengeRankingRequest(challenge_id="c1")
        return await challenges.GetChallengeRanking(request, metadata=running.auth)

    expected_trips = sum(i % 3 for i in range(10))
    whole = await eventually(
        ranking,
        lambda r: (
            sum(u.numberTrips for u in r.users) + sum(u.numberTrips for u in r.usersNotRanked)
            == expected_trips
        ),
    )
    ranked, others = list(whole.users), list(whole.usersNotRanked)
    assert ranked
    assert others
    for index, user in enumerate(ranked):
        request = challenges_pb2.GetChallengeRankRequest(
            challenge_id="c1", user_id=user.username, neighbors=2
        )
        answer = await challenges.GetChallengeRank(request, metadata=running.auth)
        assert answer.user == user
        assert list(answer.above) == ranked[max(0, index - 2) : index]
        assert list(answer.below) == ranked[index + 1 : index + 3]
        assert answer.asOf == whole.asOf
    for other in others:
        request = challenges_pb2.GetChallengeRankRequest(challenge_id="c1", user_id=other.username)
        answer = await challenges.GetChallengeRank(request, metadata=running.auth)
        assert answer.userNotRanked == other
        assert answer.shortfall.tripsShort + other.numberTrips >= 1
    outsider = challenges_pb2.GetChallengeRankRequest(challenge_id="c1", user_id="u11")
    refused = await refusal(challenges.GetChallengeRank(outsider, metadata=running.auth))
    assert (refused.code(), reason(refused)) == (grpc.StatusCode.NOT_FOUND, "user_not_registered")


async def test_a_watcher_of_an_api_instance_sees_what_another_instance_folds(
    running: Running,
) -> None:
    """A second instance serving the API only, on the same database: it folds nothing, and
    learns of changes from the state versions the consuming instance moves."""
    month = await seeded_now(running, "x")
    api_only = Podium(running.settings, "api")
    await api_only.start()
    try:
        await asyncio.wait_for(api_only.ready.wait(), 30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{api_only.port}") as channel:
            request = driver_ranking_pb2.WatchDriverRankingRequest(
                type=SAFETY, group_label="x", top=1
            )
            stream = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel).WatchDriverRanking(
                request, metadata=running.auth
            )
            messages = aiter(stream)
            first = await asyncio.wait_for(anext(messages), 30)
            assert (first.year, first.monthNumber) == (month.year, month.number)
            tenant = running.tenant
            await produce(
                running.servers,
                running.settings.topic("catalog"),
                [(b"top", user_envelope("top", "x", tenant=tenant))],
            )
            await produce(
                running.servers,
                running.settings.topic("trips"),
                [
                    (b"top", trip_envelope(f"top-{k}", "top", safety=10.0, tenant=tenant))
                    for k in range(5)
                ],
            )
            changed = await asyncio.wait_for(anext(messages), 30)
            assert [d.userId for d in changed.driverRanked] == ["top"]
            assert changed.driverRankedNumber == first.driverRankedNumber + 1
            stream.cancel()
    finally:
        await api_only.stop()
