"""Tallies, rounding and the shared competition ranking (docs/rules.md#conventions,
docs/rules.md#ranking-order)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from service.domain.standings import (
    Tally,
    Thresholds,
    km_to_metres,
    rank_entrants,
    score_to_units,
    trip_tally,
)

ANYONE = Thresholds(1, 0)


@dataclass(frozen=True)
class Runner:
    name: str
    tally: Tally


def _runner(name: str, *trips: tuple[float, float | None]) -> Runner:
    tally = Tally()
    for km, score in trips:
        units = None if score is None else score_to_units(score)
        tally = tally + trip_tally(km_to_metres(km), units)
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


def test_adding_then_removing_a_trip_restores_the_tally_exactly() -> None:
    base = _runner("a", (12.345, 7.777), (0.5, 3.3)).tally
    extra = trip_tally(km_to_metres(3.21), score_to_units(9.99))
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
    thresholds = Thresholds(min_trips=2, min_metres=10_000)
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
