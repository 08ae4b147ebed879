from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from podium.v1 import driver_ranking_pb2 as pb

from service.app.queries import MonthRanking
from service.domain.events import ScoreKind
from service.domain.exact import ZERO
from service.domain.ranking import DriverMonth, Month, Profile, rank_month
from service.domain.standings import Tally, Thresholds
from service.grpc.convert import driver_ranking_bytes, month_ranking_bytes, month_ranking_message


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


def _driver(user: str, trips: int, metres: int, score: int | None, names: str) -> DriverMonth:
    km = Decimal(metres).scaleb(-3)
    first, last, pseudo = (names[:1], names[1:2], names[2:3])
    weighted, weight = (ZERO, ZERO) if score is None else (Decimal(score).scaleb(-2) * km, km)
    return DriverMonth(Profile(user, first, last, pseudo), Tally(trips, km, weighted, weight))


drivers = st.lists(
    st.builds(
        _driver,
        st.text("abcdéf", min_size=1, max_size=4),
        st.integers(0, 200),
        st.integers(0, 10**9),
        st.none() | st.integers(0, 10_000),
        st.text("xyzñ", max_size=3),
    ),
    max_size=40,
    unique_by=lambda d: d.profile.user_id,
)


@given(before=drivers, after=drivers)
def test_a_month_written_entry_by_entry_is_the_very_bytes_protobuf_writes(
    before: list[DriverMonth], after: list[DriverMonth]
) -> None:
    thresholds = Thresholds(5, Decimal(20))
    first = MonthRanking(Month(2026, 11), rank_month(before, thresholds))
    data, pieces = month_ranking_bytes(first)
    assert data == month_ranking_message(first).SerializeToString()
    moved = MonthRanking(
        Month(2026, 11), rank_month(before[: len(before) // 2] + after, thresholds)
    )
    again, _ = month_ranking_bytes(moved, pieces)  # the unchanged drivers' entries reused
    assert again == month_ranking_message(moved).SerializeToString()
