"""Incremental per-registration tallies equal a recomputation from all events, in any order:
the figures worked out exactly with fractions (`tests.reference`), over trips whose doubles
have many digits, tiny and huge distances included (docs/rules.md#exact-figures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.domain import events as ev
from service.domain.challenges import score_hundredths
from service.domain.standings import Tally
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
from tests.reference import TRIP_KM, TRIP_SCORES, Figures

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
    answer = {e.user_id: (_as_figures(e.during), _as_figures(e.before)) for e, _ in rows}
    assert answer == expected(events)
    scores = {e.user_id: score_hundredths(stored, e.during) for e, _ in rows}
    distance = stored.theme is ev.ChallengeTheme.DISTANCE
    assert scores == {
        user: during.km_hundredths if distance else during.score_hundredths
        for user, (during, _) in answer.items()
    }
