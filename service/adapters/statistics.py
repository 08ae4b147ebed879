"""The planner's statistics of Podium's tables, kept current by Podium itself
(docs/operations.md#the-planners-statistics).

A database plans each query from statistics that only ANALYZE gathers. PostgreSQL's autovacuum
gathers them when it is on, a minute or more after a bulk load; SQLite never does, and what it
gathered once does not follow a table as it grows. A rebuild from the topics fills tables that
were never analyzed. So Podium analyzes the tables it writes: all of them after its first
catch-up, and each one again once the rows it gained since its last ANALYZE exceed
GROWTH_FRACTION of the rows it held then (on PostgreSQL from the first batch on, the first
catch-up included: `TableStatistics.during_catch_up`).

The units of work count what each table gains (`TableStatistics.transaction`): the rows their
transaction inserted less those it deleted, as PostgreSQL counts them for its own statistics,
or how far each table's highest rowid moved on SQLite, read as the transaction begins and as
it is about to commit. Each instance counts its own batches. ANALYZE runs apart from the
batches, on a connection of its own: on PostgreSQL it takes a lock that conflicts with other
ANALYZEs, VACUUM and schema changes, so inside a batch's transaction it would hold those back,
in every instance sharing the database, until the commit; SKIP_LOCKED passes over a table
another instance is analyzing. A failed ANALYZE is logged and returned; its table waits for
another GROWTH_FRACTION before it is tried again, never in a loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from service.adapters.database import WRITER, renew_connections
from service.adapters.tables import metadata
from service.logs import describe

log = logging.getLogger(__name__)

GROWTH_FRACTION = 0.5
"""A table is analyzed again once it gained more than this fraction of the rows it held at
its last ANALYZE: often enough that the planner knows a table that doubled, rarely enough
that a table growing steadily is analyzed a logarithmic number of times."""
SMALL_TABLE_ROWS = 1_000
"""Growth is judged against at least this many rows: a table of a few rows is not analyzed
again for every few rows it gains."""
SQLITE_ANALYSIS_LIMIT = 20_000
"""Rows SQLite's ANALYZE reads from each index (`PRAGMA analysis_limit`): enough to know how
many rows a key finds within a tenant; reading every row of a big table would hold the write
lock, and the ingest, for as long as a full scan takes."""

TABLES = tuple(table.name for table in metadata.sorted_tables)


@dataclass(frozen=True, slots=True)
class Analyzed:
    table: str
    failure: str | None = None
    """Why ANALYZE failed (the error's class and SQLSTATE), None when it ran."""


class TableStatistics:
    """Counts what each table gains and analyzes the tables that grew. Thread-safe: units of
    work count on the ingest's threads, ANALYZE runs on another."""

    def __init__(self, engine: Engine, tables: Sequence[str] = TABLES) -> None:
        self._engine = engine
        self._tables = tuple(tables)
        self._lock = threading.Lock()
        self._gained: Counter[str] = Counter()
        """Rows each table gained since it was last analyzed."""
        self._rows: dict[str, int] = {}
        """Rows each table held when it was last analyzed (as the database estimates them)."""

    @property
    def during_catch_up(self) -> bool:
        """Whether the tables that grow are analyzed during the first catch-up too, not only
        after it: on PostgreSQL, whose ingest plans each batch's look-ups afresh, and without
        statistics looked a batch's trips up by scanning every trip of the tenant (a cost per
        batch that grows with the table: bench/RESULTS.md, "PostgreSQL at 10x: the trips'
        look-up scans"). Not on SQLite: the ingest's connection loads statistics once, as
        the first ANALYZE creates them, and would keep those of a table a few rows long."""
        return self._engine.dialect.name == "postgresql"

    def transaction(self, connection: Connection) -> TransactionGrowth:
        """Counts what the transaction the connection just began adds to each table."""
        return TransactionGrowth(connection, self._tables, self._add)

    def analyze_all(self) -> list[Analyzed]:
        """ANALYZE every table (after the first catch-up: a rebuilt database never was)."""
        return self._analyze(self._tables)

    def analyze_grown(self) -> list[Analyzed]:
        """ANALYZE the tables that gained more than GROWTH_FRACTION since their last one."""
        with self._lock:
            grown = [
                table
                for table, gained in self._gained.items()
                if gained > GROWTH_FRACTION * max(self._rows.get(table, 0), SMALL_TABLE_ROWS)
            ]
        return self._analyze(sorted(grown)) if grown else []

    def _add(self, gained: Mapping[str, int]) -> None:
        with self._lock:
            self._gained.update(gained)

    def _analyze(self, tables: Sequence[str]) -> list[Analyzed]:
        started = time.perf_counter()
        with self._lock:  # whatever ANALYZE does, growth counts from here
            gained = {table: self._gained.pop(table, 0) for table in tables}
        if self._engine.dialect.name == "postgresql":
            outcomes = [self._analyzed_postgresql(table) for table in tables]
        else:
            outcomes = self._analyzed_sqlite(tables)
        for outcome in outcomes:
            if outcome.failure is not None:
                # Taken as analyzed at its current size: tried again only once it grew by
                # another GROWTH_FRACTION, never in a loop.
                self._held(outcome.table, self._rows.get(outcome.table, 0) + gained[outcome.table])
        done = [o.table for o in outcomes if o.failure is None]
        if done:
            log.info(
                "analyzed %s in %.2f s",
                ", ".join(done),
                time.perf_counter() - started,
                extra={"tables": done},
            )
        for outcome in outcomes:
            if outcome.failure is not None:
                log.warning(
                    "could not analyze %s (%s); the planner keeps its older statistics",
                    outcome.table,
                    outcome.failure,
                    extra={"table": outcome.table},
                )
        return outcomes

    def _analyzed_postgresql(self, table: str) -> Analyzed:
        name = self._engine.dialect.identifier_preparer.quote(table)
        try:
            with self._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            ) as connection:
                connection.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {name}")
                rows = connection.execute(
                    text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                    {"t": table},
                ).scalar()
        except Exception as error:
            return Analyzed(table, describe(error))
        self._held(table, int(rows or 0))
        return Analyzed(table)

    def _analyzed_sqlite(self, tables: Sequence[str]) -> list[Analyzed]:
        """Then the readers' pooled connections are renewed: SQLite loads statistics when a
        connection opens or the schema changes, and ANALYZE changes no schema once its
        statistics table exists."""
        outcomes = []
        quote = self._engine.dialect.identifier_preparer.quote
        for table in tables:
            try:
                with self._engine.connect().execution_options(**WRITER) as connection:
                    connection.exec_driver_sql(f"PRAGMA analysis_limit = {SQLITE_ANALYSIS_LIMIT}")
                    connection.exec_driver_sql(f"ANALYZE {quote(table)}")
                    rows = _rowid_marks(connection, [table])[table]
                    connection.commit()
            except Exception as error:
                outcomes.append(Analyzed(table, describe(error)))
                continue
            self._held(table, rows)
            outcomes.append(Analyzed(table))
        renew_connections(self._engine)
        return outcomes

    def _held(self, table: str, rows: int) -> None:
        with self._lock:
            self._rows[table] = max(rows, 0)


class TransactionGrowth:
    """What one transaction adds to each table: its counts as it began, then as it is about
    to commit."""

    def __init__(
        self,
        connection: Connection,
        tables: Sequence[str],
        record: Callable[[Mapping[str, int]], None],
    ) -> None:
        self._connection = connection
        self._tables = tables
        self._record = record
        self._count = (
            _inserted_less_deleted if connection.dialect.name == "postgresql" else _rowid_marks
        )
        self._before = self._count(connection, tables)

    def committing(self) -> Callable[[], None]:
        """Read what the transaction added; the call returned records it, once committed."""
        after = self._count(self._connection, self._tables)
        gained = {t: n - self._before.get(t, 0) for t, n in after.items()}
        grown = {table: rows for table, rows in gained.items() if rows > 0}
        return lambda: self._record(grown)


def _inserted_less_deleted(connection: Connection, tables: Sequence[str]) -> dict[str, int]:
    """Rows inserted into each table less those deleted, as this session counts them for
    PostgreSQL's statistics and has not reported yet (`pg_stat_xact_user_tables`): the
    current transaction's, and on PostgreSQL 15 also those of earlier transactions not
    reported yet, which the count at its start takes away again."""
    rows = connection.execute(
        text(
            "SELECT t.name, pg_stat_get_xact_tuples_inserted(c.oid)"
            " - pg_stat_get_xact_tuples_deleted(c.oid)"
            " FROM unnest(CAST(:tables AS text[])) AS t(name)"
            " JOIN pg_class c ON c.oid = to_regclass(t.name)"
        ),
        {"tables": list(tables)},
    )
    return {table: int(count) for table, count in rows}


def _rowid_marks(connection: Connection, tables: Sequence[str]) -> dict[str, int]:
    """Each table's highest rowid (0 when empty): it moves by the rows inserted, and reading
    it is a step down one B-tree, whatever the table's size. Tables not created yet (a schema
    not migrated) have none."""
    schema = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
    created = set(schema.scalars())
    present = [table for table in tables if table in created]
    if not present:
        return {}
    quote = connection.dialect.identifier_preparer.quote
    highest = ", ".join(f"(SELECT max(rowid) FROM {quote(t)})" for t in present)
    row = connection.exec_driver_sql(f"SELECT {highest}").one()
    return {table: int(mark or 0) for table, mark in zip(present, row, strict=True)}
