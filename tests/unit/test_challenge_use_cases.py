"""Challenges through the ingest and query use cases, on the fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.app import queries
from service.domain.errors import (
    InvalidGroupLabel,
    NotApplicableForChallenge,
    NotFound,
    ProgressNotAvailable,
)
from service.domain.events import ChallengeTheme
from tests.builders import RULES, apply, challenge, deletion, read, registration, trip, user
from tests.fakes import FakePorts

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 8, tzinfo=UTC)
AFTER = END + timedelta(days=2)
PUBLISHED = START - timedelta(days=10)
REPUBLISHED = START + timedelta(days=1)


def ranking(
    ports: FakePorts, group: str = "", tenant: str = "acme", now: datetime = AFTER
) -> queries.ChallengeRanking:
    with read(ports) as reading:
        return queries.challenge_ranking(reading, tenant, "c1", group, now, RULES)


def ranked(ports: FakePorts, group: str = "") -> list[tuple[str, int, int, float]]:
    return [
        (p.entrant.user_id, p.rank, p.entrant.during.trips, p.score_hundredths / 100)
        for p in ranking(ports, group).standings.ranked
    ]


def progress(ports: FakePorts, now: datetime = AFTER, group: str = "") -> queries.ChallengeProgress:
    with read(ports) as reading:
        return queries.challenge_progress(reading, "acme", "c1", group, now, RULES)


def week_trips(user_id: str, safety: float, count: int = 2, *, day: int = 2) -> list:  # type: ignore[type-arg]
    return [
        trip(
            f"{user_id}-{day}-{i}",
            user_id,
            safety=safety,
            ended_at=START + timedelta(days=day, hours=i),
        )
        for i in range(count)
    ]


def history(user_id: str, safety: float, count: int = 10) -> list:  # type: ignore[type-arg]
    return [
        trip(f"{user_id}-h{i}", user_id, safety=safety, ended_at=START - timedelta(days=1, hours=i))
        for i in range(count)
    ]


def test_trips_already_consumed_count_for_a_later_registration_and_publication(
    ports: FakePorts,
) -> None:
    apply(ports, user("ann"), user("bob"), *week_trips("ann", 9.0), *week_trips("bob", 7.0))
    apply(
        ports,
        registration("c1", "ann", registered_at=START),
        registration("c1", "bob", registered_at=START),
    )
    apply(ports, challenge("c1", start=START, end=END))
    assert ranked(ports) == [("ann", 1, 2, 9.0), ("bob", 2, 2, 7.0)]


def test_the_registration_date_bounds_the_counted_trips(ports: FakePorts) -> None:
    apply(
        ports,
        challenge("c1", start=START, end=END),
        *week_trips("ann", 9.0, day=1),
        *week_trips("ann", 5.0, day=4),
        registration("c1", "ann", registered_at=START + timedelta(days=3)),
    )
    assert ranked(ports) == [("ann", 1, 2, 5.0)]


def test_trips_after_the_registration_are_added_incrementally(ports: FakePorts) -> None:
    apply(
        ports,
        challenge("c1", start=START, end=END),
        registration("c1", "ann", registered_at=START),
    )
    apply(ports, *week_trips("ann", 8.0))
    apply(ports, trip("late-one", "ann", safety=2.0, ended_at=START + timedelta(days=5)))
    assert ranked(ports) == [("ann", 1, 3, 6.0)]
    apply(ports, deletion("late-one", "ann", arrived_at=START + timedelta(days=5)))
    assert ranked(ports) == [("ann", 1, 2, 8.0)]


def test_a_republished_challenge_recomputes_what_it_changes(ports: FakePorts) -> None:
    apply(
        ports,
        challenge("c1", start=START, end=END, at=PUBLISHED),
        registration("c1", "ann", registered_at=START - timedelta(days=3)),
        *week_trips("ann", 9.0),
        *history("ann", 4.0, 2),
    )
    assert ranked(ports) == [("ann", 1, 2, 9.0)]
    apply(
        ports,
        challenge("c1", start=START - timedelta(days=3), end=END, at=REPUBLISHED),
    )
    assert ranked(ports) == [("ann", 1, 4, 6.5)]


def test_the_challenge_freezes_at_its_end_plus_the_grace(ports: FakePorts) -> None:
    frozen = END + RULES.late_event_grace
    apply(
        ports,
        challenge("c1", start=START, end=END),
        registration("c1", "ann", registered_at=START),
        *week_trips("ann", 8.0),
    )
    apply(
        ports,
        trip("too-late", "ann", safety=1.0, ended_at=START + timedelta(days=6), arrived_at=frozen),
        deletion("ann-2-0", "ann", arrived_at=frozen),
        registration("c1", "bob", registered_at=START, arrived_at=frozen),
    )
    assert ranked(ports) == [("ann", 1, 2, 8.0)]
    assert ranking(ports).registered == 1


def test_progress_compares_with_the_pre_challenge_window(ports: FakePorts) -> None:
    apply(
        ports,
        user("ann", "north", firstname="Ann", at=PUBLISHED),
        user("bob", "north", at=PUBLISHED),
        user("cyd", "south", at=PUBLISHED),
        challenge("c1", start=START, end=END, groups=("north", "south")),
        *(registration("c1", u, registered_at=START) for u in ("ann", "bob", "cyd")),
        *week_trips("ann", 9.0),
        *history("ann", 6.0),
        *week_trips("bob", 7.0),
        *history("bob", 6.5),
        *week_trips("cyd", 9.5),
        *history("cyd", 3.0, count=3),
    )
    answer = progress(ports).progress
    assert [(line.entry.user_id, line.evolution_hundredths / 100) for line in answer.users] == [
        ("ann", 3.0),
        ("bob", 0.5),
    ]
    assert (answer.registered_users, answer.ranked_users, answer.users_with_data_before) == (
        3,
        3,
        2,
    )
    assert (answer.total_trips, answer.total_metres) == (6, 60_000)
    north = progress(ports, group="north").progress
    assert north.registered_users == 2
    with pytest.raises(InvalidGroupLabel):
        progress(ports, group="west")


def test_progress_waits_for_the_end_and_never_applies_to_distance(ports: FakePorts) -> None:
    apply(ports, challenge("c1", start=START, end=END, at=PUBLISHED))
    with pytest.raises(ProgressNotAvailable) as early:
        progress(ports, now=END - timedelta(minutes=1))
    assert early.value.available_at == END
    apply(
        ports,
        challenge(
            "c1",
            start=START,
            end=END,
            theme=ChallengeTheme.DISTANCE,
            at=START + timedelta(minutes=1),
        ),
    )
    with pytest.raises(NotApplicableForChallenge):
        progress(ports, now=END - timedelta(minutes=1))


def test_another_tenants_challenge_is_not_found(ports: FakePorts) -> None:
    apply(ports, challenge("c1", start=START, end=END, tenant="other"))
    with pytest.raises(NotFound) as missing:
        ranking(ports)
    assert missing.value.reason == "challenge_not_found"


def test_a_publication_arriving_after_the_freeze_changes_nothing(ports: FakePorts) -> None:
    apply(ports, challenge("c1", start=START, end=END, at=PUBLISHED))
    apply(
        ports,
        challenge("c1", start=START, end=END + timedelta(days=30), at=END + timedelta(days=3)),
    )
    assert ranking(ports).challenge.end_at == END


def test_a_registration_arriving_after_the_freeze_changes_nothing_and_is_listed(
    ports: FakePorts,
) -> None:
    """A duplicate registration dated earlier but arriving late must not replace the one
    that counted: the user would vanish from the frozen challenge."""
    frozen = END + RULES.late_event_grace
    apply(
        ports,
        challenge("c1", start=START, end=END, at=PUBLISHED),
        registration("c1", "ann", registered_at=START + timedelta(days=1)),
        *week_trips("ann", 8.0),
    )
    before = ranking(ports)
    late = apply(
        ports,
        registration("c1", "ann", registered_at=START - timedelta(days=1), arrived_at=frozen),
        registration("c1", "bob", registered_at=START, arrived_at=frozen + timedelta(hours=1)),
    )
    assert ranking(ports) == before
    assert [(i.kind, i.tenant_id) for i in late.ignored] == [("after_freeze", "acme")] * 2


def test_of_registrations_arriving_in_time_the_earliest_counts_in_any_order(
    ports: FakePorts,
) -> None:
    later, earlier = START + timedelta(days=2), START
    apply(ports, registration("c1", "ann", registered_at=later), *week_trips("ann", 8.0))
    apply(ports, challenge("c1", start=START, end=END, at=PUBLISHED))
    apply(ports, registration("c1", "ann", registered_at=earlier))
    entry = ranking(ports).standings.ranked[0].entrant
    assert (entry.registered_at, entry.during.trips) == (earlier, 2)


def test_a_frozen_challenges_group_is_its_members_when_it_froze(ports: FakePorts) -> None:
    frozen = END + RULES.late_event_grace
    apply(
        ports,
        user("ann", "north", at=PUBLISHED),
        user("bob", "north", at=PUBLISHED),
        challenge("c1", start=START, end=END, at=PUBLISHED),
        *(registration("c1", u, registered_at=START) for u in ("ann", "bob")),
        *week_trips("ann", 9.0),
        *week_trips("bob", 7.0),
    )
    apply(ports, user("bob", "south", at=frozen + timedelta(days=1)))  # moved after the freeze
    north = [p.entrant.user_id for p in ranking(ports, "north").standings.ranked]
    assert north == ["ann", "bob"]
    live = ranking(ports, "north", now=START + timedelta(days=3))
    assert [p.entrant.user_id for p in live.standings.ranked] == ["ann"]


def test_a_frozen_challenges_group_places_a_user_first_heard_of_later_by_their_first_profile(
    ports: FakePorts,
) -> None:
    """Profiles backfilled after the freeze: Bob's first one (north) places him, a later move
    (south) does not; ranking, progress and counters of the group agree, names are today's."""
    frozen = END + RULES.late_event_grace
    apply(
        ports,
        user("ann", "north", at=PUBLISHED),
        challenge("c1", start=START, end=END, at=PUBLISHED, pre_min_trips=2),
        *(registration("c1", u, registered_at=START) for u in ("ann", "bob")),
        *week_trips("ann", 9.0),
        *week_trips("bob", 7.0),
        *history("ann", 8.0, 2),
        *history("bob", 5.0, 2),
    )
    later = frozen + timedelta(days=1)
    apply(ports, user("bob", "north", at=PUBLISHED, arrived_at=later, firstname="Bob"))
    moved = later + timedelta(hours=1)
    apply(ports, user("bob", "south", at=moved, arrived_at=moved, firstname="Robert"))
    north = ranking(ports, "north")
    assert [p.entrant.user_id for p in north.standings.ranked] == ["ann", "bob"]
    assert north.profiles["bob"].firstname == "Robert"
    assert ranking(ports, "south").standings.ranked == ()
    north_progress = progress(ports, now=moved, group="north")
    assert north_progress.progress.registered_users == 2
    assert north_progress.progress.ranked_users == 2
    assert north_progress.progress.users_with_data_before == 2
    assert north_progress.progress.total_trips == 4
    assert [line.entry.user_id for line in north_progress.progress.users] == ["bob", "ann"]
    assert progress(ports, now=moved, group="south").progress.registered_users == 0
