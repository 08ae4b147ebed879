"""Tallies of trips and the competition ranking shared by driver and challenge rankings
(docs/rules.md#conventions, docs/rules.md#ranking-order).

Figures are kept as integers (metres, score units) so that adding a trip and later taking it
away again returns the tally to exactly what it was: incremental state then equals a
recomputation from all events, in any order, with no floating-point drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

SCORE_UNITS_PER_POINT = 10_000
"""Scores are 0-10 doubles; we keep them to 1/10,000 of a point."""

METRES_PER_KM = 1_000


def km_to_metres(km: float) -> int:
    return round(km * METRES_PER_KM)


def metres_to_km(metres: int) -> float:
    return metres / METRES_PER_KM


def score_to_units(score: float) -> int:
    return round(score * SCORE_UNITS_PER_POINT)


@dataclass(frozen=True, slots=True)
class Tally:
    """Trips folded over one window for one kind of score.

    `weighted` is the sum of score units * metres over the trips that carry the score and
    `weight` the sum of their metres, so the distance-weighted mean is `weighted / weight`.
    """

    trips: int = 0
    metres: int = 0
    weighted: int = 0
    weight: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.trips + other.trips,
            self.metres + other.metres,
            self.weighted + other.weighted,
            self.weight + other.weight,
        )

    def __sub__(self, other: Tally) -> Tally:
        return Tally(
            self.trips - other.trips,
            self.metres - other.metres,
            self.weighted - other.weighted,
            self.weight - other.weight,
        )

    def __neg__(self) -> Tally:
        return Tally(-self.trips, -self.metres, -self.weighted, -self.weight)

    @property
    def is_empty(self) -> bool:
        return self == EMPTY_TALLY

    @property
    def score_hundredths(self) -> int | None:
        """The weighted mean score rounded half up to hundredths of a point, exactly.

        None when no trip with a distance carries the score.
        """
        if self.weight <= 0:
            return None
        scale = self.weight * (SCORE_UNITS_PER_POINT // 100)
        return (self.weighted + scale // 2) // scale

    @property
    def score(self) -> float | None:
        hundredths = self.score_hundredths
        return None if hundredths is None else hundredths / 100


EMPTY_TALLY = Tally()


def trip_tally(metres: int, score_units: int | None) -> Tally:
    """The tally of a single trip; a trip without the score counts in trips and distance only."""
    if score_units is None:
        return Tally(1, metres, 0, 0)
    return Tally(1, metres, score_units * metres, metres)


@dataclass(frozen=True, slots=True)
class Thresholds:
    min_trips: int
    min_metres: int

    def admits(self, tally: Tally) -> bool:
        """Enough trips and distance to be ranked (a score is needed as well)."""
        return tally.trips >= self.min_trips and tally.metres >= self.min_metres


K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Placed(Generic[K]):
    entrant: K
    rank: int
    score_hundredths: int


@dataclass(frozen=True, slots=True)
class Standings(Generic[K]):
    ranked: tuple[Placed[K], ...]
    not_ranked: tuple[K, ...]


def rank_entrants(
    entrants: Iterable[K],
    *,
    score_of: Callable[[K], int | None],
    metres_of: Callable[[K], int],
    key_of: Callable[[K], str],
    is_eligible: Callable[[K], bool],
) -> Standings[K]:
    """Competition ranking ("1, 2, 2, 4") by score in hundredths, best first.

    Ties list by distance descending, then by key. Entrants that are not eligible or have no
    score are listed apart, by distance descending then key. Input order never matters.
    """
    listed = list(entrants)
    admitted: list[tuple[int, int, str, int]] = []
    rest: list[tuple[int, str, int]] = []
    # Sort keys end with the entrant's position in `listed`, so the sort compares plain
    # numbers and strings only (and never reaches the position, keys being unique).
    for position, entrant in enumerate(listed):
        hundredths, metres, key = score_of(entrant), metres_of(entrant), key_of(entrant)
        if hundredths is not None and is_eligible(entrant):
            admitted.append((-hundredths, -metres, key, position))
        else:
            rest.append((-metres, key, position))
    admitted.sort()
    rest.sort()
    return Standings(
        ranked=_placed([(-row[0], listed[row[3]]) for row in admitted]),
        not_ranked=tuple(listed[row[2]] for row in rest),
    )


def _placed(ordered: Sequence[tuple[int, K]]) -> tuple[Placed[K], ...]:
    placed: list[Placed[K]] = []
    rank, previous = 0, None
    for position, (hundredths, entrant) in enumerate(ordered, start=1):
        if hundredths != previous:
            rank, previous = position, hundredths
        placed.append(Placed(entrant, rank, hundredths))
    return tuple(placed)
