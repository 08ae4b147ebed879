"""Writers of one tenant side by side on PostgreSQL (docs/rules.md#writers-of-one-tenant): a
batch held open at its commit does not stop a batch of another bucket, whose commit comes
first; a kept board brought up to date after each commit is the board read anew, whatever
order the writers commit in. A batch of the same bucket, or with catalog events, waits; a
trip id another writer records meanwhile is found once its insert has waited for that
writer's commit, and conflicts.

SQLite has one writer (its write lock is taken at a transaction's start): nothing to
interleave there."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

import migrations
from service.adapters.database import create_database_engine
from service.adapters.unit_of_work import SqlUnitOfWork
from service.app.answers import MonthBoardQuery, driver_ranking
from service.app.ingest import Applied, Batch, apply_batch
from service.app.results import record_all_results, record_results
from service.app.shards import Buckets
from service.bootstrap import Storage
from service.domain import events as ev
from service.result_events import encode
from tests.builders import RULES, received, trip, user
from tests.databases import empty_database
from tests.integration.test_driver_ranking_properties import NOW
from tests.integration.test_kept_boards_properties import Kept, kept_or_read, rebuilt
from tests.waiting import eventually

BUCKETS = Buckets(4)
RELEASE_WITHIN = 60.0
"""How long a held commit waits to be released: a guard against a test that never does."""


def users_in(buckets: list[int], prefix: str) -> list[str]:
    """One user id (`prefix` and a number) in each of these buckets, in their order."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < len(set(buckets)):
        user_id = f"{prefix}{n}"
        if BUCKETS.of(user_id) in buckets:
            found.setdefault(BUCKETS.of(user_id), user_id)
        n += 1
    return [found[b] for b in buckets]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with empty_database("postgresql", tmp_path) as url:
        engine = create_database_engine(url)
        migrations.upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()


class HeldAtCommit:
    """Units of work whose commit waits, its locks held, until the test releases it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reached = threading.Event()
        self.release = threading.Event()
        self.backend = 0
        """The holding transaction's PostgreSQL backend, known once `reached` is set."""

    def __call__(self) -> SqlUnitOfWork:
        held = self

        class Held(SqlUnitOfWork):
            def commit(self) -> None:
                backend = self._require().exec_driver_sql("SELECT pg_backend_pid()")
                held.backend = int(backend.scalar_one())
                held.reached.set()
                if not held.release.wait(RELEASE_WITHIN):
                    raise RuntimeError("the test never released the commit")
                super().commit()

        return Held(self.engine)


def fold(units: object, *events: ev.Event) -> Applied:
    return apply_batch(
        units,  # type: ignore[arg-type]
        Batch(received=received(events)),
        rules=RULES,
        consumer_group="side-by-side",
        now=NOW,
        buckets=BUCKETS,
    )


def month_query() -> MonthBoardQuery:
    month = driver_ranking("acme", ev.ScoreKind.SAFETY, "", RULES, NOW).months[0]
    return replace(month, kept_from=0)  # however small, kept


def trips_on_board(storage: Storage, kept: Kept) -> dict[str, int]:
    """The kept board brought up to date, checked against the board read anew; each
    driver's trips on it."""
    query = month_query()
    with storage.read() as reading:
        board = kept_or_read(reading, query, kept)
        expected = rebuilt(reading, query)
    assert board == expected
    assert board.board == expected.board
    standings = board.board.standings
    listed = [p.entrant for p in standings.ranked] + list(standings.not_ranked)
    return {d.profile.user_id: d.tally.trips for d in listed}


async def test_a_kept_board_follows_writers_of_two_buckets_committing_out_of_order(
    engine: Engine,
) -> None:
    storage = Storage(engine)
    first, second = users_in([0, 1], "d")
    seeds = users_in([2, 3], "s")
    fold(storage.unit_of_work, *(trip(f"seed-{u}", u, ended_at=NOW.replace(day=2)) for u in seeds))
    kept: Kept = {}
    assert trips_on_board(storage, kept) == {seeds[0]: 1, seeds[1]: 1}
    held = HeldAtCommit(engine)
    ended = NOW.replace(day=3)
    holding = asyncio.create_task(
        asyncio.to_thread(fold, held, trip("a1", first, ended_at=ended), trip("a2", first))
    )
    assert await asyncio.to_thread(held.reached.wait, RELEASE_WITHIN)
    # The other bucket folds and commits while the first batch holds its locks and the
    # first shard of the month's version, stamped before this commit, is not committed.
    fold(
        storage.unit_of_work,
        trip("b1", second, ended_at=ended),
        trip(f"b2-{seeds[0]}", seeds[0], ended_at=ended),
    )
    assert trips_on_board(storage, kept) == {second: 1, seeds[0]: 2, seeds[1]: 1}
    held.release.set()
    await holding
    assert trips_on_board(storage, kept) == {first: 2, second: 1, seeds[0]: 2, seeds[1]: 1}
    fold(storage.unit_of_work, trip("a3", first, ended_at=ended))
    assert trips_on_board(storage, kept)[first] == 3


async def waiting_on_a_lock(engine: Engine, kind: str, held: HeldAtCommit) -> None:
    """Until a backend waits for a lock of `kind` that the held transaction holds. Only
    those: lock waits are the whole cluster's, and other tests' writers run beside this one
    (a wait of theirs would release the held commit before this test's waiter got there)."""

    def waiting() -> int:
        query = text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = :kind "
            "AND :holder = ANY(pg_blocking_pids(pid))"
        )
        with engine.connect() as c:
            return int(c.execute(query, {"kind": kind, "holder": held.backend}).scalar_one())

    await eventually(waiting, what=f"a backend waiting for a {kind} lock the held one holds")


@pytest.mark.parametrize("case", ["same user", "same bucket", "catalog"])
async def test_a_batch_of_a_bucket_held_or_with_catalog_events_waits_for_the_holder(
    engine: Engine, case: str
) -> None:
    storage = Storage(engine)
    first, other = users_in([0], "d")[0], users_in([0], "o")[0]
    second, expected = {
        "same user": ([trip("b1", first, ended_at=NOW)], {first: 2}),
        "same bucket": ([trip("b1", other, ended_at=NOW)], {first: 1, other: 1}),
        "catalog": ([user("zed"), trip("b1", "zed", ended_at=NOW)], {first: 1, "zed": 1}),
    }[case]
    held = HeldAtCommit(engine)
    holding = asyncio.create_task(asyncio.to_thread(fold, held, trip("a1", first, ended_at=NOW)))
    assert await asyncio.to_thread(held.reached.wait, RELEASE_WITHIN)
    waiting = asyncio.create_task(asyncio.to_thread(fold, storage.unit_of_work, *second))
    await waiting_on_a_lock(engine, "advisory", held)
    assert not waiting.done()
    held.release.set()
    await holding
    await waiting
    assert trips_on_board(storage, {}) == expected


async def test_a_trip_id_another_writer_records_meanwhile_folds_again_and_conflicts(
    engine: Engine,
) -> None:
    """The same trip id sent for users of two buckets at once: the second batch's insert of
    it waits for the first's commit, finds its trip recorded and folds on it, its trip then a
    conflict (dead-lettered) at once, as when it comes again."""
    storage = Storage(engine)
    first, second = users_in([0, 1], "d")
    held = HeldAtCommit(engine)
    holding = asyncio.create_task(
        asyncio.to_thread(fold, held, trip("shared", first, ended_at=NOW))
    )
    assert await asyncio.to_thread(held.reached.wait, RELEASE_WITHIN)
    racing = asyncio.create_task(
        asyncio.to_thread(fold, storage.unit_of_work, trip("shared", second, ended_at=NOW))
    )
    await waiting_on_a_lock(engine, "transactionid", held)
    held.release.set()
    await holding
    raced = await racing
    assert [d.rejection.kind for d in raced.dead_lettered] == ["conflict"]
    again = fold(storage.unit_of_work, trip("shared", second, ended_at=NOW))
    assert [d.rejection.kind for d in again.dead_lettered] == ["conflict"]
    assert trips_on_board(storage, {}) == {first: 1}


def test_the_lock_buckets_are_the_first_writers_proposal_kept(engine: Engine) -> None:
    storage = Storage(engine)
    assert storage.lock_buckets(Buckets(4)) == Buckets(4)
    assert storage.lock_buckets(Buckets(8, "crc32")) == Buckets(4)


async def test_a_result_recorded_while_another_instance_waited_for_the_lock_is_not_built_again(
    engine: Engine,
) -> None:
    """Every consuming instance looks for freezes: the second to take a tenant's lock for a
    window finds the first's result and records nothing (it would hold the tenant's batches
    while building it for nothing)."""
    storage = Storage(engine)
    in_october = NOW.replace(month=10)
    fold(storage.unit_of_work, user("ann", at=in_october), trip("t1", "ann", ended_at=in_october))
    held = HeldAtCommit(engine)
    first = asyncio.create_task(asyncio.to_thread(record_results, held, RULES, NOW, encode))
    assert await asyncio.to_thread(held.reached.wait, RELEASE_WITHIN)
    second = asyncio.create_task(
        asyncio.to_thread(record_results, storage.results_work, RULES, NOW, encode)
    )
    await waiting_on_a_lock(engine, "advisory", held)
    held.release.set()
    recorded = await first
    assert len(recorded) == 1
    assert await second == []
    assert record_all_results(storage.results_work, RULES, NOW, encode) == 3
