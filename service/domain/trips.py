"""A trip as the rules see it, and when it counts toward a frozen window
(docs/rules.md#arrival-time-and-freezes, docs/rules.md#re-sent-events-and-convergence).

Every window (a month of the driver ranking, a challenge) freezes at a moment fixed by its end
plus the late-event grace. Whether a trip counts in it depends only on when the trip and its
deletion *arrived* (their Kafka record times), compared with that moment. Because the answer
does not depend on the order in which events are processed, incremental state equals a
recomputation from all events.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from service.domain.events import SCORE_POSITION, ScoreKind, TripCompleted
from service.domain.exact import exact
from service.domain.frozen import frozen
from service.domain.standings import EMPTY_TALLY, Tally, trip_tally

Doubles = tuple[float | None, float | None, float | None, float | None]
"""A trip's scores as its producer sent them, in `SCORE_KINDS` order."""


@frozen
class TripFacts:
    """A trip as recorded: its figures are the producer's doubles, kept as sent (and stored
    as sent); the rules read them as the exact decimals they stand for (`km`, `score_of`;
    docs/rules.md#exact-figures)."""

    trip_id: str
    user_id: str
    ended_at: datetime
    distance_km: float
    scores: Doubles
    arrived_at: datetime
    deleted_arrived_at: datetime | None = None

    @classmethod
    def from_event(cls, event: TripCompleted, arrived_at: datetime) -> TripFacts:
        scores = event.scores  # in_kind_order, inline: once per trip folded
        return cls(
            event.trip_id,
            event.user_id,
            event.ended_at,
            event.distance_km,
            (scores.safety, scores.eco_driving, scores.distraction, scores.speeding),
            arrived_at,
        )

    @property
    def km(self) -> Decimal:
        return exact(self.distance_km)

    def score_of(self, kind: ScoreKind) -> Decimal | None:
        score = self.scores[SCORE_POSITION[kind]]
        return None if score is None else exact(score)

    def tally(self, kind: ScoreKind | None) -> Tally:
        """This trip's tally for one score (None: distance only)."""
        return trip_tally(self.km, None if kind is None else self.score_of(kind))

    def same_trip_as(self, other: TripFacts) -> bool:
        """Same recorded content, whatever arrived when (a re-sent trip): the same user, end
        and figures (equal doubles are equal decimals)."""
        return (self.user_id, self.ended_at, self.distance_km, self.scores) == (
            other.user_id,
            other.ended_at,
            other.distance_km,
            other.scores,
        )

    def deleted(self, arrived_at: datetime) -> TripFacts:
        """The trip once a deletion arriving at `arrived_at` is known (the earliest one wins)."""
        if self.deleted_arrived_at is not None and self.deleted_arrived_at <= arrived_at:
            return self
        return replace(self, deleted_arrived_at=arrived_at)


def counts_by(trip: TripFacts, freeze_at: datetime) -> bool:
    """The trip arrived before the freeze and no deletion of it arrived before the freeze."""
    deleted_in_time = trip.deleted_arrived_at is not None and trip.deleted_arrived_at < freeze_at
    return trip.arrived_at < freeze_at and not deleted_in_time


def counted_tally(trip: TripFacts | None, kind: ScoreKind | None, freeze_at: datetime) -> Tally:
    if trip is None or not counts_by(trip, freeze_at):
        return EMPTY_TALLY
    return trip.tally(kind)


@frozen
class Tombstone:
    """A deletion seen before (or instead of) its trip."""

    trip_id: str
    user_id: str
    deleted_arrived_at: datetime


StoredTrip = TripFacts | Tombstone


class TripConflict(ValueError):
    """An event contradicts what is recorded of the trip; it is dead-lettered."""


def after_completed(
    before: StoredTrip | None, event: TripCompleted, arrived_at: datetime
) -> StoredTrip:
    """The trip once `event` is folded. A trip is immutable: the same figures re-sent change
    nothing, other figures for a recorded trip are a conflict."""
    facts = TripFacts.from_event(event, arrived_at)
    if before is None:  # most of a replay: a trip seen for the first time
        return facts
    if isinstance(before, Tombstone):
        _same_user(before, event.user_id)
        return replace(facts, deleted_arrived_at=before.deleted_arrived_at)
    if not before.same_trip_as(facts):
        raise TripConflict(f"trip {event.trip_id!r} is already recorded with other figures")
    # The same trip arrived again: the earliest arrival is when it became known.
    return before if before.arrived_at <= arrived_at else replace(before, arrived_at=arrived_at)


def after_deleted(
    before: StoredTrip | None, trip_id: str, user_id: str, arrived_at: datetime
) -> StoredTrip:
    if before is None:
        return Tombstone(trip_id, user_id, arrived_at)
    _same_user(before, user_id)
    if isinstance(before, Tombstone):
        earliest = min(before.deleted_arrived_at, arrived_at)
        return replace(before, deleted_arrived_at=earliest)
    return before.deleted(arrived_at)


def _same_user(trip: StoredTrip, user_id: str) -> None:
    if trip.user_id != user_id:
        raise TripConflict(f"trip {trip.trip_id!r} belongs to another user")
