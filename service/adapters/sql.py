"""Small SQL helpers shared by the stores: set-based upserts and key lookups.

Both are on the ingest hot path, where a batch writes tens of thousands of rows. Going through
SQLAlchemy's per-row parameter handling (or psycopg's per-row pipeline) costs more than the
database's own work, so:

- an upsert is one statement per batch on PostgreSQL (`INSERT ... SELECT FROM unnest(arrays)`)
  and one driver-level `executemany` of plain tuples on SQLite;
- a lookup by many keys binds them as one list parameter (`= ANY(array)` on PostgreSQL,
  `IN (SELECT value FROM json_each(?))` on SQLite) rather than hundreds of expanded binds.
"""

from __future__ import annotations

import functools
import json
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    Connection,
    Dialect,
    Float,
    String,
    Table,
    and_,
    bindparam,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator, TypeEngine

from service.adapters.tables import EXACT_ADD, Exact, Instant

# --- upserts -------------------------------------------------------------------------------


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Iterable[str],
    add: Iterable[str] = (),
    replace: Iterable[str] = (),
    latest: Iterable[str] = (),
    earliest: Iterable[str] = (),
) -> None:
    """Insert rows; on a key conflict add the `add` columns to the stored ones, overwrite
    the `replace` columns and keep the greater of the stored and the new value of the `latest`
    ones (the smaller for the `earliest` ones), a NULL counting as nothing (none of them: keep
    the stored row). All rows must have the same columns, and no two rows the same key."""
    if rows:
        columns = {name: [row[name] for row in rows] for name in rows[0]}
        upsert_columns(
            connection,
            table,
            columns,
            keys=keys,
            add=add,
            replace=replace,
            latest=latest,
            earliest=earliest,
        )


def upsert_columns(
    connection: Connection,
    table: Table,
    columns: Mapping[str, Sequence[Any]],
    *,
    keys: Iterable[str],
    add: Iterable[str] = (),
    replace: Iterable[str] = (),
    latest: Iterable[str] = (),
    earliest: Iterable[str] = (),
) -> int:
    """`upsert` of rows given column by column (a list of values per column, all of the same
    length): what the ingest hot path builds, skipping a dictionary per row. Returns how many
    rows it inserted or changed (with no change asked for, those it inserted)."""
    names = tuple(columns)
    if not names or not columns[names[0]]:
        return 0
    changes = (tuple(add), tuple(replace), tuple(latest), tuple(earliest))
    statement = _upsert_statement(connection.dialect, table, names, tuple(keys), *changes)
    return _execute_by_columns(connection, statement, table, columns)


def upsert_rows(
    connection: Connection,
    table: Table,
    names: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    *,
    keys: Iterable[str],
    replace: Iterable[str] = (),
) -> int:
    """`upsert_columns` of rows given row by row (each a tuple of the `names` columns'
    values), their times (`Instant`) already in microseconds: a batch's new trips, made in
    one pass rather than column by column and converted column by column again. The other
    values are converted as `upsert_columns` converts them, where the driver needs it
    (`_row_conversions`). Returns how many rows it inserted or changed."""
    if not rows:
        return 0
    dialect = connection.dialect
    statement = _upsert_statement(dialect, table, names, tuple(keys), (), tuple(replace), (), ())
    conversions = _row_conversions(table, names, dialect)
    if dialect.name == "postgresql":
        arrays = [list(column) for column in zip(*rows, strict=True)]
        for position, process in conversions:
            arrays[position] = list(map(process, arrays[position]))
        return connection.exec_driver_sql(statement, tuple(arrays)).rowcount
    if conversions:
        rows = [_converted(row, conversions) for row in rows]
    return connection.exec_driver_sql(statement, rows).rowcount


Conversions = tuple[tuple[int, Callable[[Any], Any]], ...]
"""Bind processors by a row's positions."""


@functools.lru_cache(maxsize=256)
def _row_conversions(table: Table, names: tuple[str, ...], dialect: Dialect) -> Conversions:
    """What `upsert_rows`' rows still need converted: none for an `Instant` (given in
    microseconds), none on SQLite for a float (a REAL column stores an int as the double it
    is; PostgreSQL's arrays take one type only, so there a float column's ints become
    floats)."""
    conversions = []
    for position, name in enumerate(names):
        column_type = table.c[name].type
        if isinstance(column_type, Instant):
            continue
        if dialect.name == "sqlite" and isinstance(column_type, Float):
            continue
        process = _bind_processor(table, name, dialect)
        if process is not None:
            conversions.append((position, process))
    return tuple(conversions)


def _converted(row: tuple[Any, ...], conversions: Conversions) -> tuple[Any, ...]:
    values = list(row)
    for position, process in conversions:
        values[position] = process(values[position])
    return tuple(values)


def _execute_by_columns(
    connection: Connection, statement: str, table: Table, columns: Mapping[str, Sequence[Any]]
) -> int:
    """Run `statement` over rows given column by column, its parameters being the columns in
    that order: one array per column on PostgreSQL (one execution), one tuple per row on
    SQLite (executemany)."""
    dialect = connection.dialect
    values = [_driver_values(table, name, column, dialect) for name, column in columns.items()]
    if dialect.name == "postgresql":
        return connection.exec_driver_sql(statement, tuple(values)).rowcount
    return connection.exec_driver_sql(statement, list(zip(*values, strict=True))).rowcount


def _driver_values(
    table: Table, name: str, values: Sequence[Any], dialect: Dialect
) -> Sequence[Any]:
    """One column's values in the form the driver takes (times as microseconds, ...)."""
    process = _bind_processor(table, name, dialect)
    return values if process is None else list(map(process, values))


@functools.lru_cache(maxsize=1024)
def _bind_processor(table: Table, name: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    return table.c[name].type.bind_processor(dialect)


@functools.lru_cache(maxsize=1024)
def _upsert_statement(
    dialect: Dialect,
    table: Table,
    columns: tuple[str, ...],
    keys: tuple[str, ...],
    add: tuple[str, ...],
    replace: tuple[str, ...],
    latest: tuple[str, ...],
    earliest: tuple[str, ...],
) -> str:
    quote = dialect.identifier_preparer.quote
    name = dialect.identifier_preparer.format_table(table)
    updates = [
        f"{quote(c)} = "
        + _sum(dialect, table, c, f"{name}.{quote(c)}", f"excluded.{quote(c)}", skip_zero=True)
        for c in add
    ]
    updates += [f"{quote(c)} = excluded.{quote(c)}" for c in replace]
    # PostgreSQL's GREATEST and LEAST skip NULLs; SQLite's max() and min() return NULL if any
    # argument is.
    postgresql = dialect.name == "postgresql"
    for kept, function in (
        (latest, "GREATEST" if postgresql else "max"),
        (earliest, "LEAST" if postgresql else "min"),
    ):
        updates += [
            f"{quote(c)} = {function}(coalesce({name}.{quote(c)}, excluded.{quote(c)}),"
            f" coalesce(excluded.{quote(c)}, {name}.{quote(c)}))"
            for c in kept
        ]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    if dialect.name == "postgresql":
        arrays = ", ".join(f"%b::{_array_type(table, c, dialect)}" for c in columns)
        source = f"SELECT * FROM unnest({arrays})"
    else:
        source = f"VALUES ({', '.join('?' for _ in columns)})"
    return (
        f"INSERT INTO {name} ({', '.join(quote(c) for c in columns)}) {source} "
        f"ON CONFLICT ({', '.join(quote(k) for k in keys)}) {action}"
    )


def add_to_rows(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Iterable[str],
) -> None:
    """Add each row's other columns to the stored row with its key (rows that are not stored
    change nothing). All rows must have the same columns."""
    if not rows:
        return
    key_list = tuple(keys)
    added = tuple(c for c in rows[0] if c not in key_list)
    dialect = connection.dialect
    statement = _add_statement(dialect, table, key_list, added)
    # PostgreSQL's statement binds the key arrays first; SQLite's the SET values first.
    order = (*key_list, *added) if dialect.name == "postgresql" else (*added, *key_list)
    _execute_by_columns(connection, statement, table, {c: [r[c] for r in rows] for c in order})


@functools.lru_cache(maxsize=256)
def _add_statement(
    dialect: Dialect, table: Table, keys: tuple[str, ...], added: tuple[str, ...]
) -> str:
    quote = dialect.identifier_preparer.quote
    name = dialect.identifier_preparer.format_table(table)
    if dialect.name == "postgresql":
        columns = (*keys, *added)
        arrays = ", ".join(f"%b::{_array_type(table, c, dialect)}" for c in columns)
        aliases = ", ".join(quote(c) for c in columns)
        sets = ", ".join(
            f"{quote(c)} = {_sum(dialect, table, c, f'{name}.{quote(c)}', f'v.{quote(c)}')}"
            for c in added
        )
        matches = " AND ".join(f"{name}.{quote(k)} = v.{quote(k)}" for k in keys)
        return f"UPDATE {name} SET {sets} FROM unnest({arrays}) AS v({aliases}) WHERE {matches}"
    sets = ", ".join(f"{quote(c)} = {_sum(dialect, table, c, quote(c), '?')}" for c in added)
    matches = " AND ".join(f"{quote(k)} = ?" for k in keys)
    return f"UPDATE {name} SET {sets} WHERE {matches}"


def _sum(
    dialect: Dialect, table: Table, column: str, stored: str, added: str, skip_zero: bool = False
) -> str:
    """SQL adding `added` to `stored` in `column`, exactly: `+`, but for an `Exact` column on
    SQLite (kept there as text) the `exact_add` function; `skip_zero` (for an `added` that is
    no parameter) leaves a zero out of the call (the figures of the scores a trip lacks)."""
    if dialect.name == "sqlite" and isinstance(table.c[column].type, Exact):
        if skip_zero:
            return f"CASE {added} WHEN '0' THEN {stored} ELSE {EXACT_ADD}({stored}, {added}) END"
        return f"{EXACT_ADD}({stored}, {added})"
    return f"{stored} + {added}"


def _array_type(table: Table, column: str, dialect: Dialect) -> str:
    """The array a column's values are bound as. Strings go as `text[]`: a cast to
    `VARCHAR(n)[]` would cut a longer value silently (only assignment to the column checks
    the length), so a too-long id would be stored cut while lookups use it whole."""
    column_type = table.c[column].type
    if isinstance(column_type, String):
        return "text[]"
    return f"{column_type.compile(dialect=dialect)}[]"


# --- lookups -------------------------------------------------------------------------------


class _ValueList(TypeDecorator[list[Any]]):
    """A list bound as one parameter: an array for psycopg, JSON text for SQLite."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(String()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> Any:
        return value if dialect.name == "postgresql" else json.dumps(value)


_VALUE_LIST = _ValueList()
"""One instance for every list bound: a type keeps what it adapted to each dialect, so a new
one each look-up would be adapted again each time (SQLAlchemy's introspection, per batch)."""


class InList(ColumnElement[bool]):
    """`column IN values`, the values bound as one list parameter."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True
    """A predicate: without this, SQLite (no native booleans) gets `... IN (...) = 1`, which
    hides the IN from the planner, and each lookup scans the tenant's rows."""
    _traverse_internals = [  # SQLAlchemy's declaration of what makes the cache key
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], values: Iterable[Any]) -> None:
        self.column = column
        self.values = bindparam(None, list(values), type_=_VALUE_LIST, unique=True)


@compiles(InList, "postgresql")
def _in_list_postgresql(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} = ANY({values})"


@compiles(InList)
def _in_list_sqlite(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} IN (SELECT value FROM json_each({values}))"


_FIRST = operator.itemgetter(0)
_LAST = operator.itemgetter(-1)


def key_lookups(
    columns: Sequence[ColumnElement[Any]], keys: Iterable[tuple[Any, ...]]
) -> Iterator[ColumnElement[bool]]:
    """Conditions that select rows by composite keys, each able to use the key's index: the
    leading columns by equality, the last one in a list. (A row-value IN over a composite key
    is planned badly by PostgreSQL: it scans.)"""
    unique = list(dict.fromkeys(keys))  # each key once, in a repeatable order
    groups: defaultdict[tuple[Any, ...], list[Any]] = defaultdict(list)
    if len(columns) == 2 and len(set(map(_FIRST, unique))) == 1:
        groups[unique[0][:1]] = list(map(_LAST, unique))  # one tenant's keys: in C
    else:
        for key in unique:
            groups[key[:-1]].append(key[-1])
    for prefix, lasts in groups.items():
        leading = [column == value for column, value in zip(columns, prefix, strict=False)]
        yield and_(*leading, InList(columns[-1], lasts))
