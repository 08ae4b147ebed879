"""The ingest's look-ups of a batch's rows by key are planned as probes of the key's index on
PostgreSQL, however many keys a batch holds against the table: its sessions price a random
page read as a sequential one (`WRITER_RANDOM_PAGE_COST`). At the server's default price, and
before a batch's new trips were inserted without a look-up, the planner read a replay's batch
of 20,000 trips among 2,000,000 by scanning the table (bench/RESULTS.md, "PostgreSQL at 10x:
the trips' look-up scans"): a cost per batch that grows with the table. A batch now looks up
only its trips seen again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event

import migrations
from service.adapters.database import WRITER_RANDOM_PAGE_COST
from service.bootstrap import Storage
from service.domain import events as ev
from tests.builders import apply, trip
from tests.databases import empty_database

pytestmark = pytest.mark.postgresql

STORED = 20_000
BATCH = 200


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with empty_database("postgresql", tmp_path) as url:
        storage = Storage.of(url)
        try:
            migrations.upgrade(storage.engine)
            yield storage
        finally:
            storage.close()


def _trips(first: int, count: int) -> list[ev.Event]:
    return [trip(f"t{n}", f"u{n % 2_000}") for n in range(first, first + count)]


def _trips_look_up(storage: Storage, events: list[ev.Event]) -> tuple[str, Any]:
    """The statement (and its parameters) that looks the batch's trips up, as the ingest
    issued it."""
    seen: list[tuple[str, Any]] = []
    assert storage.writer is not None

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM trips" in statement:
            seen.append((statement, parameters))

    event.listen(storage.writer, "before_cursor_execute", capture)
    try:
        apply(storage, *events)
    finally:
        event.remove(storage.writer, "before_cursor_execute", capture)
    (look_up,) = [(s, p) for s, p in seen if "ANY" in s and "trip_id" in s]
    return look_up


def _explained(connection: Connection, statement: str, parameters: Any) -> dict[str, Any]:
    row = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar()
    plan = row if isinstance(row, list) else json.loads(str(row))
    return dict(plan[0]["Plan"])


def _scans(node: dict[str, Any]) -> list[tuple[str, str | None]]:
    found = [(node["Node Type"], node.get("Index Name"))] if "Scan" in node["Node Type"] else []
    for child in node.get("Plans", ()):
        found += _scans(child)
    return found


def test_a_batchs_trips_are_looked_up_by_their_primary_key_in_an_analyzed_table(
    storage: Storage,
) -> None:
    for first in range(0, STORED, 5_000):
        apply(storage, *_trips(first, 5_000))
    assert storage.statistics is not None
    storage.statistics.analyze_all()

    # Trips seen again (re-sent): a batch looks up the stored ones among those it holds.
    statement, parameters = _trips_look_up(storage, _trips(STORED - BATCH, BATCH))

    assert storage.writer is not None
    with storage.writer.connect() as connection:
        cost = connection.exec_driver_sql("SHOW random_page_cost").scalar_one()
        assert float(cost) == float(WRITER_RANDOM_PAGE_COST)
        assert _scans(_explained(connection, statement, parameters)) == [
            ("Index Scan", "trips_pkey")
        ]
    # The readers keep the server's price: only the ingest's sessions set their own.
    source = "SELECT source FROM pg_settings WHERE name = 'random_page_cost'"
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql(source).scalar_one() != "session"
    with storage.writer.connect() as connection:
        assert connection.exec_driver_sql(source).scalar_one() == "session"
