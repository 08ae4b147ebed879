"""The set-based SQL helpers every store writes and looks up through, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Dialect, Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError

from service.adapters.sql import InList, add_to_rows, key_lookups, upsert, upsert_rows
from service.adapters.tables import (
    EPOCH,
    Instant,
    challenge_entries,
    consumer_offsets,
    driver_months,
    from_micros,
    micros_or_none,
    service_state,
    state_versions,
    to_micros,
    trips,
)
from service.domain.exact import add

AT = datetime(2026, 11, 3, 8, 30, 0, 123456, tzinfo=UTC)


def _trip(trip_id: str, user_id: str) -> dict[str, object]:
    return {
        "tenant_id": "acme",
        "trip_id": trip_id,
        "user_id": user_id,
        "ended_at": AT,
        "distance_km": 12.345678901234567,
        "safety": 8.1,
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


FINE = Decimal("0.1000000000000000000000000000000000000001")
"""More digits than a double or Python's default decimal context (28) keep."""


def _month(user_id: str, km: Decimal) -> dict[str, object]:
    figures = {c.name: km for c in driver_months.c if c.name.endswith(("_weighted", "_weight"))}
    return {
        "tenant_id": "acme",
        "year": 2026,
        "month": 11,
        "user_id": user_id,
        "trips": 1,
        "km": km,
        **figures,
    }


def test_an_upsert_adds_exact_figures_exactly(engine: Engine) -> None:
    key = ["tenant_id", "year", "month", "user_id"]
    added = [c.name for c in driver_months.c if not c.primary_key and c.name != "changed_in"]
    with engine.begin() as c:  # (changed_in: a stamp, not a figure)
        upsert(c, driver_months, [_month("ann", FINE)], keys=key, add=added)
        rows = [_month("ann", Decimal("5E-324")), _month("bob", FINE)]
        upsert(c, driver_months, rows, keys=key, add=added)
        stored = {row.user_id: row for row in c.execute(select(driver_months))}
    figures = [name for name in added if name != "trips"]
    assert stored["ann"].trips == 2
    assert {getattr(stored["ann"], name) for name in figures} == {add(FINE, Decimal("5E-324"))}
    assert {getattr(stored["bob"], name) for name in figures} == {FINE}


def test_adding_to_rows_adds_exact_figures_exactly(engine: Engine) -> None:
    tally = {f"{p}_{f}": FINE for p in ("during", "before") for f in ("km", "weighted", "weight")}
    row = {
        "tenant_id": "acme",
        "challenge_id": "c1",
        "user_id": "ann",
        "registered_at": AT,
        "arrived_at": AT,
        "during_trips": 1,
        "before_trips": 0,
        **tally,
    }
    delta = {"tenant_id": "acme", "challenge_id": "c1", "user_id": "ann", "during_trips": 1}
    delta |= {name: FINE.copy_negate() if name.startswith("b") else FINE for name in tally}
    with engine.begin() as c:
        upsert(c, challenge_entries, [row], keys=["tenant_id", "challenge_id", "user_id"])
        add_to_rows(c, challenge_entries, [delta], keys=["tenant_id", "challenge_id", "user_id"])
        stored = c.execute(select(challenge_entries)).one()
    twice = Decimal("0.2000000000000000000000000000000000000002")
    assert (stored.during_trips, stored.during_km, stored.before_weight) == (2, twice, 0)


def test_a_sum_sqlite_cannot_make_exactly_fails_as_the_batchs_own_fault(
    memory_engine: Engine,
) -> None:
    """Beyond the precision figures within the bounds ever need: the statement fails on the
    NOT NULL column (a data error: the batch is split and its culprit dead-lettered), rather
    than a rounded sum being stored or SQLite reporting a failure of its own."""
    key = ["tenant_id", "year", "month", "user_id"]
    with memory_engine.begin() as c:
        upsert(c, driver_months, [_month("ann", Decimal("1E+999"))], keys=key)
    tiny = [_month("ann", Decimal("1E-999"))]
    with memory_engine.begin() as c, pytest.raises(IntegrityError, match="NOT NULL"):
        upsert(c, driver_months, tiny, keys=key, add=["km"])


def test_upserted_times_and_nulls_read_back_as_written(engine: Engine) -> None:
    with engine.begin() as c:
        upsert(c, trips, [_trip("t1", "ann")], keys=["tenant_id", "trip_id"])
        row = c.execute(select(trips)).one()
    assert (row.ended_at, row.arrived_at, row.deleted_arrived_at) == (AT, AT, None)
    assert (row.distance_km, row.safety, row.eco_driving) == (12.345678901234567, 8.1, None)


def test_rows_upserted_with_their_times_in_microseconds_read_back_as_written(
    engine: Engine,
) -> None:
    names = tuple(_trip("t", "ann"))
    first, second = _trip("t1", "ann"), _trip("t2", "bob")
    second["distance_km"] = 12  # an int among doubles: PostgreSQL's arrays take one type
    rows = [
        tuple(micros_or_none(v) if isinstance(v, datetime) else v for v in trip.values())
        for trip in (first, second)
    ]
    with engine.begin() as c:
        assert upsert_rows(c, trips, names, rows, keys=["tenant_id", "trip_id"]) == 2
        assert upsert_rows(c, trips, names, rows[:1], keys=["tenant_id", "trip_id"]) == 0
        stored = c.execute(select(trips).order_by(trips.c.trip_id)).all()
    assert [row._asdict() for row in stored] == [first, second]
    assert isinstance(stored[1].distance_km, float)


@given(st.datetimes(timezones=st.just(UTC)))
def test_a_time_in_microseconds_is_the_microseconds_since_the_epoch(moment: datetime) -> None:
    assert to_micros(moment) == (moment - EPOCH) // timedelta(microseconds=1)
    assert from_micros(to_micros(moment)) == moment


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


@pytest.mark.parametrize(
    "dialect",
    [sqlite.dialect(), postgresql.psycopg.dialect()],  # type: ignore[no-untyped-call]
)
def test_a_time_binds_as_through_the_type_decorator_on_either_database(dialect: Dialect) -> None:
    instant = Instant()
    assert instant.impl_instance.bind_processor(dialect) is None  # BigInteger binds as it is
    process = instant.bind_processor(dialect)
    for moment in (None, EPOCH, AT, datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)):
        assert process(moment) == instant.process_bind_param(moment, dialect)
