"""Incremental per-registration tallies equal a recomputation from all events, in any order:
the figures worked out exactly with fractions (`tests.reference`), over trips whose doubles
have many digits, tiny and huge distances included (docs/rules.md#exact-figures); and a
group's ranking, progress and counters follow the membership the profile versions give it,
live or frozen (docs/rules.md#arrival-time-and-freezes)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import queries
from service.domain import events as ev
from service.domain.challenges import (
    Challenge,
    Entry,
    entry_from_trips,
    progress,
    rank_challenge,
    score_hundredths,
)
from service.domain.ranking import Profile
from service.domain.standings import Tally
from service.domain.trips import TripFacts
from tests import profiles
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
from tests.reference import (
    TRIP_KM,
    TRIP_SCORES,
    Figures,
    event_sightings,
    profiles_at_freeze,
    todays_profiles,
)

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
            km=draw(TRIP_KM),
            ended_at=ended,
            safety=draw(TRIP_SCORES),
            eco=draw(TRIP_SCORES),
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


def expected(events: list[ev.Event]) -> dict[str, tuple[Figures, Figures]]:
    """The reference: each registered user's trips during and before the challenge, in
    fractions."""
    publications = [e for e in events if isinstance(e.payload, ev.ChallengePublished)]
    newest = max(publications, key=lambda e: (e.meta.occurred_at, e.meta.event_id))
    challenge = newest.payload
    assert isinstance(challenge, ev.ChallengePublished)
    frozen = challenge.end_at + RULES.late_event_grace
    period = challenge.pre_challenge_period or challenge.end_at - challenge.start_at
    trips = _counted_trips(events, frozen)
    registrations: dict[str, tuple[datetime, datetime]] = {}
    for e in events:
        # Of a user's registrations that arrived before the freeze, the earliest counts.
        if isinstance(e.payload, ev.ChallengeRegistered) and e.meta.arrived_at < frozen:
            seen = (e.payload.registered_at, e.meta.arrived_at)
            registrations[e.payload.user_id] = min(registrations.get(e.payload.user_id, seen), seen)
    answer: dict[str, tuple[Figures, Figures]] = {}
    for user, (registered_at, _) in registrations.items():
        during, before = Figures(), Figures()
        for t in (t for t in trips if t.user_id == user):
            score = _theme_score(challenge.theme, t)
            if max(challenge.start_at, registered_at) <= t.ended_at < challenge.end_at:
                during = during.with_trip(t.distance_km, score)
            elif challenge.start_at - period <= t.ended_at < challenge.start_at:
                before = before.with_trip(t.distance_km, score)
        answer[user] = (during, before)
    return answer


def _counted_trips(events: list[ev.Event], frozen: datetime) -> list[ev.TripCompleted]:
    """Each trip as first recorded, when it arrived before the freeze and no deletion did."""
    first: dict[str, tuple[ev.TripCompleted, datetime]] = {}
    deleted: dict[str, datetime] = {}
    for e in sorted(events, key=lambda e: e.meta.arrived_at):
        if isinstance(e.payload, ev.TripCompleted):
            first.setdefault(e.payload.trip_id, (e.payload, e.meta.arrived_at))
        elif isinstance(e.payload, ev.TripDeleted):
            deleted.setdefault(e.payload.trip_id, e.meta.arrived_at)
    return [
        t
        for trip_id, (t, arrived) in first.items()
        if arrived < frozen and not (trip_id in deleted and deleted[trip_id] < frozen)
    ]


def _theme_score(theme: ev.ChallengeTheme, t: ev.TripCompleted) -> float | None:
    scores = {
        ev.ChallengeTheme.SAFETY: t.scores.safety,
        ev.ChallengeTheme.ECO_DRIVING: t.scores.eco_driving,
        ev.ChallengeTheme.DISTRACTION: t.scores.distraction,
        ev.ChallengeTheme.SPEEDING: t.scores.speeding,
    }
    return scores.get(theme)


def _as_figures(tally: Tally) -> Figures:
    return Figures(
        tally.trips, Fraction(tally.km), Fraction(tally.weighted), Fraction(tally.weight)
    )


@settings(
    max_examples=profiles.examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
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
    answer = {e.user_id: (_as_figures(e.during), _as_figures(e.before)) for e, _ in rows}
    assert answer == expected(events)
    scores = {e.user_id: score_hundredths(stored, e.during) for e, _ in rows}
    distance = stored.theme is ev.ChallengeTheme.DISTANCE
    assert scores == {
        user: during.km_hundredths if distance else during.score_hundredths
        for user, (during, _) in answer.items()
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


@settings(
    max_examples=profiles.examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
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
