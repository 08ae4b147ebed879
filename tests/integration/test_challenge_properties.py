"""Incremental per-registration tallies equal a recomputation from all events, in any order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import queries
from service.domain import events as ev
from service.domain.challenges import Challenge, Entry, entry_from_trips, progress, rank_challenge
from service.domain.ranking import Profile
from service.domain.trips import TripFacts
from tests.builders import (
    RULES,
    apply,
    arrival_batches,
    challenge,
    deletion,
    memory_storage,
    read,
    registration,
    trip,
)
from tests.builders import user as profile
from tests.reference import event_sightings, profiles_at_freeze, todays_profiles

USERS = ["u0", "u1", "u2"]
GROUPS = ["g0", "g1"]
BASE = datetime(2026, 10, 20, tzinfo=UTC)
HOURS = st.integers(0, 24 * 30).map(lambda h: BASE + timedelta(hours=h))


@st.composite
def streams(draw: st.DrawFn) -> list[ev.Event]:
    events: list[ev.Event] = []
    for version in range(draw(st.integers(1, 2))):
        start = BASE + timedelta(days=draw(st.integers(3, 10)))
        end = start + timedelta(days=draw(st.integers(1, 8)))
        theme = draw(st.sampled_from(list(ev.ChallengeTheme)))
        # Publications arrive before any freeze: a late one is ignored by rule, not by order.
        events.append(
            challenge(
                "c1",
                start=start,
                end=end,
                theme=theme,
                at=BASE + timedelta(minutes=version),
                arrived_at=BASE,
            )
        )
    for user in USERS:
        for _ in range(draw(st.integers(0, 2))):
            events.append(
                registration("c1", user, registered_at=draw(HOURS), arrived_at=draw(HOURS))
            )
    for index in range(draw(st.integers(0, 12))):
        user = draw(st.sampled_from(USERS))
        ended = draw(HOURS)
        completed = trip(
            f"t{index}",
            user,
            km=draw(st.integers(0, 30)),
            ended_at=ended,
            safety=draw(st.none() | st.integers(0, 10).map(float)),
            arrived_at=max(ended, draw(HOURS)),
        )
        events.append(completed)
        if draw(st.booleans()):
            events.append(deletion(f"t{index}", user, arrived_at=draw(HOURS)))
    return events


def published(events: list[ev.Event]) -> Challenge:
    """The challenge as its newest publication defines it."""
    publications = [e for e in events if isinstance(e.payload, ev.ChallengePublished)]
    newest = max(publications, key=lambda e: (e.meta.occurred_at, e.meta.event_id))
    assert isinstance(newest.payload, ev.ChallengePublished)
    return Challenge.from_event(newest.payload)


def expected_entries(events: list[ev.Event]) -> list[Entry]:
    """Each registration that counts, with its tallies recomputed from every trip."""
    definition = published(events)
    frozen = definition.freezes_at(RULES.late_event_grace)
    trips: dict[str, TripFacts] = {}
    for e in sorted(events, key=lambda e: e.meta.arrived_at):
        if isinstance(e.payload, ev.TripCompleted):
            trips.setdefault(e.payload.trip_id, TripFacts.from_event(e.payload, e.meta.arrived_at))
    for e in sorted(events, key=lambda e: e.meta.arrived_at):
        if isinstance(e.payload, ev.TripDeleted) and e.payload.trip_id in trips:
            trips[e.payload.trip_id] = trips[e.payload.trip_id].deleted(e.meta.arrived_at)
    registrations: dict[str, tuple[datetime, datetime]] = {}
    for e in events:
        # Of a user's registrations that arrived before the freeze, the earliest counts.
        if isinstance(e.payload, ev.ChallengeRegistered) and e.meta.arrived_at < frozen:
            seen = (e.payload.registered_at, e.meta.arrived_at)
            registrations[e.payload.user_id] = min(registrations.get(e.payload.user_id, seen), seen)
    return [
        entry_from_trips(definition, user, registered_at, trips.values(), RULES.late_event_grace)
        for user, (registered_at, _) in registrations.items()
    ]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), data=st.data())
def test_incremental_tallies_equal_a_recomputation_in_any_arrival_order(
    events: list[ev.Event], data: st.DataObject
) -> None:
    batches = arrival_batches(data, events)
    with memory_storage() as storage:
        for batch in batches:
            apply(storage, *batch)
        with read(storage) as reading:
            stored = reading.challenge("acme", "c1")
            assert stored is not None
            frozen = stored.freezes_at(RULES.late_event_grace)
            rows = reading.challenge_entries("acme", "c1", frozen, None)
    assert {e.user_id: (e.during, e.before) for e, _ in rows} == {
        e.user_id: (e.during, e.before) for e in expected_entries(events)
    }


@st.composite
def streams_with_groups(draw: st.DrawFn) -> list[ev.Event]:
    """A stream as above, with the users' profile versions: some arrive before the challenge
    froze, some after (a user moving, or first heard of then), in any order of their own
    times; some twice, at two arrival times."""
    events = draw(streams())
    groups = draw(st.sampled_from([(), tuple(GROUPS)]))
    events = [
        replace(e, payload=replace(e.payload, groups=groups))
        if isinstance(e.payload, ev.ChallengePublished)
        else e
        for e in events
    ]
    frozen = published(events).freezes_at(RULES.late_event_grace)
    after_the_freeze = st.integers(0, 24 * 7).map(lambda h: frozen + timedelta(hours=h))
    for user_id in USERS:
        backfilled = draw(st.booleans())
        for _ in range(draw(st.integers(0, 3))):
            arrival = draw(after_the_freeze if backfilled else HOURS)
            occurred = draw(st.sampled_from([arrival, draw(HOURS)]))
            labels = draw(st.lists(st.sampled_from(GROUPS), unique=True))
            version = profile(user_id, *labels, at=occurred, arrived_at=arrival)
            events.append(version)
            if draw(st.integers(0, 3)) == 0:
                events.append(replace(version, meta=replace(version.meta, arrived_at=draw(HOURS))))
    return events


def member_entries(events: list[ev.Event], group: str, now: datetime) -> list[Entry]:
    """The registrations of the group's members: today's, or, once the challenge froze, as
    it froze (the reference of tests/reference.py, in its own words)."""
    entries = expected_entries(events)
    if not group:
        return entries
    frozen = published(events).freezes_at(RULES.late_event_grace)
    seen = event_sightings(events)
    profiles = profiles_at_freeze(seen, frozen) if now >= frozen else todays_profiles(seen)
    return [e for e in entries if e.user_id in profiles and group in profiles[e.user_id].groups]


def todays_names(events: list[ev.Event], entries: list[Entry]) -> dict[str, Profile]:
    """The names of registered users: from their newest profile; without one, none."""
    today = todays_profiles(event_sightings(events))
    return {
        e.user_id: Profile(e.user_id)
        if (p := today.get(e.user_id)) is None
        else Profile(e.user_id, p.firstname, p.lastname, p.pseudo)
        for e in entries
    }


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams_with_groups(), data=st.data())
def test_a_groups_ranking_progress_and_counters_equal_a_recomputation_in_any_arrival_order(
    events: list[ev.Event], data: st.DataObject
) -> None:
    """Live, the group is today's members; frozen, its members as it froze, users first
    heard of later placed by their first profile."""
    batches = arrival_batches(data, events)
    definition = published(events)
    frozen = definition.freezes_at(RULES.late_event_grace)
    known = {g for e in events if isinstance(e.payload, ev.UserUpserted) for g in e.payload.groups}
    groups = ["", *sorted(definition.groups or known)]
    with memory_storage() as storage:
        for batch in batches:
            apply(storage, *batch)
        for now in (frozen - timedelta(hours=1), frozen + timedelta(days=9)):
            for group in groups:
                with read(storage) as reading:
                    answer = queries.challenge_ranking(reading, "acme", "c1", group, now, RULES)
                entries = member_entries(events, group, now)
                assert answer.registered == len(entries)
                assert answer.profiles == todays_names(events, entries)
                assert answer.standings == rank_challenge(definition, entries)
                if definition.theme is ev.ChallengeTheme.DISTANCE or now < frozen:
                    continue
                with read(storage) as reading:
                    shown = queries.challenge_progress(reading, "acme", "c1", group, now, RULES)
                assert shown.progress == progress(definition, entries, now)
