"""Driver months, their freezes and the monthly ranking (docs/rules.md#driver-ranking,
docs/rules.md#arrival-time-and-freezes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.errors import InvalidArgument
from service.domain.events import ScoreKind, Scores, TripCompleted
from service.domain.ranking import (
    Month,
    MonthDeltas,
    MonthTotals,
    Profile,
    drivers_of_month,
    month_contribution,
    rank_month,
    requested_month,
    totals_from_trips,
)
from service.domain.standings import Thresholds
from service.domain.trips import (
    Tombstone,
    TripConflict,
    TripFacts,
    after_completed,
    after_deleted,
)

GRACE = timedelta(hours=24)
NOV = datetime(2026, 11, 15, tzinfo=UTC)


def facts(
    trip_id: str = "t1",
    *,
    ended_at: datetime = NOV,
    arrived_at: datetime = NOV,
    km: float = 10,
    safety: float | None = 8.0,
) -> TripFacts:
    event = TripCompleted(
        trip_id, "u1", ended_at - timedelta(minutes=5), ended_at, km, Scores(safety=safety)
    )
    return TripFacts.from_event(event, arrived_at)


def test_months_step_over_year_boundaries() -> None:
    assert Month(2026, 1).previous() == Month(2025, 12)
    assert Month(2025, 12).next() == Month(2026, 1)
    assert Month.of(datetime(2026, 3, 31, 23, 59, tzinfo=UTC)) == Month(2026, 3)


@pytest.mark.parametrize(
    ("year", "number", "why"),
    [
        (2026, 12, "after the current month 2026-11"),
        (2027, 1, "after the current month"),
        (2026, 0, "1 to 12"),
        (2026, 13, "1 to 12"),
        (1969, 12, "before 1970"),
    ],
)
def test_a_month_asked_for_is_one_up_to_the_current_one(year: int, number: int, why: str) -> None:
    now = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    assert requested_month(2026, 11, now) == Month(2026, 11)
    assert requested_month(1970, 1, now) == Month(1970, 1)
    with pytest.raises(InvalidArgument, match=why) as refused:
        requested_month(year, number, now)
    assert (refused.value.reason, refused.value.metadata["field"]) == ("invalid_month", "month")


def test_a_month_freezes_at_its_end_plus_the_grace() -> None:
    assert Month(2026, 10).freezes_at(GRACE) == datetime(2026, 11, 2, tzinfo=UTC)


def test_a_trip_arriving_after_the_freeze_changes_nothing_in_its_month() -> None:
    late = facts(
        ended_at=datetime(2026, 10, 31, tzinfo=UTC), arrived_at=datetime(2026, 11, 2, tzinfo=UTC)
    )
    assert month_contribution(late, GRACE) == (Month(2026, 10), MonthTotals())


def test_a_trip_arriving_within_the_grace_still_counts() -> None:
    late = facts(
        ended_at=datetime(2026, 10, 31, tzinfo=UTC),
        arrived_at=datetime(2026, 11, 1, 23, 59, tzinfo=UTC),
    )
    assert month_contribution(late, GRACE)[1].trips == 1


def test_a_deletion_arriving_after_the_freeze_leaves_the_frozen_month_as_it_was() -> None:
    trip = facts(
        ended_at=datetime(2026, 10, 20, tzinfo=UTC), arrived_at=datetime(2026, 10, 20, tzinfo=UTC)
    )
    deleted = trip.deleted(datetime(2026, 11, 5, tzinfo=UTC))
    assert month_contribution(deleted, GRACE) == month_contribution(trip, GRACE)


def test_a_deleted_trip_leaves_the_month_as_if_it_never_came() -> None:
    kept, gone = facts("kept"), facts("gone", km=50, safety=2.0)
    totals = totals_from_trips([kept, gone.deleted(NOV)], GRACE)
    assert totals == totals_from_trips([kept], GRACE)


def test_a_deletion_before_its_trip_leaves_a_tombstone_that_swallows_the_trip() -> None:
    tomb = after_deleted(None, "t1", "u1", NOV)
    assert isinstance(tomb, Tombstone)
    event = TripCompleted("t1", "u1", NOV - timedelta(minutes=5), NOV, 10, Scores(safety=8))
    trip = after_completed(tomb, event, NOV + timedelta(minutes=1))
    assert isinstance(trip, TripFacts)
    assert month_contribution(trip, GRACE)[1] == MonthTotals()


def test_a_resent_trip_changes_nothing_but_other_figures_are_a_conflict() -> None:
    trip = facts()
    same = TripCompleted("t1", "u1", NOV - timedelta(minutes=5), NOV, 10, Scores(safety=8.0))
    assert after_completed(trip, same, NOV + timedelta(hours=1)) == trip
    other = TripCompleted("t1", "u1", NOV - timedelta(minutes=5), NOV, 11, Scores(safety=8.0))
    with pytest.raises(TripConflict, match="other figures"):
        after_completed(trip, other, NOV)


def test_every_known_driver_is_listed_even_without_trips() -> None:
    totals = totals_from_trips([facts(f"t{i}", km=5) for i in range(5)], GRACE)
    month_tallies = {user: t.tally(ScoreKind.SAFETY) for (user, _), t in totals.items()}
    drivers = drivers_of_month([Profile("u1", "Una"), Profile("u2", "Dos")], month_tallies)
    standings = rank_month(drivers, Thresholds(5, Decimal(20)))
    assert [p.entrant.profile.user_id for p in standings.ranked] == ["u1"]
    assert standings.ranked[0].score_hundredths == 800
    assert [d.profile.user_id for d in standings.not_ranked] == ["u2"]


def test_a_driver_known_only_from_trips_is_ranked_without_a_profile() -> None:
    tallies = {"ghost": MonthTotals.of_trip(facts()).tally(ScoreKind.SAFETY)}
    drivers = drivers_of_month([], tallies)
    assert drivers[0].profile == Profile("ghost")


def test_each_ranking_type_reads_its_own_score() -> None:
    event = TripCompleted(
        "t", "u", NOV - timedelta(minutes=1), NOV, 30, Scores(safety=9, eco_driving=4)
    )
    totals = MonthTotals.of_trip(TripFacts.from_event(event, NOV))
    assert totals.tally(ScoreKind.SAFETY).score == 9
    assert totals.tally(ScoreKind.ECO_DRIVING).score == 4
    assert totals.tally(ScoreKind.SPEEDING).score is None


moments = st.datetimes(
    min_value=datetime(2026, 9, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)
scores = st.none() | st.floats(0, 10, allow_nan=False)


@st.composite
def counted_trips(draw: st.DrawFn) -> tuple[str, TripFacts, int]:
    ended = draw(moments)
    event = TripCompleted(
        draw(st.sampled_from(["t1", "t2", "t3"])),
        draw(st.sampled_from(["u1", "u2"])),
        ended - timedelta(minutes=5),
        ended,
        draw(st.floats(0, 500, allow_nan=False)),
        Scores(*(draw(scores) for _ in range(4))),
    )
    trip = TripFacts.from_event(event, draw(moments))
    if draw(st.booleans()):
        trip = trip.deleted(draw(moments))
    return draw(st.sampled_from(["a", "b"])), trip, draw(st.sampled_from([1, -1]))


@given(st.lists(counted_trips(), max_size=30))
def test_month_deltas_sum_the_contributions_of_their_trips(
    trips: list[tuple[str, TripFacts, int]],
) -> None:
    deltas: MonthDeltas[str] = MonthDeltas(GRACE)
    expected: dict[tuple[str, str, Month], MonthTotals] = {}
    for scope, trip, sign in trips:
        deltas.add(scope, trip, sign)
        month, totals = month_contribution(trip, GRACE)
        key = (scope, trip.user_id, month)
        expected[key] = expected.get(key, MonthTotals()) + (totals if sign > 0 else -totals)
    assert deltas.totals() == {k: v for k, v in expected.items() if v != MonthTotals()}
    assert all(v.is_empty == (v == MonthTotals()) for v in [*expected.values(), MonthTotals()])
