"""Incremental driver months equal a recomputation from all events, whatever the order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.domain import events as ev
from service.domain.events import ScoreKind
from service.domain.ranking import (
    DriverMonth,
    Month,
    Profile,
    drivers_of_month,
    rank_month,
    totals_from_trips,
)
from service.domain.standings import Standings
from service.domain.trips import TripFacts
from tests.builders import (
    RULES,
    apply,
    arrival_batches,
    deletion,
    driver_ranking,
    memory_storage,
    read,
    trip,
    user,
)
from tests.reference import event_sightings, profiles_at_freeze, todays_profiles

USERS = ["u0", "u1", "u2", "u3"]
GROUPS = ["g0", "g1"]
NOW = datetime(2026, 11, 20, tzinfo=UTC)
# Arrivals straddle October's freeze so that late trips and deletions are exercised.
ARRIVALS = st.integers(0, 12 * 24).map(
    lambda h: datetime(2026, 10, 28, tzinfo=UTC) + timedelta(hours=h)
)
AFTER_THE_FREEZE = st.integers(0, 7 * 24).map(
    lambda h: datetime(2026, 11, 2, tzinfo=UTC) + timedelta(hours=h)
)


@st.composite
def streams(draw: st.DrawFn) -> list[ev.Event]:
    events: list[ev.Event] = []
    for index in range(draw(st.integers(1, 14))):
        user_id = draw(st.sampled_from(USERS))
        ended = datetime(2026, 10, 25, tzinfo=UTC) + timedelta(hours=draw(st.integers(0, 24 * 12)))
        km = draw(st.integers(0, 40000)) / 1000
        safety = draw(st.none() | st.integers(0, 1000).map(lambda s: s / 100))
        arrival = max(draw(ARRIVALS), ended)
        completed = trip(
            f"t{index}", user_id, km=km, safety=safety, ended_at=ended, arrived_at=arrival
        )
        events.append(completed)
        if draw(st.booleans()):
            events.append(completed)  # a redelivery
        if draw(st.integers(0, 3)) == 0:
            events.append(deletion(f"t{index}", user_id, arrived_at=draw(ARRIVALS)))
    for user_id in USERS:
        # Versions straddle October's freeze too: its ranking keeps the membership of the
        # versions that arrived before it. A backfilled user's all arrive after it (their
        # first to arrive places them), and a version's own time need not follow its arrival.
        backfilled = draw(st.booleans())
        for _ in range(draw(st.integers(0, 3))):
            groups = draw(st.lists(st.sampled_from(GROUPS), unique=True))
            arrival = draw(AFTER_THE_FREEZE if backfilled else ARRIVALS)
            occurred = draw(st.sampled_from([arrival, draw(ARRIVALS)]))
            version = user(user_id, *groups, at=occurred, arrived_at=arrival)
            events.append(version)
            if draw(st.integers(0, 3)) == 0:  # a copy of the same version, arriving at another time
                copy = replace(version.meta, arrived_at=draw(ARRIVALS))
                events.append(replace(version, meta=copy))
    return events


def recomputed(events: list[ev.Event], group: str, month: Month) -> list[tuple[Profile, int, int]]:
    """The reference: rank from all events at once, by the rules alone."""
    trips: dict[str, TripFacts] = {}
    for e in sorted(
        (e for e in events if isinstance(e.payload, ev.TripCompleted)),
        key=lambda e: e.meta.arrived_at,
    ):
        assert isinstance(e.payload, ev.TripCompleted)
        trips.setdefault(e.payload.trip_id, TripFacts.from_event(e.payload, e.meta.arrived_at))
    for e in sorted(
        (e for e in events if isinstance(e.payload, ev.TripDeleted)),
        key=lambda e: e.meta.arrived_at,
    ):
        assert isinstance(e.payload, ev.TripDeleted)
        if e.payload.trip_id in trips:
            trips[e.payload.trip_id] = trips[e.payload.trip_id].deleted(e.meta.arrived_at)
    freeze = month.freezes_at(RULES.late_event_grace)
    current = todays_profiles(event_sightings(events))
    as_of = profiles_at_freeze(event_sightings(events), freeze) if freeze <= NOW else current
    members = [u for u, p in as_of.items() if not group or group in p.groups]
    totals = {
        user_id: t.tally(ScoreKind.SAFETY)
        for (user_id, m), t in totals_from_trips(trips.values(), RULES.late_event_grace).items()
        if m == month and (not group or user_id in members)
    }
    names = [current[u] for u in members]  # a frozen month's names are today's
    people = [Profile(p.user_id, p.firstname, p.lastname, p.pseudo) for p in names]
    standings = rank_month(drivers_of_month(people, totals), RULES.driver_thresholds)
    return _flatten(standings)


def _known_groups(events: list[ev.Event]) -> set[str]:
    """The groups some profile version listed: a label stays known after its members left."""
    return {g for e in events if isinstance(e.payload, ev.UserUpserted) for g in e.payload.groups}


def _flatten(standings: Standings[DriverMonth]) -> list[tuple[Profile, int, int]]:
    """Each driver listed, names included, with their rank (0: not ranked) and distance."""
    ranked = [(p.entrant.profile, p.rank, p.entrant.tally.metres) for p in standings.ranked]
    rest = [(d.profile, 0, d.tally.metres) for d in standings.not_ranked]
    return ranked + rest


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), data=st.data())
def test_incremental_state_equals_a_recomputation_in_any_arrival_order(
    events: list[ev.Event], data: st.DataObject
) -> None:
    batches = arrival_batches(data, events)
    with memory_storage() as storage:
        for batch in batches:
            apply(storage, *batch)
        with read(storage) as reading:
            for group in ["", *sorted(_known_groups(events))]:
                answer = driver_ranking(reading, "acme", ev.ScoreKind.SAFETY, group, NOW, RULES)
                for ranking in (answer.current, answer.previous):
                    assert _flatten(ranking.standings) == recomputed(events, group, ranking.month)
