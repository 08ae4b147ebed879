"""Driver ranking through the ingest and query use cases, on the fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.domain import events as ev
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
from tests.fakes import FakePorts


def ranking(
    ports: FakePorts,
    group: str = "",
    *,
    now: datetime = T0,
    tenant: str = "acme",
    kind: ScoreKind = ScoreKind.SAFETY,
) -> DriverRanking:
    with read(ports) as reading:
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


def five_trips(
    user_id: str, safety: float, km: float = 5.0, prefix: str = "", ended_at: datetime = T0
) -> list[ev.Event]:
    return [
        trip(f"{prefix}{user_id}-{i}", user_id, km=km, safety=safety, ended_at=ended_at)
        for i in range(5)
    ]


def test_drivers_need_five_trips_and_twenty_km_to_be_ranked(ports: FakePorts) -> None:
    apply(
        ports,
        user("ann"),
        user("bob"),
        user("cyd"),
        *five_trips("ann", 9.0),
        *five_trips("bob", 8.0, km=3.0),
        *five_trips("cyd", 7.0)[:4],
    )
    answer = ranking(ports)
    assert ranked(answer) == [("ann", 1, 9.0, 25.0, 5)]
    assert not_ranked(answer) == ["cyd", "bob"]
    assert answer.current.month.number == 11
    assert answer.current.month.year == 2026
    assert answer.previous.month.number == 10


def test_a_group_ranking_lists_only_the_group_and_every_member_without_trips(
    ports: FakePorts,
) -> None:
    apply(
        ports,
        user("ann", "north"),
        user("bob", "south"),
        user("dee", "north"),
        *five_trips("ann", 9.0),
        *five_trips("bob", 9.5),
    )
    answer = ranking(ports, "north")
    assert [r[0] for r in ranked(answer)] == ["ann"]
    assert not_ranked(answer) == ["dee"]


def test_an_unknown_group_is_refused(ports: FakePorts) -> None:
    apply(ports, user("ann", "north"))
    with pytest.raises(InvalidGroupLabel):
        ranking(ports, "atlantis")


def test_a_trip_before_its_drivers_profile_counts_once_the_profile_comes(ports: FakePorts) -> None:
    apply(ports, *five_trips("ann", 9.0))
    assert ranked(ranking(ports))[0][0] == "ann"
    apply(ports, user("ann", "north", firstname="Annie"))
    answer = ranking(ports, "north")
    assert ranked(answer) == [("ann", 1, 9.0, 25.0, 5)]
    assert answer.current.standings.ranked[0].entrant.profile.firstname == "Annie"


def test_a_deleted_trip_leaves_the_ranking_as_if_it_never_came(ports: FakePorts) -> None:
    apply(ports, user("ann"), *five_trips("ann", 9.0), trip("extra", "ann", km=100, safety=1.0))
    apply(ports, deletion("extra", "ann", arrived_at=T0 + timedelta(hours=1)))
    assert ranked(ranking(ports)) == [("ann", 1, 9.0, 25.0, 5)]


def test_duplicates_change_nothing(ports: FakePorts) -> None:
    events = [user("ann"), *five_trips("ann", 9.0)]
    apply(ports, *events)
    apply(ports, *events, *events)
    assert ranked(ranking(ports)) == [("ann", 1, 9.0, 25.0, 5)]


def test_a_conflicting_resend_of_a_trip_is_dead_lettered(ports: FakePorts) -> None:
    apply(ports, trip("t1", "ann", km=10))
    outcome = apply(ports, trip("t1", "ann", km=11))
    assert [d.rejection.reason for d in outcome.dead_lettered] == [
        "trip 't1' is already recorded with other figures"
    ]


def test_a_frozen_month_ignores_trips_and_deletions_that_arrive_late(ports: FakePorts) -> None:
    october = datetime(2026, 10, 20, tzinfo=UTC)
    late = datetime(2026, 11, 2, 0, 0, 1, tzinfo=UTC)
    apply(
        ports,
        user("ann"),
        *[trip(f"o{i}", "ann", km=5, safety=9.0, ended_at=october) for i in range(5)],
    )
    apply(
        ports,
        trip("late", "ann", km=50, safety=1.0, ended_at=october, arrived_at=late),
        deletion("o0", "ann", arrived_at=late),
    )
    previous = ranking(ports).previous.standings.ranked
    assert [(p.entrant.tally.trips, p.score_hundredths) for p in previous] == [(5, 900)]


def test_tenants_never_see_each_others_drivers(ports: FakePorts) -> None:
    apply(
        ports, user("ann", "north"), *five_trips("ann", 9.0), user("zed", "north", tenant="other")
    )
    assert not_ranked(ranking(ports, "north", tenant="other")) == ["zed"]
    with pytest.raises(InvalidGroupLabel):
        ranking(ports, "north", tenant="nobody")


def test_the_newest_profile_wins_whatever_the_arrival_order(ports: FakePorts) -> None:
    newer = user("ann", "south", at=T0 + timedelta(minutes=5))
    older = user("ann", "north", at=T0)
    apply(ports, newer)
    apply(ports, older)
    assert not_ranked(ranking(ports, "north")) == []  # a label once listed stays known
    assert not_ranked(ranking(ports, "south")) == ["ann"]


def test_a_frozen_month_keeps_the_membership_it_had_when_it_froze(ports: FakePorts) -> None:
    """October freezes on November 2nd (its end plus the grace): a driver who moved from
    west to east after that stays in October's west ranking, and is in November's east."""
    october = datetime(2026, 10, 10, tzinfo=UTC)
    apply(
        ports,
        user("ann", "west", at=october, firstname="Ann"),
        user("bob", "west", at=october),
        *five_trips("ann", 9.0, prefix="oct-", ended_at=october),
        *five_trips("bob", 8.0, prefix="oct-", ended_at=october),
    )
    apply(ports, user("ann", "east", at=T0, firstname="Annie"))
    west, east = ranking(ports, "west"), ranking(ports, "east")
    assert [p.entrant.profile.user_id for p in west.previous.standings.ranked] == ["ann", "bob"]
    assert west.previous.standings.ranked[0].entrant.profile.firstname == "Annie"  # names: today's
    assert [d.profile.user_id for d in west.current.standings.not_ranked] == ["bob"]
    assert [d.profile.user_id for d in east.current.standings.not_ranked] == ["ann"]
    assert east.previous.standings.ranked == ()


def test_a_driver_first_heard_of_after_the_freeze_joins_the_frozen_month_by_their_first_profile(
    ports: FakePorts,
) -> None:
    """A catalog backfilled after October froze (November 2nd): Ann's October trips count in
    the group her first profile names, with today's names, and a later move keeps October as
    it was; the tenant-wide October lists her by name too."""
    october = datetime(2026, 10, 10, tzinfo=UTC)
    apply(ports, *five_trips("ann", 9.0, prefix="oct-", ended_at=october))
    apply(ports, user("ann", "north", at=october, arrived_at=T0, firstname="Ann"))
    apply(
        ports,
        user("ann", "south", at=T0, arrived_at=T0 + timedelta(hours=1), firstname="Annie"),
    )
    north, south, everyone = ranking(ports, "north"), ranking(ports, "south"), ranking(ports)
    [last_north] = north.previous.standings.ranked
    assert (last_north.entrant.profile.user_id, last_north.entrant.profile.firstname) == (
        "ann",
        "Annie",
    )
    assert south.previous.standings.ranked == ()
    assert [d.profile.user_id for d in south.current.standings.not_ranked] == ["ann"]
    assert north.current.standings.not_ranked == ()
    [last_everyone] = everyone.previous.standings.ranked
    assert last_everyone.entrant.profile == last_north.entrant.profile


def test_a_frozen_months_tenant_ranking_names_every_driver_whose_profile_exists(
    ports: FakePorts,
) -> None:
    """Names never empty when a profile exists; a driver known only from trips is listed
    without names."""
    october = datetime(2026, 10, 10, tzinfo=UTC)
    apply(
        ports,
        *five_trips("ann", 9.0, prefix="oct-", ended_at=october),
        *five_trips("bob", 8.0, prefix="oct-", ended_at=october),
        user("ann", at=T0, firstname="Ann"),
        user("cyd", at=T0, firstname="Cyd"),
    )
    previous = ranking(ports).previous.standings
    assert [(p.entrant.profile.user_id, p.entrant.profile.firstname) for p in previous.ranked] == [
        ("ann", "Ann"),
        ("bob", ""),
    ]
    assert [(d.profile.user_id, d.profile.firstname) for d in previous.not_ranked] == [
        ("cyd", "Cyd")
    ]
