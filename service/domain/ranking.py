"""Monthly driver ranking (docs/rules.md#driver-ranking).

A driver's month holds their trip count and, exactly, their kilometres plus, per score kind,
the weighted sum and weight of the trips that carry that score; the ranking of one kind reads the
matching `Tally` and hands it to the shared competition ranking.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Generic, TypeVar

from service.domain.errors import invalid_month
from service.domain.events import SCORE_POSITION, ScoreKind
from service.domain.exact import ZERO, add, exact, multiply
from service.domain.frozen import frozen
from service.domain.standings import (
    EMPTY_TALLY,
    Placed,
    Standings,
    Tally,
    Thresholds,
    rank_entrants,
)
from service.domain.trips import TripFacts, counts_by

S = TypeVar("S", bound=Hashable)


@frozen(order=True)
class Month:
    year: int
    number: int

    @classmethod
    def of(cls, moment: datetime) -> Month:
        utc = moment.astimezone(UTC)
        return cls(utc.year, utc.month)

    @property
    def starts_at(self) -> datetime:
        return datetime(self.year, self.number, 1, tzinfo=UTC)

    def next(self) -> Month:
        return Month(self.year + self.number // 12, self.number % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.number == 1), (self.number - 2) % 12 + 1)

    def freezes_at(self, grace: timedelta) -> datetime:
        """Events arriving from this moment on change nothing in the month."""
        return self.next().starts_at + grace


FIRST_YEAR = 1970
"""No trip can be older (docs/rules.md#bounds)."""


def requested_month(year: int, number: int, now: datetime) -> Month:
    """A month a caller asks for: any month up to the month of `now` (a past month without
    data answers empty); a later one, or one that is no month, is `invalid_month`."""
    if not 1 <= number <= 12:
        raise invalid_month(year, number, "its number is 1 to 12")
    if year < FIRST_YEAR:
        raise invalid_month(year, number, f"no month before {FIRST_YEAR} has data")
    month, current = Month(year, number), Month.of(now)
    if (month.year, month.number) > (current.year, current.number):
        raise invalid_month(
            year, number, f"it is after the current month {current.year}-{current.number:02d}"
        )
    return month


Four = tuple[Decimal, Decimal, Decimal, Decimal]


@frozen
class MonthTotals:
    """A driver's trips of one month, for every score kind at once, exactly."""

    trips: int = 0
    km: Decimal = ZERO
    weighted: Four = (ZERO, ZERO, ZERO, ZERO)
    weight: Four = (ZERO, ZERO, ZERO, ZERO)

    @classmethod
    def of_trip(cls, trip: TripFacts) -> MonthTotals:
        km = trip.km
        a, b, c, d = trip.scores
        return cls(
            1,
            km,
            (
                ZERO if a is None else multiply(exact(a), km),
                ZERO if b is None else multiply(exact(b), km),
                ZERO if c is None else multiply(exact(c), km),
                ZERO if d is None else multiply(exact(d), km),
            ),
            (
                ZERO if a is None else km,
                ZERO if b is None else km,
                ZERO if c is None else km,
                ZERO if d is None else km,
            ),
        )

    @classmethod
    def sum(cls, parts: Sequence[MonthTotals]) -> MonthTotals:
        """Many totals at once (one object built, not one per addition)."""
        if len(parts) == 1:
            return parts[0]
        km, weighted, weight = ZERO, [ZERO] * 4, [ZERO] * 4
        for part in parts:
            km = add(km, part.km)
            for i in range(4):
                weighted[i] = add(weighted[i], part.weighted[i])
                weight[i] = add(weight[i], part.weight[i])
        return cls(sum(p.trips for p in parts), km, _four(weighted), _four(weight))

    @property
    def is_empty(self) -> bool:
        """Equal to `NO_TOTALS` (no trips, every figure zero), told without comparing the
        fields as tuples: a batch asks it of each driver month it writes."""
        return not (self.trips or self.km or any(self.weighted) or any(self.weight))

    def tally(self, kind: ScoreKind) -> Tally:
        i = SCORE_POSITION[kind]
        return Tally(self.trips, self.km, self.weighted[i], self.weight[i])

    def __add__(self, other: MonthTotals) -> MonthTotals:
        return MonthTotals.sum((self, other))

    def __neg__(self) -> MonthTotals:
        (a, b, c, d), (e, f, g, h) = self.weighted, self.weight
        return MonthTotals(
            -self.trips,
            self.km.copy_negate(),
            (a.copy_negate(), b.copy_negate(), c.copy_negate(), d.copy_negate()),
            (e.copy_negate(), f.copy_negate(), g.copy_negate(), h.copy_negate()),
        )

    def __sub__(self, other: MonthTotals) -> MonthTotals:
        return self + -other


NO_TOTALS = MonthTotals()


def _four(values: Sequence[Decimal]) -> Four:
    return (values[0], values[1], values[2], values[3])


@functools.lru_cache(maxsize=256)
def _month_and_freeze(year: int, number: int, grace: timedelta) -> tuple[Month, datetime]:
    month = Month(year, number)
    return month, month.freezes_at(grace)


def month_contribution(trip: TripFacts, grace: timedelta) -> tuple[Month, MonthTotals]:
    """What a trip (in its current state of deletion) adds to the month it ended in."""
    month, counted = _month_counted_in(trip, grace)
    return month, MonthTotals.of_trip(trip) if counted else NO_TOTALS


def _month_counted_in(trip: TripFacts, grace: timedelta) -> tuple[Month, bool]:
    """The month the trip ended in, and whether it counts there (by that month's freeze)."""
    ended = trip.ended_at
    if ended.tzinfo is not UTC:
        ended = ended.astimezone(UTC)
    month, freezes_at = _month_and_freeze(ended.year, ended.month, grace)
    return month, counts_by(trip, freezes_at)


class MonthDeltas(Generic[S]):
    """What trips add to (or take from) the months they count in, summed by (scope, driver,
    month) in place: one list of sums per driver month rather than one `MonthTotals` per trip,
    since a batch of a replay folds tens of thousands of trips. Equal to summing
    `month_contribution` over the same trips (a unit test holds them together)."""

    def __init__(self, grace: timedelta) -> None:
        self._grace = grace
        self._sums: dict[tuple[S, str, int, int], _Sums] = {}
        """By scope, driver, year and month number: a key of built-in values, hashed in C
        (once per trip folded), the `Month` kept in the sums."""
        self._months: dict[tuple[int, int], tuple[Month, datetime]] = {}
        """Each calendar month met, with when it freezes, by year and month number."""

    def add(self, scope: S, trip: TripFacts, sign: int = 1) -> None:
        """Count `trip` (its contribution times `sign`, +1 or -1) under `scope`."""
        ended = trip.ended_at
        if ended.tzinfo is not UTC:
            ended = ended.astimezone(UTC)
        year, number = ended.year, ended.month
        known = self._months.get((year, number))
        if known is None:
            known = self._months[year, number] = _month_and_freeze(year, number, self._grace)
        month, freezes_at = known
        if not counts_by(trip, freezes_at):
            return
        key = (scope, trip.user_id, year, number)
        sums = self._sums.get(key)
        if sums is None:
            sums = self._sums[key] = _Sums(month)
        sums.trips += sign
        km = exact(trip.distance_km)
        if sign < 0:
            km = km.copy_negate()
        figures = sums.figures
        figures[0] = add(figures[0], km)
        # Each score's weighted sum at 1 + its position, its weight at 5 + its position;
        # written out rather than looped (a quarter of the cost, once per trip folded).
        safety, eco_driving, distraction, speeding = trip.scores
        if safety is not None:
            figures[1] = add(figures[1], multiply(exact(safety), km))
            figures[5] = add(figures[5], km)
        if eco_driving is not None:
            figures[2] = add(figures[2], multiply(exact(eco_driving), km))
            figures[6] = add(figures[6], km)
        if distraction is not None:
            figures[3] = add(figures[3], multiply(exact(distraction), km))
            figures[7] = add(figures[7], km)
        if speeding is not None:
            figures[4] = add(figures[4], multiply(exact(speeding), km))
            figures[8] = add(figures[8], km)

    def totals(self) -> dict[tuple[S, str, Month], MonthTotals]:
        """The non-zero sums (a trip and its undoing in one batch cancel out)."""
        return {
            (scope, user, sums.month): sums.totals()
            for (scope, user, _, _), sums in self._sums.items()
            if sums.trips or any(sums.figures)
        }


class _Sums:
    """One driver month's sums as `MonthDeltas` adds to them: the trips, and the km, weighted
    sums and weights in `MonthTotals` order."""

    __slots__ = ("figures", "month", "trips")

    def __init__(self, month: Month) -> None:
        self.month = month
        self.trips = 0
        self.figures = [ZERO] * 9

    def totals(self) -> MonthTotals:
        f = self.figures
        return MonthTotals(self.trips, f[0], _four(f[1:5]), _four(f[5:9]))


def totals_from_trips(
    trips: Iterable[TripFacts], grace: timedelta
) -> dict[tuple[str, Month], MonthTotals]:
    """The recomputation: every driver-month from all trips (zero months left out)."""
    totals: dict[tuple[str, Month], MonthTotals] = {}
    for trip in trips:
        month, contribution = month_contribution(trip, grace)
        if contribution != NO_TOTALS:
            key = (trip.user_id, month)
            totals[key] = totals.get(key, NO_TOTALS) + contribution
    return totals


@frozen
class Profile:
    user_id: str
    firstname: str = ""
    lastname: str = ""
    pseudo: str = ""


@frozen
class DriverMonth:
    """A driver's month for one ranking type."""

    profile: Profile
    tally: Tally


def rank_month(drivers: Iterable[DriverMonth], thresholds: Thresholds) -> Standings[DriverMonth]:
    return rank_entrants(
        drivers,
        score_of=lambda d: d.tally.score_hundredths,
        metres_of=lambda d: d.tally.metres,
        key_of=lambda d: d.profile.user_id,
        is_eligible=lambda d: thresholds.admits(d.tally),
    )


def drivers_of_month(
    profiles: Sequence[Profile], tallies: Mapping[str, Tally]
) -> list[DriverMonth]:
    """Every known driver (profiles, zero trips included) and every driver with trips, in no
    particular order (ranking orders them)."""
    known = [DriverMonth(p, tallies.get(p.user_id, EMPTY_TALLY)) for p in profiles]
    listed = {p.user_id for p in profiles}
    return known + [DriverMonth(Profile(i), t) for i, t in tallies.items() if i not in listed]


__all__ = [
    "DriverMonth",
    "Month",
    "MonthDeltas",
    "MonthTotals",
    "Placed",
    "Profile",
    "drivers_of_month",
    "month_contribution",
    "rank_month",
    "requested_month",
    "totals_from_trips",
]
