"""Tallies, rounding and the shared competition ranking (docs/rules.md#conventions,
docs/rules.md#exact-figures, docs/rules.md#ranking-order)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from service.domain.exact import exact
from service.domain.standings import Tally, Thresholds, rank_entrants, trip_tally

ANYONE = Thresholds(1, Decimal(0))


@dataclass(frozen=True)
class Runner:
    name: str
    tally: Tally


def _runner(name: str, *trips: tuple[float, float | None]) -> Runner:
    tally = Tally()
    for km, score in trips:
        tally = tally + trip_tally(exact(km), None if score is None else exact(score))
    return Runner(name, tally)


def _rank(runners: list[Runner], thresholds: Thresholds = ANYONE) -> list[tuple[str, int]]:
    standings = rank_entrants(
        runners,
        score_of=lambda r: r.tally.score_hundredths,
        metres_of=lambda r: r.tally.metres,
        key_of=lambda r: r.name,
        is_eligible=lambda r: thresholds.admits(r.tally),
    )
    return [(p.entrant.name, p.rank) for p in standings.ranked]


def test_the_score_is_the_distance_weighted_mean() -> None:
    runner = _runner("a", (30, 9.0), (10, 5.0))
    assert runner.tally.score == 8.0


def test_trips_without_the_score_count_in_distance_but_not_in_the_mean() -> None:
    runner = _runner("a", (10, 6.0), (90, None))
    assert (runner.tally.trips, runner.tally.metres, runner.tally.score) == (2, 100_000, 6.0)


def test_no_scored_trip_means_no_score() -> None:
    assert _runner("a", (10, None)).tally.score is None


@pytest.mark.parametrize(
    ("scores", "expected"),
    [((8.125,), 8.13), ((8.124,), 8.12), ((8.1249,), 8.12), ((9.995,), 10.0)],
)
def test_scores_round_half_up_to_hundredths(scores: tuple[float, ...], expected: float) -> None:
    runner = _runner("a", *((1.0, s) for s in scores))
    assert runner.tally.score == expected


def test_the_mean_is_of_the_decimals_sent_rounded_once() -> None:
    """8.12496 is 8.12, not 8.125 first and then 8.13: it ties with 8.12."""
    ann, bob = _runner("ann", (25, 8.12496)), _runner("bob", (30, 8.12))
    assert (ann.tally.score, bob.tally.score) == (8.12, 8.12)
    assert _rank([ann, bob]) == [("bob", 1), ("ann", 1)]


def test_a_mean_is_exact_however_many_digits_the_figures_have() -> None:
    runner = _runner("a", (1 / 3, 8.12345678901234), (2 / 3, 8.13))
    # (1/3 km as sent: 0.3333333333333333) x 8.12345678901234 + 0.6666666666666666 x 8.13,
    # over 0.9999999999999999 km: 8.1278189296..., rounded once.
    assert runner.tally.score_hundredths == 813
    assert runner.tally.km == Decimal("0.9999999999999999")


def test_a_threshold_compares_the_exact_distance() -> None:
    """Five trips of 3.99992 km are 19.9996 km, under 20 km, though each is 4 km to the
    metre and the distance shows as 20.000 km."""
    runner = _runner("a", *((3.99992, 8.0) for _ in range(5)))
    twenty = Thresholds(5, Decimal(20))
    assert runner.tally.km == Decimal("19.99960")
    assert runner.tally.metres == 20_000
    assert not twenty.admits(runner.tally)
    assert twenty.admits(_runner("b", *((4.0, 8.0) for _ in range(5))).tally)


def test_a_trip_of_any_positive_distance_carries_its_weight() -> None:
    assert _runner("a", (1e-9, 5.0)).tally.score == 5.0
    assert _runner("a", (5e-324, 5.0), (5e-324, 6.0)).tally.score == 5.5


def test_trips_of_0_km_carry_no_score() -> None:
    """A trip that did not move weighs nothing: its score says nothing of the driving."""
    runner = _runner("a", (0.0, 9.0), (0.0, 3.0))
    assert (runner.tally.trips, runner.tally.score) == (2, None)


def test_what_a_driver_lacks_of_the_distance_is_rounded_up_to_the_metre() -> None:
    twenty = Thresholds(5, Decimal(20))
    assert twenty.metres_short(_runner("a", (19.9996, 8.0)).tally) == 1
    assert twenty.metres_short(_runner("a", (19.5, 8.0)).tally) == 500
    assert twenty.metres_short(_runner("a", (20.0001, 8.0)).tally) == 0


def test_adding_then_removing_a_trip_restores_the_tally_exactly() -> None:
    base = _runner("a", (12.345, 7.777), (0.5, 3.3)).tally
    extra = trip_tally(exact(3.21), exact(9.99))
    assert (base + extra) - extra == base


def test_equal_rounded_scores_share_a_rank_and_the_next_rank_skips() -> None:
    runners = [
        _runner("a", (10, 9.0)),
        _runner("b", (10, 8.004)),
        _runner("c", (20, 7.996)),
        _runner("d", (10, 7.0)),
    ]
    assert _rank(runners) == [("a", 1), ("c", 2), ("b", 2), ("d", 4)]


def test_ties_list_by_distance_then_by_key() -> None:
    runners = [_runner("b", (10, 8.0)), _runner("a", (10, 8.0)), _runner("c", (30, 8.0))]
    assert _rank(runners) == [("c", 1), ("a", 1), ("b", 1)]


def test_thresholds_keep_short_records_out_of_the_ranking() -> None:
    runners = [_runner("few", (50, 9.0)), _runner("many", (5, 8.0), (5, 8.0))]
    thresholds = Thresholds(min_trips=2, min_km=Decimal(10))
    standings = rank_entrants(
        runners,
        score_of=lambda r: r.tally.score_hundredths,
        metres_of=lambda r: r.tally.metres,
        key_of=lambda r: r.name,
        is_eligible=lambda r: thresholds.admits(r.tally),
    )
    assert [p.entrant.name for p in standings.ranked] == ["many"]
    assert [r.name for r in standings.not_ranked] == ["few"]


def test_the_ranking_does_not_depend_on_input_order() -> None:
    runners = [_runner(n, (k, s)) for n, k, s in [("a", 5, 7), ("b", 6, 7), ("c", 1, 9)]]
    assert _rank(runners) == _rank(list(reversed(runners)))
