from __future__ import annotations

from datetime import UTC, datetime

from podium.v1 import driver_ranking_pb2 as pb

from service.domain.events import ScoreKind
from service.grpc.convert import driver_ranking_bytes


def test_cached_month_answers_join_into_the_same_bytes_a_whole_message_parses_from() -> None:
    drivers = [
        pb.RankedDriver(userId=f"d{i}", rank=i, score=i / 3, tripNumber=i) for i in range(300)
    ]
    current = pb.MonthRanking(
        monthNumber=11, year=2026, driverRankedNumber=300, driverRanked=drivers
    )
    previous = pb.MonthRanking(monthNumber=10, year=2026)
    as_of = datetime(2026, 11, 20, 9, 30, 1, 250_000, tzinfo=UTC)
    joined = driver_ranking_bytes(
        ScoreKind.SAFETY, current.SerializeToString(), previous.SerializeToString(), as_of
    )
    whole = pb.GetDriverRankingResponse(
        type="RANKING_TYPE_SAFETY", currentMonth=current, previousMonth=previous
    )
    whole.asOf.FromDatetime(as_of)
    assert pb.GetDriverRankingResponse.FromString(joined) == whole
