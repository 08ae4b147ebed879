"""Challenge windows, tallies, ranking and progress (docs/rules.md#challenges)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.challenges import (
    PROGRESS_KEY_LENGTH,
    Challenge,
    Entry,
    check_group,
    contribution,
    entry_from_trips,
    progress,
    rank_challenge,
    score_hundredths,
)
from service.domain.errors import InvalidGroupLabel, NotApplicableForChallenge, ProgressNotAvailable
from service.domain.events import ChallengePublished, ChallengeTheme, Scores, TripCompleted
from service.domain.exact import exact
from service.domain.standings import EMPTY_TALLY, Tally, trip_tally
from service.domain.trips import TripFacts

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 8, tzinfo=UTC)
GRACE = timedelta(hours=24)


def make(theme: ChallengeTheme = ChallengeTheme.SAFETY, **changes: object) -> Challenge:
    fields: dict[str, object] = {
        "groups": (),
        "min_trips": 1,
        "min_distance_km": 0.0,
        "pre_challenge_period": None,
        "pre_challenge_min_trips": 2,
    }
    fields.update(changes)
    return Challenge.from_event(ChallengePublished("c1", "Safe week", theme, START, END, **fields))  # type: ignore[arg-type]


def trip(
    ended_at: datetime,
    km: float = 10,
    safety: float = 8.0,
    *,
    user: str = "u",
    arrived_at: datetime | None = None,
) -> TripFacts:
    event = TripCompleted(
        f"t{ended_at.isoformat()}{km}{safety}",
        user,
        ended_at - timedelta(minutes=5),
        ended_at,
        km,
        Scores(safety=safety),
    )
    return TripFacts.from_event(event, arrived_at or ended_at)


def tally(*trips: tuple[float, float]) -> Tally:
    total = Tally()
    for km, score in trips:
        total = total + trip_tally(exact(km), exact(score))
    return total


def test_the_pre_challenge_period_defaults_to_the_challenges_length() -> None:
    assert make().pre_start == START - timedelta(days=7)
    assert make(pre_challenge_period=timedelta(days=30)).pre_start == START - timedelta(days=30)


def test_an_explicit_pre_challenge_period_of_zero_is_kept_not_replaced_by_the_default() -> None:
    challenge = make(pre_challenge_period=timedelta(0))
    assert challenge.pre_start == START
    assert contribution(challenge, START, trip(START - timedelta(hours=1)), GRACE) == (
        EMPTY_TALLY,
        EMPTY_TALLY,
    )


@pytest.mark.parametrize(
    ("ended_at", "registered_at", "expected"),
    [
        (START, START, "during"),
        (END - timedelta(seconds=1), START, "during"),
        (END, START, "none"),
        (START + timedelta(days=1), START + timedelta(days=2), "none"),
        (START + timedelta(days=3), START + timedelta(days=2), "during"),
        (START - timedelta(seconds=1), START, "before"),
        (START - timedelta(days=7), START, "before"),
        (START - timedelta(days=7, seconds=1), START, "none"),
    ],
    ids=[
        "at-start",
        "just-before-end",
        "at-end",
        "before-registration",
        "after-registration",
        "just-before-start",
        "pre-window-start",
        "before-pre-window",
    ],
)
def test_a_trip_counts_in_the_window_it_ended_in(
    ended_at: datetime, registered_at: datetime, expected: str
) -> None:
    during, before = contribution(make(), registered_at, trip(ended_at), GRACE)
    assert (not during.is_empty, not before.is_empty) == {
        "during": (True, False),
        "before": (False, True),
        "none": (False, False),
    }[expected]


def test_trips_and_deletions_arriving_after_the_freeze_change_nothing() -> None:
    late = END + GRACE
    assert contribution(make(), START, trip(START, arrived_at=late), GRACE)[0].is_empty
    counted = trip(START, arrived_at=START)
    assert not contribution(make(), START, counted.deleted(late), GRACE)[0].is_empty
    assert contribution(make(), START, counted.deleted(late - timedelta(seconds=1)), GRACE)[
        0
    ].is_empty


def test_a_distance_challenge_scores_the_kilometres() -> None:
    distance = make(ChallengeTheme.DISTANCE)
    entry = entry_from_trips(
        distance, "u", START, [trip(START, 12.345), trip(START, 0.5, 2)], GRACE
    )
    assert score_hundredths(distance, entry.during) == 1285
    assert entry.during.trips == 2


def test_a_distance_score_is_the_exact_distance_rounded_once() -> None:
    """Ten trips of half a metre are 5 m, 0.01 km to the hundredth: none of them vanishes."""
    distance = make(ChallengeTheme.DISTANCE)
    trips = [trip(START + timedelta(minutes=i), 0.0005) for i in range(10)]
    entry = entry_from_trips(distance, "u", START, trips, GRACE)
    assert (score_hundredths(distance, entry.during), entry.during.metres) == (1, 5)


def test_a_challenges_minimum_distance_is_compared_exactly() -> None:
    strict = make(min_distance_km=20.0)
    short = Entry("short", START, tally(*((3.99992, 8.0) for _ in range(5))))
    enough = Entry("enough", START, tally(*((4.0, 8.0) for _ in range(5))))
    standings = rank_challenge(strict, [short, enough])
    assert [p.entrant.user_id for p in standings.ranked] == ["enough"]
    assert strict.thresholds.metres_short(short.during) == 1


def test_progress_totals_the_exact_distances_and_rounds_once() -> None:
    entries = [Entry(f"u{i}", START, tally((0.0004, 8.0))) for i in range(3)]
    assert progress(make(), entries, END).total_metres == 1


def test_the_live_ranking_shares_ranks_and_applies_the_thresholds() -> None:
    strict = make(min_trips=2, min_distance_km=15)
    entries = [
        Entry("a", START, tally((10, 9.0), (10, 9.0))),
        Entry("b", START, tally((20, 7.0), (1, 7.0))),
        Entry("c", START, tally((8, 7.0), (8, 7.0))),
        Entry("d", START, tally((40, 10.0))),
    ]
    standings = rank_challenge(strict, entries)
    assert [(p.entrant.user_id, p.rank) for p in standings.ranked] == [("a", 1), ("b", 2), ("c", 2)]
    assert [e.user_id for e in standings.not_ranked] == ["d"]


def test_progress_lists_ranked_users_with_data_before_best_evolution_first() -> None:
    entries = [
        Entry("steady", START, tally((10, 8.0)), tally((10, 8.0), (10, 8.0))),
        Entry("better", START, tally((10, 7.0)), tally((10, 5.0), (10, 5.0))),
        Entry("no-history", START, tally((10, 9.0)), tally((10, 1.0))),
        Entry("idle", START),
    ]
    answer = progress(make(), entries, END)
    assert [
        (line.entry.user_id, line.evolution_hundredths, line.rank) for line in answer.users
    ] == [("better", 200, 3), ("steady", 0, 2)]
    assert (answer.registered_users, answer.ranked_users, answer.users_with_data_before) == (
        4,
        3,
        2,
    )
    assert (answer.total_trips, answer.total_metres) == (3, 30_000)


@given(
    figures=st.lists(
        st.tuples(st.integers(1, 3), st.integers(0, 20), st.integers(0, 4), st.integers(0, 20)),
        max_size=30,
    )
)
def test_progress_is_best_evolution_then_rank_then_user_and_keys_are_the_lines_own(
    figures: list[tuple[int, int, int, int]],
) -> None:
    """The order is as it was before pages (evolution, rank, user id); a line's key is made
    of its own figures (a better score is a better rank), so it is a total order a page
    can be cut in (docs/rules.md#challenge-progress)."""
    entries = [
        Entry(
            f"u{i % 7}{i}",
            START,
            tally(*[(10, score / 2)] * trips),
            tally(*[(10, before / 2)] * trips_before),
        )
        for i, (trips, score, trips_before, before) in enumerate(figures)
    ]
    lines = progress(make(), entries, END).users
    assert list(lines) == sorted(
        lines, key=lambda line: (-line.evolution_hundredths, line.rank, line.entry.user_id)
    )
    keys = [line.key for line in lines]
    assert keys == sorted(set(keys))
    assert all(len(key) == PROGRESS_KEY_LENGTH for key in keys)


def test_progress_is_not_available_before_the_end() -> None:
    with pytest.raises(ProgressNotAvailable) as early:
        progress(make(), [], END - timedelta(hours=1))
    assert early.value.available_at == END
    assert early.value.retry_after == timedelta(hours=1)


def test_progress_does_not_apply_to_distance_challenges() -> None:
    with pytest.raises(NotApplicableForChallenge):
        progress(make(ChallengeTheme.DISTANCE), [], END - timedelta(days=1))


def test_a_group_must_be_one_of_the_challenges_or_a_known_one_for_open_challenges() -> None:
    check_group(make(groups=("north",)), "north", frozenset())
    check_group(make(), "south", frozenset({"south"}))
    check_group(make(), "", frozenset())
    with pytest.raises(InvalidGroupLabel):
        check_group(make(groups=("north",)), "south", frozenset({"south"}))
    with pytest.raises(InvalidGroupLabel):
        check_group(make(), "west", frozenset({"south"}))
