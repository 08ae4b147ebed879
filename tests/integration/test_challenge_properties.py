"""Incremental per-registration tallies equal a recomputation from all events, in any order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.domain import events as ev
from service.domain.challenges import Challenge, entry_from_trips
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

USERS = ["u0", "u1", "u2"]
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


def expected(events: list[ev.Event]) -> dict[str, tuple[object, object]]:
    publications = [e for e in events if isinstance(e.payload, ev.ChallengePublished)]
    newest = max(publications, key=lambda e: (e.meta.occurred_at, e.meta.event_id))
    assert isinstance(newest.payload, ev.ChallengePublished)
    definition = Challenge.from_event(newest.payload)
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
    answer: dict[str, tuple[object, object]] = {}
    for user, (registered_at, _) in registrations.items():
        entry = entry_from_trips(
            definition, user, registered_at, trips.values(), RULES.late_event_grace
        )
        answer[user] = (entry.during, entry.before)
    return answer


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
    assert {e.user_id: (e.during, e.before) for e, _ in rows} == expected(events)
