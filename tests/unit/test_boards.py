"""Boards (docs/rules.md#boards-pages-and-neighbours): pages by keyset and an entrant with
their neighbours, from the same standings as the whole list."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain import boards
from service.domain.boards import Board, Page, around, board_of, page
from service.domain.errors import InvalidArgument
from service.domain.exact import multiply
from service.domain.ranking import DriverMonth, Profile, rank_month
from service.domain.standings import Tally, Thresholds

THRESHOLDS = Thresholds(min_trips=2, min_km=Decimal(10))


def driver(user: str, trips: int, metres: int, score: int | None) -> DriverMonth:
    """A driver whose month has `score` hundredths of a point over `metres`."""
    km = Decimal(metres).scaleb(-3)
    if score is None:
        return DriverMonth(Profile(user), Tally(trips, km))
    return DriverMonth(Profile(user), Tally(trips, km, multiply(Decimal(score).scaleb(-2), km), km))


def board(drivers: list[DriverMonth]) -> Board[DriverMonth]:
    standings = rank_month(drivers, THRESHOLDS)
    return board_of(standings, lambda d: d.tally.metres, lambda d: d.profile.user_id)


def all_pages(b: Board[DriverMonth], not_ranked: bool, size: int) -> list[Page[DriverMonth]]:
    pages, after = [page(b, not_ranked=not_ranked, after=None, size=size)], None
    while (after := pages[-1].after) is not None:
        pages.append(page(b, not_ranked=not_ranked, after=after, size=size))
    return pages


drivers = st.lists(
    st.builds(
        driver,
        st.text("abcdef", min_size=1, max_size=3),
        st.integers(0, 5),
        st.integers(0, 30_000),
        st.none() | st.integers(0, 1000),
    ),
    max_size=40,
    unique_by=lambda d: d.profile.user_id,
)


@given(drivers=drivers, size=st.integers(1, 7))
def test_pages_read_one_after_the_other_are_the_whole_list_once(
    drivers: list[DriverMonth], size: int
) -> None:
    b = board(drivers)
    ranked = [p for one in all_pages(b, False, size) for p in one.ranked]
    others = [d for one in all_pages(b, True, size) for d in one.not_ranked]
    assert tuple(ranked) == b.standings.ranked
    assert tuple(others) == b.standings.not_ranked
    assert all(len(one.ranked) <= size for one in all_pages(b, False, size))


@given(drivers=drivers, neighbors=st.integers(0, 5))
def test_an_entrants_neighbours_are_the_slice_of_the_whole_list_around_them(
    drivers: list[DriverMonth], neighbors: int
) -> None:
    b = board(drivers)
    ranked = list(b.standings.ranked)
    for index, placed in enumerate(ranked):
        found = around(
            b,
            placed.entrant.profile.user_id,
            neighbors,
            lambda d: d.tally,
            THRESHOLDS,
            lambda d: d.tally.weight > 0,
        )
        assert found is not None
        assert found.placed == placed
        assert list(found.above) == ranked[max(0, index - neighbors) : index]
        assert list(found.below) == ranked[index + 1 : index + 1 + neighbors]


def test_a_driver_not_ranked_says_what_they_lack_and_has_no_neighbours() -> None:
    b = board(
        [
            driver("ann", 2, 12_000, 9),
            driver("bob", 1, 3_000, 8),
            driver("cyd", 3, 15_000, None),
        ]
    )
    bob = around(b, "bob", 3, lambda d: d.tally, THRESHOLDS, lambda d: d.tally.weight > 0)
    cyd = around(b, "cyd", 3, lambda d: d.tally, THRESHOLDS, lambda d: d.tally.weight > 0)
    assert bob is not None
    assert cyd is not None
    assert (bob.placed, bob.above, bob.below) == (None, (), ())
    assert bob.shortfall is not None
    assert (bob.shortfall.trips_short, bob.shortfall.metres_short, bob.shortfall.no_score) == (
        1,
        7_000,
        False,
    )
    assert cyd.shortfall is not None
    assert (cyd.shortfall.trips_short, cyd.shortfall.metres_short, cyd.shortfall.no_score) == (
        0,
        0,
        True,
    )
    assert around(b, "dee", 3, lambda d: d.tally, THRESHOLDS, lambda d: True) is None


@pytest.mark.parametrize(
    ("check", "good", "bad", "reason"),
    [
        (boards.checked_page_size, [(0, 100), (1, 1), (1000, 1000)], [-1, 1001], "page_size"),
        (boards.checked_neighbors, [(0, 0), (50, 50)], [-1, 51], "neighbors"),
        (boards.checked_top, [(1, 1), (100, 100)], [0, 101], "top"),
    ],
)
def test_request_sizes_are_checked_against_their_range(
    check: Callable[[int], int], good: list[tuple[int, int]], bad: list[int], reason: str
) -> None:
    assert [check(asked) for asked, _ in good] == [given for _, given in good]
    for asked in bad:
        with pytest.raises(InvalidArgument) as refused:
            check(asked)
        assert (refused.value.reason, refused.value.metadata["field"]) == (
            f"invalid_{reason}",
            reason,
        )


def live(drivers: list[DriverMonth]) -> boards.LiveBoard[DriverMonth]:
    return boards.LiveBoard(
        drivers,
        score_of=lambda d: d.tally.score_hundredths,
        metres_of=lambda d: d.tally.metres,
        key_of=lambda d: d.profile.user_id,
        is_eligible=lambda d: THRESHOLDS.admits(d.tally),
    )


changes = st.lists(
    st.one_of(
        st.builds(
            driver,
            st.text("abcdefg", min_size=1, max_size=3),
            st.integers(0, 5),
            st.integers(0, 30_000),
            st.none() | st.integers(0, 1000),
        ),
        st.text("abcdefg", min_size=1, max_size=3),  # that driver leaves the board
    ),
    max_size=60,
)


@given(start=drivers, changes=changes)
def test_a_board_kept_up_to_date_is_the_board_of_its_drivers_ranked_anew(
    start: list[DriverMonth], changes: list[DriverMonth | str]
) -> None:
    kept, now = live(start), {d.profile.user_id: d for d in start}
    for change in changes:
        if isinstance(change, str):
            kept.remove(change)
            now.pop(change, None)
        else:
            kept.put(change)
            now[change.profile.user_id] = change
        assert kept.board() == board(list(now.values()))
    assert len(kept) == len(now)


def test_a_change_moves_the_revision_on_and_a_board_given_before_stays_as_it_was() -> None:
    kept = live([driver("a", 5, 20_000, 700), driver("b", 5, 20_000, 800)])
    before, revision = kept.board(), kept.revision
    kept.put(driver("a", 5, 20_000, 900))

    assert kept.revision > revision
    assert [p.entrant.profile.user_id for p in before.standings.ranked] == ["b", "a"]
    assert [p.entrant.profile.user_id for p in kept.board().standings.ranked] == ["a", "b"]


def pages_through(
    b: Board[DriverMonth], size: int, after: boards.SortKey | None = None
) -> list[Page[DriverMonth]]:
    """The pages from the one after `after` (the first when None) to the last."""
    pages = [boards.page_through(b, after=after, size=size)]
    while (following := pages[-1].after) is not None:
        pages.append(boards.page_through(b, after=following, size=size))
    return pages


@given(drivers=drivers, size=st.integers(1, 7))
def test_pages_through_a_board_list_the_ranked_then_the_others_once_each(
    drivers: list[DriverMonth], size: int
) -> None:
    """A challenge's ranking is read as one list: a page may end the ranked entrants and
    begin the others; every page but the last is full."""
    b = board(drivers)
    pages = pages_through(b, size)
    assert tuple(p for one in pages for p in one.ranked) == b.standings.ranked
    assert tuple(d for one in pages for d in one.not_ranked) == b.standings.not_ranked
    shown = [len(one.ranked) + len(one.not_ranked) for one in pages]
    assert all(n == size for n in shown[:-1])
    assert 0 < shown[-1] <= size or len(b.where) == 0


def test_a_page_through_may_end_the_ranked_and_begin_the_others() -> None:
    b = board(
        [
            driver("ann", 2, 12_000, 900),
            driver("bob", 2, 11_000, 800),
            driver("cyd", 1, 30_000, 700),
            driver("dee", 0, 0, None),
        ]
    )
    first = boards.page_through(b, after=None, size=3)
    second = boards.page_through(b, after=first.after, size=3)
    assert [p.entrant.profile.user_id for p in first.ranked] == ["ann", "bob"]
    assert [d.profile.user_id for d in first.not_ranked] == ["cyd"]
    assert first.after == (-30_000, "cyd")
    assert (second.ranked, [d.profile.user_id for d in second.not_ranked]) == ((), ["dee"])
    assert second.after is None
    ended = boards.page_through(b, after=None, size=2)
    assert ended.after == (-800, -11_000, "bob")
    assert boards.page_through(b, after=ended.after, size=2).ranked == ()


def place(b: Board[DriverMonth], user: str) -> tuple[bool, boards.SortKey]:
    """Where a user stands in the one list of a board: ranked ones before the others."""
    ranked, index = b.where[user]
    return (ranked, b.ranked_keys[index] if ranked else b.other_keys[index])


@given(start=drivers, moves=changes, size=st.integers(1, 5), read=st.integers(1, 4))
def test_a_change_between_pages_neither_repeats_nor_skips_an_entrant_who_did_not_move(
    start: list[DriverMonth], moves: list[DriverMonth | str], size: int, read: int
) -> None:
    """Pages are cut by the key of the last entrant shown, which is their own: an entrant
    whose figures did not change is on one side of the cut before and after, whatever
    others did (docs/rules.md#boards-pages-and-neighbours)."""
    kept = live(start)
    before = kept.board()
    pages = [boards.page_through(before, after=None, size=size)]
    while len(pages) < read and (after := pages[-1].after) is not None:
        pages.append(boards.page_through(before, after=after, size=size))
    for move in moves:
        if isinstance(move, str):
            kept.remove(move)
        else:
            kept.put(move)
    after_change = kept.board()
    if pages[-1].after is not None:
        pages.extend(pages_through(after_change, size, pages[-1].after))
    seen = [p.entrant.profile.user_id for one in pages for p in one.ranked]
    seen += [d.profile.user_id for one in pages for d in one.not_ranked]
    unmoved = [
        user
        for user in before.where
        if user in after_change.where and place(before, user) == place(after_change, user)
    ]
    assert all(seen.count(user) == 1 for user in unmoved)
