"""Tallies of trips and the competition ranking shared by driver and challenge rankings
(docs/rules.md#conventions, docs/rules.md#exact-figures, docs/rules.md#ranking-order).

Figures are exact (`service.domain.exact`): the decimals producers sent, added and multiplied
without rounding, so adding a trip and later taking it away again returns the tally to exactly
what it was (incremental state then equals a recomputation from all events, in any order), and
a mean is the mean of those decimals, rounded once when it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Generic, TypeVar

from service.domain.exact import ZERO, add, half_up, multiply, ratio_half_up, rounded_up, subtract
from service.domain.frozen import frozen

METRES_PER_KM = 1_000


def metres_to_km(metres: int) -> float:
    return metres / METRES_PER_KM


@frozen
class Tally:
    """Trips folded over one window for one kind of score, exactly.

    `km` is the distance of all the trips; `weighted` the sum of score * km over the trips
    that carry the score and `weight` the sum of their km, so the distance-weighted mean is
    `weighted / weight`. A trip of 0 km weighs nothing: its score does not count.
    """

    trips: int = 0
    km: Decimal = ZERO
    weighted: Decimal = ZERO
    weight: Decimal = ZERO

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.trips + other.trips,
            add(self.km, other.km),
            add(self.weighted, other.weighted),
            add(self.weight, other.weight),
        )

    def __sub__(self, other: Tally) -> Tally:
        return Tally(
            self.trips - other.trips,
            subtract(self.km, other.km),
            subtract(self.weighted, other.weighted),
            subtract(self.weight, other.weight),
        )

    def __neg__(self) -> Tally:
        return Tally(
            -self.trips,
            self.km.copy_negate(),
            self.weighted.copy_negate(),
            self.weight.copy_negate(),
        )

    @property
    def is_empty(self) -> bool:
        return self == EMPTY_TALLY

    @property
    def metres(self) -> int:
        """The distance as answers show it: to the metre, rounded half up."""
        return half_up(self.km, 3)

    @property
    def score_hundredths(self) -> int | None:
        """The weighted mean score rounded half up to hundredths of a point, exactly.

        None when no trip with a distance carries the score.
        """
        if not self.weight:
            return None
        return ratio_half_up(self.weighted, self.weight, 2)

    @property
    def score(self) -> float | None:
        hundredths = self.score_hundredths
        return None if hundredths is None else hundredths / 100


EMPTY_TALLY = Tally()


def trip_tally(km: Decimal, score: Decimal | None) -> Tally:
    """The tally of a single trip; a trip without the score counts in trips and distance only."""
    if score is None:
        return Tally(1, km)
    return Tally(1, km, multiply(score, km), km)


@frozen
class Thresholds:
    min_trips: int
    min_km: Decimal

    def admits(self, tally: Tally) -> bool:
        """Enough trips and distance to be ranked (a score is needed as well); the distance
        is compared exactly: 19.9996 km is under 20 km."""
        return tally.trips >= self.min_trips and tally.km >= self.min_km

    def metres_short(self, tally: Tally) -> int:
        """What `tally` lacks of the distance, to the metre rounded up (0 when it has it): a
        driver 0.4 m short is shown 1 m short, never 0."""
        return max(rounded_up(subtract(self.min_km, tally.km), 3), 0)


K = TypeVar("K")


@frozen
class Placed(Generic[K]):
    entrant: K
    rank: int
    score_hundredths: int


@frozen
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
