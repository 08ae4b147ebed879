"""A board an API instance keeps, updated batch after batch from the driver months changed
since the versions it reflects, is the board read anew from the whole state: after any
sequence of batches, frozen months, deletions and group changes included, in memory (the
fakes) as in SQLite (the contract tests hold PostgreSQL's reads of changes to the same)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import queries
from service.app.answers import MonthBoardQuery, driver_ranking
from service.app.ports import ReadModel
from service.app.queries import MonthBoard
from service.app.state_versions import month_key
from service.domain import events as ev
from service.domain.errors import InvalidGroupLabel
from service.domain.ranking import MonthTotals
from tests.builders import RULES, Ports, apply, arrival_batches, memory_storage, trip, user
from tests.fakes import FakePorts
from tests.integration.test_driver_ranking_properties import GROUPS, NOW, streams

Kept = dict[tuple[object, ...], tuple[MonthBoard, dict[str, int]]]


def kept_or_read(reading: ReadModel, query: MonthBoardQuery, kept: Kept) -> MonthBoard:
    """What the answer cache does: update the kept board if there is one, else read it."""
    now = {key: state.number for key, state in reading.state_versions(query.reflects).items()}
    before = kept.get(query.key)
    board = None if before is None else query.update(reading, before[0], before[1], now)
    if board is None:
        board = query.load(reading)
    kept[query.key] = (board, now)
    return board


def rebuilt(reading: ReadModel, query: MonthBoardQuery) -> MonthBoard:
    q = query
    return queries.month_board(reading, q.tenant_id, q.kind, q.group, q.month, q.rules, q.now)


@contextlib.contextmanager
def storages(kind: str) -> Iterator[Ports]:
    if kind == "memory":
        yield FakePorts()
    else:
        with memory_storage() as storage:
            yield storage


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=streams(),
    data=st.data(),
    kind=st.sampled_from(["memory", "sqlite"]),
    score=st.sampled_from(list(ev.ScoreKind)),
)
def test_a_kept_board_updated_after_each_batch_is_the_board_read_anew(
    events: list[ev.Event], data: st.DataObject, kind: str, score: ev.ScoreKind
) -> None:
    kept: Kept = {}
    with storages(kind) as storage:
        for batch in arrival_batches(data, events):
            apply(storage, *batch)
            with storage.read() as reading:
                for group in ["", *GROUPS, "never-listed"]:
                    for month in driver_ranking("acme", score, group, RULES, NOW).months:
                        query = replace(month, kept_from=0)  # however small, kept
                        try:
                            expected = rebuilt(reading, query)
                        except InvalidGroupLabel:
                            kept.pop(query.key, None)
                            continue
                        board = kept_or_read(reading, query, kept)
                        assert board == expected
                        assert board.board == expected.board


def test_a_kept_board_is_read_whole_again_a_minute_after_it_was() -> None:
    """Changes an older consumer folded carry no stamp (a rollout from before migration
    0012): a kept board misses them until it is next read whole, a minute on at most."""
    storage = FakePorts()
    apply(storage, user("d1", "g", at=NOW), trip("t1", "d1", km=30.0, safety=80.0, ended_at=NOW))
    query = replace(
        driver_ranking("acme", ev.ScoreKind.SAFETY, "g", RULES, NOW).months[0], kept_from=0
    )
    kept: Kept = {}
    with storage.read() as reading:
        kept_or_read(reading, query, kept)
    with storage.unit_of_work() as uow:  # as an older consumer writes: no stamp
        uow.driver_months.add({("acme", "d1", query.month): MonthTotals(trips=1, km=Decimal(5))})
        uow.versions.bump({month_key("acme", query.month): NOW})
        uow.commit()
    later = replace(query, now=NOW + timedelta(seconds=59))
    a_minute_on = replace(query, now=NOW + timedelta(minutes=1))
    with storage.read() as reading:
        missed = kept_or_read(reading, later, kept)
        assert trips(missed) == {"d1": 1}
        seen = kept_or_read(reading, a_minute_on, kept)
        assert seen == rebuilt(reading, a_minute_on)
        assert trips(seen) == {"d1": 2}


def trips(board: MonthBoard) -> dict[str, int]:
    standings = board.board.standings
    listed = [p.entrant for p in standings.ranked] + list(standings.not_ranked)
    return {d.profile.user_id: d.tally.trips for d in listed}
