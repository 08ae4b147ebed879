"""The replay section's records and its peer's fold: the trips it produces are what Podium
folds, the same in both envelopes, and the peer's dedupe counts each trip once per driver
(otherwise the figures beside Podium's would be for other work)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bench.peer import TOTALS, aggregate, fold_once
from bench.replay import BINARY, JSON_ENVELOPES, replay_trips
from consumers.decode import decode
from service.domain import events as ev
from service.domain.ranking import Month

NOW = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
ARRIVED_MS = int(NOW.timestamp() * 1000)


class DictState:
    """Quix's per-key state as the peer's functions use it."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def test_replayed_trips_end_over_last_month_and_this_one_and_decode_alike_in_both_envelopes() -> (
    None
):
    start = Month.of(NOW).previous().starts_at
    for envelope in replay_trips(200, 7, NOW):
        events = [
            decode("trips", encoding.encode(envelope), encoding.headers, ARRIVED_MS)
            for encoding in (BINARY, JSON_ENVELOPES)
        ]
        assert events[0] == events[1]
        event = events[0]
        assert isinstance(event, ev.Event)
        assert isinstance(event.payload, ev.TripCompleted)
        assert start <= event.payload.ended_at < NOW
        assert event.payload.scores.safety is not None


def test_replayed_trips_reach_both_months() -> None:
    months = {Month.of(e.trip_completed.ended_at.ToDatetime(UTC)) for e in replay_trips(50, 7, NOW)}
    assert months == {Month.of(NOW), Month.of(NOW - timedelta(days=2))}


trips = st.lists(st.tuples(st.integers(0, 20), st.integers(1, 30)), max_size=60)


@given(trips)
def test_the_peers_dedupe_counts_each_trip_once(records: list[tuple[int, int]]) -> None:
    state = DictState()
    for trip, km in records:
        fold_once({"tripCompleted": {"tripId": f"t{trip}", "distanceKm": km}}, state)
    first_km = {trip: km for trip, km in reversed(records)}
    assert state.get(TOTALS, (0, 0.0)) == (len(first_km), float(sum(first_km.values())))


@given(trips)
def test_the_peers_plain_aggregate_counts_every_record(records: list[tuple[int, int]]) -> None:
    state = DictState()
    for trip, km in records:
        aggregate({"tripCompleted": {"tripId": f"t{trip}", "distanceKm": km}}, state)
    assert state.get(TOTALS, (0, 0.0)) == (len(records), float(sum(km for _, km in records)))
