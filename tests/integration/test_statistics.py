"""Podium keeps the planner's statistics of the tables it writes current itself
(docs/operations.md#the-planners-statistics): every table after the first catch-up, and a
table again once the rows its batches added exceed GROWTH_FRACTION of the rows it held at
its last ANALYZE; a failed ANALYZE is reported and waits for more growth, never retried in a
loop. Both databases."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

import pytest
from sqlalchemy import Engine, text

from service.adapters.database import create_database_engine
from service.adapters.statistics import GROWTH_FRACTION, TABLES, TableStatistics
from service.app.ingest import Batch, apply_batch
from service.bootstrap import PlannerStatistics, Storage
from service.domain import events as ev
from service.metrics import Metrics
from tests.builders import RULES, T0, received, trip
from tests.waiting import eventually

_trip_ids = itertools.count()


def _fold_trips(storage: Storage, count: int) -> None:
    events: list[ev.Event] = [trip(f"t{next(_trip_ids)}", f"u{n % 50}") for n in range(count)]
    apply_batch(
        storage.unit_of_work,
        Batch(received=received(events)),
        rules=RULES,
        consumer_group="stats",
        now=T0,
    )


def analyzed_rows(engine: Engine, table: str) -> int | None:
    """The rows the planner believes `table` holds (None: it was never analyzed)."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(
                text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
            ).scalar_one()
            return None if rows < 0 else int(rows)
        if (
            connection.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).first()
            is None
        ):
            return None
        stat = connection.execute(
            text("SELECT stat FROM sqlite_stat1 WHERE tbl = :t LIMIT 1"), {"t": table}
        ).scalar()
        return None if stat is None else int(stat.split()[0])


@pytest.fixture
def statistics(engine: Engine) -> TableStatistics:
    return TableStatistics(engine)


@pytest.fixture
def counted(engine: Engine, statistics: TableStatistics) -> Storage:
    """Storage whose units of work count what they add, for `statistics`."""
    return Storage(engine, None, statistics)


def test_every_table_is_analyzed_after_the_first_catch_up(
    engine: Engine, statistics: TableStatistics, counted: Storage
) -> None:
    _fold_trips(counted, 300)
    assert analyzed_rows(engine, "trips") is None

    outcomes = statistics.analyze_all()

    assert [o.table for o in outcomes] == list(TABLES)
    assert [o.failure for o in outcomes] == [None] * len(TABLES)
    assert analyzed_rows(engine, "trips") == 300
    assert analyzed_rows(engine, "driver_months") == 50


def test_a_table_is_analyzed_again_once_it_grew_by_more_than_its_share(
    engine: Engine, statistics: TableStatistics, counted: Storage
) -> None:
    _fold_trips(counted, 2_000)
    statistics.analyze_all()
    share = int(GROWTH_FRACTION * 2_000)

    _fold_trips(counted, share - 100)
    _fold_trips(counted, 100)  # exactly its share: not more
    assert "trips" not in [o.table for o in statistics.analyze_grown()]
    assert analyzed_rows(engine, "trips") == 2_000

    _fold_trips(counted, 1)
    assert "trips" in [o.table for o in statistics.analyze_grown()]
    assert analyzed_rows(engine, "trips") == 2_000 + share + 1
    assert statistics.analyze_grown() == []  # nothing grew since


def test_a_batch_rolled_back_adds_nothing(
    engine: Engine, statistics: TableStatistics, counted: Storage
) -> None:
    _fold_trips(counted, 2_000)
    statistics.analyze_all()
    events = [trip(f"t{next(_trip_ids)}", "u1") for _ in range(1_500)]
    apply_batch(
        counted.unit_of_work,
        Batch(received=received(events)),
        rules=RULES,
        consumer_group="stats",
        now=T0,
        dry_run=True,
    )
    assert statistics.analyze_grown() == []


def _unreachable(engine: Engine) -> Engine:
    if engine.dialect.name == "postgresql":
        return create_database_engine("postgresql://postgres@127.0.0.1:1/test?connect_timeout=1")
    return create_database_engine("sqlite:////nonexistent-folder/podium.db")


def test_a_failed_analyze_is_reported_and_waits_for_more_growth(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    statistics = TableStatistics(_unreachable(engine))
    counted = Storage(engine, None, statistics)
    _fold_trips(counted, 2_000)

    with caplog.at_level(logging.WARNING, logger="service.adapters.statistics"):
        first = statistics.analyze_grown()
    assert "trips" in [o.table for o in first]
    assert all(o.failure for o in first), first
    assert "could not analyze trips" in caplog.text

    assert statistics.analyze_grown() == []  # not tried again in a loop
    _fold_trips(counted, 1_001)  # more than half of the 2,000 it was taken to hold
    assert "trips" in [o.table for o in statistics.analyze_grown()]


async def test_on_postgresql_the_tables_that_grew_are_analyzed_during_the_first_catch_up(
    engine: Engine, statistics: TableStatistics, counted: Storage
) -> None:
    """A catch-up into an empty database is planned with statistics that follow its tables
    (on PostgreSQL); SQLite's ingest would keep those of its first ANALYZE, so there the
    tables wait for the catch-up's end, as every table is analyzed then."""
    _fold_trips(counted, 1_200)
    metrics = Metrics()
    keeper = PlannerStatistics(lambda: statistics, metrics)
    analyzed_all = asyncio.Event()  # the first catch-up is not over
    keeper.committed.set()
    keeping = asyncio.create_task(keeper.keep(analyzed_all))
    try:
        if engine.dialect.name == "postgresql":
            assert statistics.during_catch_up
            await eventually(lambda: analyzed_rows(engine, "trips") == 1_200, what="analyzed")
        else:
            assert not statistics.during_catch_up
            for _ in range(20):
                await asyncio.sleep(0.01)
            assert analyzed_rows(engine, "trips") is None
            analyzed_all.set()
            await eventually(lambda: analyzed_rows(engine, "trips") == 1_200, what="analyzed")
        done = metrics.registry.get_sample_value(
            "podium_table_analyzes_total", {"table": "trips", "outcome": "done"}
        )
        assert done == 1
    finally:
        keeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeping
