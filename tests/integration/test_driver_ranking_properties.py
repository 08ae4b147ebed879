"""Incremental driver months equal a recomputation from all events, whatever the order: the
figures worked out exactly with fractions (`tests.reference`), over trips whose doubles have
many digits, tiny and huge distances included (docs/rules.md#exact-figures), and the
membership of frozen months as the profile versions that place each user say
(docs/rules.md#arrival-time-and-freezes), names today's."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.domain import events as ev
from service.domain.ranking import DriverMonth, Month, Profile
from service.domain.standings import Standings
from tests import profiles
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
from tests.reference import (
    MIN_KM,
    MIN_TRIPS,
    TRIP_KM,
    TRIP_SCORES,
    Figures,
    Standing,
    event_sightings,
    profiles_at_freeze,
    standings,
    todays_profiles,
)

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
        km, safety = draw(TRIP_KM), draw(TRIP_SCORES)
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


Listed = tuple[Standing, Profile]
"""A driver listed, with the names the answer shows."""


def recomputed(events: list[ev.Event], group: str, month: Month) -> list[Listed]:
    """The reference: rank from all events at once, in fractions (`tests.reference`); the
    group's members as the versions that place them say, names today's."""
    freeze = month.freezes_at(RULES.late_event_grace)
    current = todays_profiles(event_sightings(events))
    as_of = profiles_at_freeze(event_sightings(events), freeze) if freeze <= NOW else current
    members = [u for u, p in as_of.items() if not group or group in p.groups]
    figures = {
        user_id: f
        for user_id, f in _month_figures(events, month, freeze).items()
        if not group or user_id in members
    }
    listed = standings({u: Figures() for u in members} | figures, MIN_TRIPS, MIN_KM)
    return [(s, _names(current.get(s.user_id), s.user_id)) for s in listed]


def _names(profile: ev.UserUpserted | None, user_id: str) -> Profile:
    if profile is None:
        return Profile(user_id)  # a driver known only from their trips
    return Profile(user_id, profile.firstname, profile.lastname, profile.pseudo)


def _month_figures(events: list[ev.Event], month: Month, freeze: datetime) -> dict[str, Figures]:
    """Each driver's trips that ended in the month and count there: a trip's first figures,
    when it arrived before the freeze and no deletion of it did."""
    first: dict[str, ev.TripCompleted] = {}
    arrived: dict[str, datetime] = {}
    deleted: dict[str, datetime] = {}
    for e in sorted(events, key=lambda e: e.meta.arrived_at):
        if isinstance(e.payload, ev.TripCompleted):
            first.setdefault(e.payload.trip_id, e.payload)
            arrived.setdefault(e.payload.trip_id, e.meta.arrived_at)
        elif isinstance(e.payload, ev.TripDeleted):
            deleted.setdefault(e.payload.trip_id, e.meta.arrived_at)
    figures: dict[str, Figures] = {}
    for trip_id, t in first.items():
        gone = trip_id in deleted and deleted[trip_id] < freeze
        if Month.of(t.ended_at) == month and arrived[trip_id] < freeze and not gone:
            before = figures.get(t.user_id, Figures())
            figures[t.user_id] = before.with_trip(t.distance_km, t.scores.safety)
    return figures


def _known_groups(events: list[ev.Event]) -> set[str]:
    """The groups some profile version listed: a label stays known after its members left."""
    return {g for e in events if isinstance(e.payload, ev.UserUpserted) for g in e.payload.groups}


def _flatten(answer: Standings[DriverMonth]) -> list[Listed]:
    """Each driver listed, names included, with their rank (0: not ranked) and figures."""
    ranked = [
        (
            Standing(
                p.entrant.profile.user_id,
                p.rank,
                p.score_hundredths,
                p.entrant.tally.metres,
                p.entrant.tally.trips,
            ),
            p.entrant.profile,
        )
        for p in answer.ranked
    ]
    rest = [
        (
            Standing(d.profile.user_id, 0, d.tally.score_hundredths, d.tally.metres, d.tally.trips),
            d.profile,
        )
        for d in answer.not_ranked
    ]
    return ranked + rest


@settings(
    max_examples=profiles.examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
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
