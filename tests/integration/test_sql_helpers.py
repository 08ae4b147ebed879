"""The set-based SQL helpers every store writes and looks up through, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DataError

from service.adapters.sql import InList, add_to_rows, key_lookups, upsert
from service.adapters.tables import consumer_offsets, service_state, state_versions, trips

AT = datetime(2026, 11, 3, 8, 30, 0, 123456, tzinfo=UTC)


def _trip(trip_id: str, user_id: str) -> dict[str, object]:
    return {
        "tenant_id": "acme",
        "trip_id": trip_id,
        "user_id": user_id,
        "ended_at": AT,
        "metres": 12_000,
        "safety": 81_000,
        "eco_driving": None,
        "distraction": None,
        "speeding": None,
        "arrived_at": AT,
        "deleted_arrived_at": None,
    }


def test_an_upsert_adds_to_the_stored_counters_and_inserts_the_missing_ones(
    engine: Engine,
) -> None:
    with engine.begin() as c:
        upsert(c, state_versions, [{"key": "a", "version": 1}], keys=["key"])
        rows = [{"key": "a", "version": 2}, {"key": "b", "version": 5}]
        upsert(c, state_versions, rows, keys=["key"], add=["version"])
        query = select(state_versions.c.key, state_versions.c.version)
        stored = {tenant: version for tenant, version in c.execute(query)}
    assert stored == {"a": 3, "b": 5}


def test_an_upsert_replaces_the_named_columns_or_keeps_the_stored_row(engine: Engine) -> None:
    with engine.begin() as c:
        upsert(c, service_state, [{"name": "n", "value": "first"}], keys=["name"])
        upsert(c, service_state, [{"name": "n", "value": "kept"}], keys=["name"])
        kept = c.execute(select(service_state.c.value)).scalar_one()
        upsert(c, service_state, [{"name": "n", "value": "new"}], keys=["name"], replace=["value"])
        replaced = c.execute(select(service_state.c.value)).scalar_one()
    assert (kept, replaced) == ("first", "new")


def test_an_upsert_quotes_reserved_column_names(engine: Engine) -> None:
    row = {"consumer_group": "g", "topic": "t", "partition": 3, "next_offset": 10}
    with engine.begin() as c:
        upsert(c, consumer_offsets, [row], keys=["consumer_group", "topic", "partition"])
        upsert(
            c,
            consumer_offsets,
            [{**row, "next_offset": 42}],
            keys=["consumer_group", "topic", "partition"],
            replace=["next_offset"],
        )
        stored = c.execute(select(consumer_offsets.c.partition, consumer_offsets.c.next_offset))
        assert list(stored) == [(3, 42)]


def test_upserted_times_and_nulls_read_back_as_written(engine: Engine) -> None:
    with engine.begin() as c:
        upsert(c, trips, [_trip("t1", "ann")], keys=["tenant_id", "trip_id"])
        row = c.execute(select(trips)).one()
    assert (row.ended_at, row.arrived_at, row.deleted_arrived_at) == (AT, AT, None)
    assert (row.safety, row.eco_driving) == (81_000, None)


def test_key_lookups_find_exactly_the_rows_of_the_keys_asked(engine: Engine) -> None:
    rows = [_trip(f"t{n}", f"u{n % 3}") for n in range(1_200)]
    with engine.begin() as c:
        upsert(c, trips, rows, keys=["tenant_id", "trip_id"])
        wanted = {("acme", f"t{n}") for n in range(0, 1_200, 7)} | {("acme", "absent")}
        wanted |= {("other", "t1")}
        found = {
            (row.tenant_id, row.trip_id)
            for condition in key_lookups((trips.c.tenant_id, trips.c.trip_id), wanted)
            for row in c.execute(select(trips.c.tenant_id, trips.c.trip_id).where(condition))
        }
        of_users = c.execute(select(trips.c.trip_id).where(InList(trips.c.user_id, ["u1"])))
        nobody = c.execute(select(trips.c.trip_id).where(InList(trips.c.user_id, [])))
        assert len(list(of_users)) == 400
        assert list(nobody) == []
    assert found == {("acme", f"t{n}") for n in range(0, 1_200, 7)}


def test_a_key_lookup_on_sqlite_searches_the_key_index_rather_than_scanning(
    memory_engine: Engine,
) -> None:
    (condition,) = key_lookups((trips.c.tenant_id, trips.c.trip_id), [("acme", "t1")])
    compiled = select(trips.c.trip_id).where(condition).compile(dialect=memory_engine.dialect)
    parameters = ("acme", json.dumps(["t1"]))  # as bound: the list travels as JSON text
    with memory_engine.connect() as c:
        rows = c.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", parameters)
        plan = " ".join(str(row[3]) for row in rows)
    assert "(tenant_id=? AND trip_id=?)" in plan


def test_adding_to_rows_changes_only_the_stored_rows_named(engine: Engine) -> None:
    with engine.begin() as c:
        rows = [{"key": "a", "version": 1}, {"key": "b", "version": 1}]
        upsert(c, state_versions, rows, keys=["key"])
        deltas = [{"key": "a", "version": 4}, {"key": "absent", "version": 9}]
        add_to_rows(c, state_versions, deltas, keys=["key"])
        query = select(state_versions.c.key, state_versions.c.version)
        stored = {tenant: version for tenant, version in c.execute(query)}
    assert stored == {"a": 5, "b": 1}


def test_an_id_longer_than_its_column_fails_an_upsert_rather_than_being_cut(
    postgresql_engine: Engine,
) -> None:
    """Validation keeps such ids out; this guards the mechanism: on PostgreSQL the values
    travel as arrays, and a cast to VARCHAR(200)[] would have cut the id to 200 characters.
    (SQLite enforces no VARCHAR width.)"""
    engine = postgresql_engine
    too_long = "t" * 250
    with pytest.raises(DataError, match="too long"), engine.begin() as c:
        upsert(c, trips, [_trip(too_long, "ann")], keys=["tenant_id", "trip_id"])
    with engine.connect() as c:
        assert c.execute(select(trips.c.trip_id)).all() == []


def test_adding_to_a_row_by_an_over_long_key_changes_no_row_sharing_its_prefix(
    engine: Engine,
) -> None:
    prefix = "k" * 200
    with engine.begin() as c:
        upsert(c, state_versions, [{"key": prefix, "version": 1}], keys=["key"])
        add_to_rows(c, state_versions, [{"key": prefix + "x", "version": 5}], keys=["key"])
        stored = c.execute(select(state_versions.c.version)).scalar_one()
    assert stored == 1
