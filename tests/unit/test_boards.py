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
