"""The quick test of an ordinary trip never passes a trip the full checks refuse."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from service.domain import events as ev
from service.domain.bounds import ID_MAX_BYTES, TENANT_ID_MAX_LENGTH
from service.domain.validation import SHORT_ID, plainly_sound_trip, problem_with

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
wild_moments = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2300, 1, 1), timezones=st.just(UTC)
)
wild_ids = st.one_of(
    st.text(min_size=0, max_size=4),
    st.text(alphabet="a\x00é😀", min_size=SHORT_ID - 2, max_size=SHORT_ID + 2),
    st.text(alphabet="a😀", min_size=ID_MAX_BYTES // 4 - 1, max_size=TENANT_ID_MAX_LENGTH + 30),
)
wild_numbers = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1, 10_001)
wild_scores = st.none() | wild_numbers | st.floats(-0.5, 10.5)


def ordinary() -> ev.Event:
    trip = ev.TripCompleted("t1", "ann", NOW - timedelta(minutes=20), NOW, 12.5, ev.Scores(7.5))
    return ev.Event(ev.Meta("acme", "e1", NOW, NOW), trip)


META_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "tenant_id": wild_ids,
    "event_id": wild_ids,
    "occurred_at": wild_moments,
    "arrived_at": wild_moments,
}
TRIP_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "trip_id": wild_ids,
    "user_id": wild_ids,
    "started_at": wild_moments,
    "ended_at": wild_moments,
    "distance_km": wild_numbers,
    "scores": st.builds(ev.Scores, wild_scores, wild_scores, wild_scores, wild_scores),
}


@st.composite
def trips(draw: st.DrawFn) -> ev.Event:
    """An ordinary trip with none, one or two of its fields wild."""
    event = ordinary()
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from([*META_FIELDS, *TRIP_FIELDS]))
        if field in META_FIELDS:
            meta = replace(event.meta, **{field: draw(META_FIELDS[field])})
            event = ev.Event(meta, event.payload)
        else:
            trip = replace(event.payload, **{field: draw(TRIP_FIELDS[field])})
            event = ev.Event(event.meta, trip)
    return event


@given(trips())
def test_the_quick_test_passes_only_trips_every_check_passes(event: ev.Event) -> None:
    if plainly_sound_trip(event):
        assert problem_with(event, quick=False) is None
    assert problem_with(event) == problem_with(event, quick=False)


def test_an_ordinary_trip_takes_the_quick_test() -> None:
    assert plainly_sound_trip(ordinary())
