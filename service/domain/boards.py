"""A ranking as a board to page through and to look one entrant up in
(docs/rules.md#boards-pages-and-neighbours).

A board keeps the standings in their order with an index by user id, so a page and an
entrant's neighbours cost a binary search or a lookup, whatever the board's size. Pages are
cut by keyset, the sort key of the last entrant shown: a page starts strictly after it, so
pages read one after the other list every entrant once when nothing changes between them.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sortedcontainers import SortedList

from service.domain.errors import invalid_neighbors, invalid_page_size, invalid_top
from service.domain.standings import Placed, Standings, Tally, Thresholds

K = TypeVar("K")
T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000
MAX_NEIGHBORS = 50
MAX_TOP = 100


def checked_page_size(requested: int) -> int:
    """0 asks for the default; more than `MAX_PAGE_SIZE` (or less than 0) is invalid."""
    if not 0 <= requested <= MAX_PAGE_SIZE:
        raise invalid_page_size(requested, MAX_PAGE_SIZE)
    return requested or DEFAULT_PAGE_SIZE


def checked_neighbors(requested: int) -> int:
    if not 0 <= requested <= MAX_NEIGHBORS:
        raise invalid_neighbors(requested, MAX_NEIGHBORS)
    return requested


def checked_top(requested: int) -> int:
    if not 1 <= requested <= MAX_TOP:
        raise invalid_top(requested, MAX_TOP)
    return requested


SortKey = tuple[int | str, ...]
"""Where an entrant stands: ranked ones by (-score, -metres, user id), the others by
(-metres, user id), with the score and the distance as answers show them (hundredths, metres).
Unique, since a user appears once."""

RANKED_KEY_LENGTH = 3
OTHER_KEY_LENGTH = 2


@dataclass(frozen=True, slots=True)
class Board(Generic[K]):
    standings: Standings[K]
    ranked_keys: tuple[SortKey, ...]
    other_keys: tuple[SortKey, ...]
    where: dict[str, tuple[bool, int]]
    """A user id's place: (ranked, index in its list)."""


def board_of(
    standings: Standings[K], metres_of: Callable[[K], int], user_of: Callable[[K], str]
) -> Board[K]:
    ranked_keys = tuple(
        (-p.score_hundredths, -metres_of(p.entrant), user_of(p.entrant)) for p in standings.ranked
    )
    other_keys = tuple((-metres_of(e), user_of(e)) for e in standings.not_ranked)
    where = {user_of(p.entrant): (True, i) for i, p in enumerate(standings.ranked)}
    where.update({user_of(e): (False, i) for i, e in enumerate(standings.not_ranked)})
    return Board(standings, ranked_keys, other_keys, where)


@dataclass(frozen=True, slots=True)
class Page(Generic[K]):
    ranked: tuple[Placed[K], ...]
    not_ranked: tuple[K, ...]
    after: SortKey | None
    """The key to start the next page after; None on the last page."""


@dataclass(frozen=True, slots=True)
class Cut:
    """Where a page lies in a list of sort keys: `[start, end)`."""

    start: int
    end: int

    def last(self, keys: Sequence[SortKey]) -> SortKey | None:
        """The key of the last entrant the page shows (None: it shows none)."""
        return keys[self.end - 1] if self.end > self.start else None


def cut(keys: Sequence[SortKey], after: SortKey | None, size: int) -> Cut:
    """Up to `size` entrants of the sorted `keys`, starting strictly after `after` (from the
    first when None): a binary search, whatever the list's length."""
    start = 0 if after is None else bisect.bisect_right(keys, after)
    return Cut(start, min(start + size, len(keys)))


def sliced(
    items: Sequence[T], keys: Sequence[SortKey], after: SortKey | None, size: int
) -> tuple[tuple[T, ...], SortKey | None]:
    """Up to `size` of `items` (sorted by their `keys`) after `after`, and the key the next
    page starts after (None: none follows)."""
    at = cut(keys, after, size)
    more = at.start < at.end < len(keys)
    return tuple(items[at.start : at.end]), keys[at.end - 1] if more else None


def page(board: Board[K], *, not_ranked: bool, after: SortKey | None, size: int) -> Page[K]:
    """Up to `size` entrants after `after` (from the first when None), ranked ones or the
    others."""
    if not_ranked:
        others, following = sliced(board.standings.not_ranked, board.other_keys, after, size)
        return Page((), others, following)
    ranked, following = sliced(board.standings.ranked, board.ranked_keys, after, size)
    return Page(ranked, (), following)


def page_through(board: Board[K], *, after: SortKey | None, size: int) -> Page[K]:
    """Up to `size` entrants after `after` in one list of the ranked entrants, then the others
    (a key of the length of the ranked ones' is a ranked entrant's, the others' are shorter):
    a page may end the ranked entrants and begin the others."""
    ranked_keys, other_keys = board.ranked_keys, board.other_keys
    if after is not None and len(after) != RANKED_KEY_LENGTH:
        ranked = Cut(len(ranked_keys), len(ranked_keys))
        others = cut(other_keys, after, size)
    else:
        ranked = cut(ranked_keys, after, size)
        others = cut(other_keys, None, size - (ranked.end - ranked.start))
    last = others.last(other_keys) or ranked.last(ranked_keys)
    more = ranked.end < len(ranked_keys) or others.end < len(other_keys)
    return Page(
        board.standings.ranked[ranked.start : ranked.end],
        board.standings.not_ranked[others.start : others.end],
        last if more else None,
    )


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why an entrant is not ranked: what they lack of the thresholds (0 when they have it; the
    distance to the metre rounded up), and whether they have no score at all (no trip with a
    distance carries one)."""

    trips_short: int
    metres_short: int
    no_score: bool


@dataclass(frozen=True, slots=True)
class Around(Generic[K]):
    """One entrant: ranked with up to `neighbors` ranked entrants above and below, or not
    ranked with why (and no neighbours)."""

    placed: Placed[K] | None
    entrant: K
    above: tuple[Placed[K], ...] = ()
    below: tuple[Placed[K], ...] = ()
    shortfall: Shortfall | None = None


def around(
    board: Board[K],
    user_id: str,
    neighbors: int,
    tally_of: Callable[[K], Tally],
    thresholds: Thresholds,
    has_score: Callable[[K], bool],
) -> Around[K] | None:
    """The entrant `user_id` and their neighbours; None when the board does not list them."""
    place = board.where.get(user_id)
    if place is None:
        return None
    ranked, index = place
    if ranked:
        ranked_list = board.standings.ranked
        placed = ranked_list[index]
        return Around(
            placed,
            placed.entrant,
            ranked_list[max(0, index - neighbors) : index],
            ranked_list[index + 1 : index + 1 + neighbors],
        )
    entrant = board.standings.not_ranked[index]
    tally = tally_of(entrant)
    shortfall = Shortfall(
        max(thresholds.min_trips - tally.trips, 0),
        thresholds.metres_short(tally),
        not has_score(entrant),
    )
    return Around(None, entrant, shortfall=shortfall)


class LiveBoard(Generic[K]):
    """A board kept up to date entrant by entrant (docs/rules.md#boards-pages-and-neighbours):
    an entrant whose figures change is taken out of its sorted place and put back at its new
    one, the others stay where they were; `board()` gives what `board_of` gives for the
    standings `rank_entrants` ranks from the same entrants, whatever order the changes came
    in.

    Not shared between threads: one owner changes it (the builder of the next answer); the
    boards it gave stay as they were (frozen copies)."""

    def __init__(
        self,
        entrants: Iterable[K],
        *,
        score_of: Callable[[K], int | None],
        metres_of: Callable[[K], int],
        key_of: Callable[[K], str],
        is_eligible: Callable[[K], bool],
    ) -> None:
        self._score_of, self._metres_of = score_of, metres_of
        self._key_of, self._is_eligible = key_of, is_eligible
        self._entrants: dict[str, K] = {}
        self._placed: dict[str, Placed[K]] = {}
        """The ranked entrants' places on the last board given."""
        self._ranked_at: dict[str, _RankedKey] = {}
        self._other_at: dict[str, _OtherKey] = {}
        for entrant in entrants:  # sorted once, at the end
            key = key_of(entrant)
            self._entrants[key] = entrant
            self._ranked_at.pop(key, None)
            self._other_at.pop(key, None)
            self._place(key, entrant)
        self._ranked: SortedList[_RankedKey] = SortedList(self._ranked_at.values())
        self._others: SortedList[_OtherKey] = SortedList(self._other_at.values())
        self.revision = 0
        """Moves on with every change: a board made at an older revision is no longer what
        this one holds."""

    def __len__(self) -> int:
        return len(self._entrants)

    def get(self, key: str) -> K | None:
        return self._entrants.get(key)

    def put(self, entrant: K) -> None:
        """Add `entrant`, or put it in the place of the entrant of the same key."""
        key = self._key_of(entrant)
        self.remove(key)
        ranked, other = self._place(key, entrant)
        if ranked is not None:
            self._ranked.add(ranked)
        if other is not None:
            self._others.add(other)
        self._entrants[key] = entrant
        self.revision += 1

    def _place(self, key: str, entrant: K) -> tuple[_RankedKey | None, _OtherKey | None]:
        """Where `entrant` stands, noted by key (not yet in the sorted lists)."""
        hundredths, metres = self._score_of(entrant), self._metres_of(entrant)
        if hundredths is not None and self._is_eligible(entrant):
            ranked = self._ranked_at[key] = (-hundredths, -metres, key)
            return ranked, None
        other = self._other_at[key] = (-metres, key)
        return None, other

    def remove(self, key: str) -> None:
        if self._entrants.pop(key, None) is None:
            return
        ranked = self._ranked_at.pop(key, None)
        if ranked is not None:
            self._ranked.remove(ranked)
        else:
            self._others.remove(self._other_at.pop(key))
        self.revision += 1

    def board(self) -> Board[K]:
        """The board of the entrants as they are now, with competition ranks ("1, 2, 2, 4")
        by score, as `rank_entrants` gives them. An entrant whose figures and rank did not
        change keeps the place the previous board gave them."""
        entrants, before = self._entrants, self._placed
        ranked_keys = tuple(self._ranked)
        other_keys = tuple(self._others)
        placed: list[Placed[K]] = []
        now: dict[str, Placed[K]] = {}
        rank, previous = 0, 0
        for position, (minus_hundredths, _, key) in enumerate(ranked_keys):
            if minus_hundredths != previous or not position:
                rank, previous = position + 1, minus_hundredths
            entrant = entrants[key]
            place = before.get(key)
            if place is None or place.rank != rank or place.entrant is not entrant:
                place = Placed(entrant, rank, -minus_hundredths)
            placed.append(place)
            now[key] = place
        self._placed = now
        ranked_at, other_at = _places(True, len(ranked_keys)), _places(False, len(other_keys))
        where = {key: ranked_at[i] for i, (_, _, key) in enumerate(ranked_keys)}
        where.update({key: other_at[i] for i, (_, key) in enumerate(other_keys)})
        not_ranked = tuple(entrants[key] for _, key in other_keys)
        return Board(Standings(tuple(placed), not_ranked), ranked_keys, other_keys, where)


_PLACES: dict[bool, list[tuple[bool, int]]] = {True: [], False: []}


def _places(ranked: bool, up_to: int) -> list[tuple[bool, int]]:
    """The places (`Board.where`'s values) up to `up_to`, made once and shared by boards: a
    list is never changed, only replaced by a longer one (boards are made on several
    threads)."""
    places = _PLACES[ranked]
    if len(places) < up_to:
        _PLACES[ranked] = places = [(ranked, i) for i in range(max(up_to, 2 * len(places)))]
    return places


_RankedKey = tuple[int, int, str]
_OtherKey = tuple[int, str]
