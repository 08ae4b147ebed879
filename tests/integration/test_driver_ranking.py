"""Driver ranking through the ingest and query use cases, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.bootstrap import Storage
from service.domain.errors import InvalidGroupLabel
from service.domain.events import ScoreKind
from tests.builders import (
    RULES,
    T0,
    DriverRanking,
    apply,
    deletion,
    driver_ranking,
    read,
    trip,
    user,
)


def ranking(
    storage: Storage,
    group: str = "",
    *,
    now: datetime = T0,
    tenant: str = "acme",
    kind: ScoreKind = ScoreKind.SAFETY,
) -> DriverRanking:
    with read(storage) as reading:
        return driver_ranking(reading, tenant, kind, group, now, RULES)


def ranked(answer: DriverRanking) -> list[tuple[str, int, float, float, int]]:
    return [
        (
            p.entrant.profile.user_id,
            p.rank,
            p.score_hundredths / 100,
            p.entrant.tally.metres / 1000,
            p.entrant.tally.trips,
        )
        for p in answer.current.standings.ranked
    ]


def not_ranked(answer: DriverRanking) -> list[str]:
    return [d.profile.user_id for d in answer.current.standings.not_ranked]


def five_trips(user_id: str, safety: float, km: float = 5.0, prefix: str = "") -> list:  # type: ignore[type-arg]
    return [trip(f"{prefix}{user_id}-{i}", user_id, km=km, safety=safety) for i in range(5)]


def test_drivers_need_five_trips_and_twenty_km_to_be_ranked(storage: Storage) -> None:
    apply(
        storage,
        user("ann"),
        user("bob"),
        user("cyd"),
        *five_trips("ann", 9.0),
        *five_trips("bob", 8.0, km=3.0),
        *five_trips("cyd", 7.0)[:4],
    )
    answer = ranking(storage)
    assert ranked(answer) == [("ann", 1, 9.0, 25.0, 5)]
    assert not_ranked(answer) == ["cyd", "bob"]
    assert answer.current.month.number == 11
    assert answer.current.month.year == 2026
    assert answer.previous.month.number == 10


def test_a_group_ranking_lists_only_the_group_and_every_member_without_trips(
    storage: Storage,
) -> None:
    apply(
        storage,
        user("ann", "north"),
        user("bob", "south"),
        user("dee", "north"),
        *five_trips("ann", 9.0),
        *five_trips("bob", 9.5),
    )
    answer = ranking(storage, "north")
    assert [r[0] for r in ranked(answer)] == ["ann"]
    assert not_ranked(answer) == ["dee"]


def test_an_unknown_group_is_refused(storage: Storage) -> None:
    apply(storage, user("ann", "north"))
    with pytest.raises(InvalidGroupLabel):
        ranking(storage, "atlantis")


def test_a_trip_before_its_drivers_profile_counts_once_the_profile_comes(storage: Storage) -> None:
    apply(storage, *five_trips("ann", 9.0))
    assert ranked(ranking(storage))[0][0] == "ann"
    apply(storage, user("ann", "north", firstname="Annie"))
    answer = ranking(storage, "north")
    assert ranked(answer) == [("ann", 1, 9.0, 25.0, 5)]
    assert answer.current.standings.ranked[0].entrant.profile.firstname == "Annie"


def test_a_deleted_trip_leaves_the_ranking_as_if_it_never_came(storage: Storage) -> None:
    apply(storage, user("ann"), *five_trips("ann", 9.0), trip("extra", "ann", km=100, safety=1.0))
    apply(storage, deletion("extra", "ann", arrived_at=T0 + timedelta(hours=1)))
    assert ranked(ranking(storage)) == [("ann", 1, 9.0, 25.0, 5)]


def test_duplicates_change_nothing(storage: Storage) -> None:
    events = [user("ann"), *five_trips("ann", 9.0)]
    apply(storage, *events)
    apply(storage, *events, *events)
    assert ranked(ranking(storage)) == [("ann", 1, 9.0, 25.0, 5)]


def test_a_conflicting_resend_of_a_trip_is_dead_lettered(storage: Storage) -> None:
    apply(storage, trip("t1", "ann", km=10))
    outcome = apply(storage, trip("t1", "ann", km=11))
    assert [d.rejection.reason for d in outcome.dead_lettered] == [
        "trip 't1' is already recorded with other figures"
    ]


def test_a_frozen_month_ignores_trips_and_deletions_that_arrive_late(storage: Storage) -> None:
    october = datetime(2026, 10, 20, tzinfo=UTC)
    late = datetime(2026, 11, 2, 0, 0, 1, tzinfo=UTC)
    apply(
        storage,
        user("ann"),
        *[trip(f"o{i}", "ann", km=5, safety=9.0, ended_at=october) for i in range(5)],
    )
    apply(
        storage,
        trip("late", "ann", km=50, safety=1.0, ended_at=october, arrived_at=late),
        deletion("o0", "ann", arrived_at=late),
    )
    previous = ranking(storage).previous.standings.ranked
    assert [(p.entrant.tally.trips, p.score_hundredths) for p in previous] == [(5, 900)]


def test_tenants_never_see_each_others_drivers(storage: Storage) -> None:
    apply(
        storage, user("ann", "north"), *five_trips("ann", 9.0), user("zed", "north", tenant="other")
    )
    assert not_ranked(ranking(storage, "north", tenant="other")) == ["zed"]
    with pytest.raises(InvalidGroupLabel):
        ranking(storage, "north", tenant="nobody")


def test_the_newest_profile_wins_whatever_the_arrival_order(storage: Storage) -> None:
    newer = user("ann", "south", at=T0 + timedelta(minutes=5))
    older = user("ann", "north", at=T0)
    apply(storage, newer)
    apply(storage, older)
    with pytest.raises(InvalidGroupLabel):
        ranking(storage, "north")
    assert not_ranked(ranking(storage, "south")) == ["ann"]
