"""What Podium publishes when a window freezes (docs/rules.md#results-out): which windows are
frozen, their event ids, and the final standings each result holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.domain.challenges import Challenge, Entry
from service.domain.events import ChallengePublished, ChallengeTheme, ScoreKind
from service.domain.exact import exact
from service.domain.ranking import DriverMonth, Month, Profile, rank_month
from service.domain.results import (
    ChallengeWindow,
    MonthWindow,
    challenge_result,
    frozen_months,
    groups_of,
    month_result,
    result_event_id,
)
from service.domain.standings import Tally, Thresholds, trip_tally

GRACE = timedelta(hours=24)
OCTOBER = Month(2026, 10)
NOVEMBER = Month(2026, 11)
OCTOBER_FREEZES = datetime(2026, 11, 2, tzinfo=UTC)


def tally(*trips: tuple[float, float | None]) -> Tally:
    total = Tally()
    for km, score in trips:
        total = total + trip_tally(exact(km), None if score is None else exact(score))
    return total


def test_a_month_is_frozen_from_its_end_plus_the_grace_for_every_ranking_type() -> None:
    just_before = OCTOBER_FREEZES - timedelta(microseconds=1)

    assert frozen_months("acme", [OCTOBER, NOVEMBER], just_before, GRACE) == []
    frozen = frozen_months("acme", [NOVEMBER, OCTOBER, OCTOBER], OCTOBER_FREEZES, GRACE)
    assert frozen == [MonthWindow("acme", OCTOBER, kind) for kind in ScoreKind]


def test_a_results_event_id_depends_on_the_tenant_the_window_and_the_kind_only() -> None:
    october = MonthWindow("acme", OCTOBER, ScoreKind.SAFETY)

    assert result_event_id(october) == result_event_id(MonthWindow("acme", OCTOBER, ScoreKind(1)))
    others: list[MonthWindow | ChallengeWindow] = [
        MonthWindow("acme", OCTOBER, ScoreKind.ECO_DRIVING),
        MonthWindow("acme", NOVEMBER, ScoreKind.SAFETY),
        MonthWindow("globex", OCTOBER, ScoreKind.SAFETY),
        ChallengeWindow("acme", "2026-10/SAFETY"),
    ]
    ids = {result_event_id(window) for window in [october, *others]}
    assert len(ids) == 5
    # Pinned: listeners keep the ids they handled, so an id must never change.
    assert result_event_id(ChallengeWindow("acme", "c1")) == "53248949-ad7f-5622-83dd-8383c4b93ca9"


def test_a_months_result_lists_every_ranked_then_every_other_driver_with_their_groups() -> None:
    drivers = [
        DriverMonth(Profile("ann"), tally((30, 8.0), (30, 8.0), (30, 8.0), (30, 8.0), (30, 8.0))),
        DriverMonth(Profile("bob"), tally((25, 9.0), (25, 9.0), (25, 9.0), (25, 9.0), (25, 9.0))),
        DriverMonth(Profile("cid"), tally((50, 9.0))),
        DriverMonth(Profile("dee"), Tally()),
    ]
    standings = rank_month(drivers, Thresholds(5, exact(20)))
    window = MonthWindow("acme", OCTOBER, ScoreKind.SAFETY)

    result = month_result(window, OCTOBER_FREEZES, standings, {"bob": ("east", "west")})

    assert [(d.user_id, d.rank, d.score_hundredths) for d in result.ranked] == [
        ("bob", 1, 900),
        ("ann", 2, 800),
    ]
    assert [(d.user_id, d.rank, d.trips, d.metres) for d in result.not_ranked] == [
        ("cid", 0, 1, 50_000),
        ("dee", 0, 0, 0),
    ]
    assert result.ranked[0].groups == ("east", "west")
    assert result.ranked[1].groups == ()
    assert result.not_ranked[1].score_hundredths is None


CHALLENGE_START = datetime(2026, 11, 1, tzinfo=UTC)
CHALLENGE_END = datetime(2026, 11, 8, tzinfo=UTC)


def challenge(theme: ChallengeTheme) -> Challenge:
    return Challenge.from_event(
        ChallengePublished(
            "c1",
            "Safe week",
            theme,
            CHALLENGE_START,
            CHALLENGE_END,
            min_trips=1,
            min_distance_km=0.0,
            pre_challenge_min_trips=1,
        )
    )


def test_a_challenges_result_holds_its_ranking_its_progress_and_its_counters() -> None:
    safety = challenge(ChallengeTheme.SAFETY)
    registered = CHALLENGE_START
    entries = [
        Entry("ann", registered, during=tally((10, 9.0)), before=tally((10, 6.0))),
        Entry("bob", registered, during=tally((20, 8.0)), before=tally((10, 8.5))),
        Entry("cid", registered, during=tally((5, 7.0))),
        Entry("dee", registered),
    ]
    frozen_at = safety.freezes_at(GRACE)

    result = challenge_result(
        ChallengeWindow("acme", "c1"), safety, frozen_at, entries, {"ann": ("west",)}
    )

    assert [(e.user_id, e.rank, e.score_hundredths) for e in result.ranked] == [
        ("ann", 1, 900),
        ("bob", 2, 800),
        ("cid", 3, 700),
    ]
    assert [e.user_id for e in result.not_ranked] == ["dee"]
    assert result.ranked[0].groups == ("west",)
    assert [(p.user_id, p.evolution_hundredths) for p in result.progress] == [
        ("ann", 300),
        ("bob", -50),
    ]
    counters = (
        result.registered_users,
        result.ranked_users,
        result.users_with_data_before,
        result.total_metres,
        result.total_trips,
    )
    assert counters == (4, 3, 2, 35_000, 3)


def test_a_distance_challenges_result_has_no_progress_but_keeps_its_counters() -> None:
    distance = challenge(ChallengeTheme.DISTANCE)
    entries = [
        Entry("ann", CHALLENGE_START, during=tally((10.0004, None), (0.0004, None))),
        Entry("bob", CHALLENGE_START, during=tally((12, None)), before=tally((3, None))),
    ]

    result = challenge_result(
        ChallengeWindow("acme", "c1"), distance, distance.freezes_at(GRACE), entries, {}
    )

    assert [(e.user_id, e.score_hundredths) for e in result.ranked] == [
        ("bob", 1200),
        ("ann", 1000),
    ]
    assert result.progress == ()
    # The total is the exact sum rounded once (22.0008 km), not a sum of rounded metres.
    assert (result.total_metres, result.total_trips, result.users_with_data_before) == (
        22_001,
        3,
        1,
    )


def test_each_user_gets_the_groups_that_list_them_sorted() -> None:
    members = {"west": ["ann", "bob"], "east": ["bob"], "north": []}

    assert groups_of(members) == {"ann": ("west",), "bob": ("east", "west")}
