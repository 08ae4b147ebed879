"""Small SQL helpers shared by the stores: dialect-neutral upserts and chunked lookups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Table, and_
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")
CHUNK = 500
"""Rows or keys per statement: well under SQLite's bound-parameter limit."""


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Iterable[str],
    add: Iterable[str] = (),
    replace: Iterable[str] = (),
) -> None:
    """Insert rows; on a key conflict add the `add` columns to the stored ones and overwrite
    the `replace` columns. All rows must have the same columns."""
    if not rows:
        return
    key_list, add_list, replace_list = list(keys), list(add), list(replace)

    def on_conflict(statement: Any) -> Any:
        excluded = statement.excluded
        updates = {name: table.c[name] + excluded[name] for name in add_list}
        updates.update({name: excluded[name] for name in replace_list})
        if updates:
            return statement.on_conflict_do_update(index_elements=key_list, set_=updates)
        return statement.on_conflict_do_nothing(index_elements=key_list)

    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = on_conflict(dialect_insert(table))
    for part in chunks(rows):
        connection.execute(statement, list(part))


def key_lookups(
    columns: Sequence[ColumnElement[Any]], keys: Iterable[tuple[Any, ...]]
) -> Iterator[ColumnElement[bool]]:
    """Conditions that select rows by composite keys, each able to use the key's index: the
    leading columns by equality, the last one by IN, in chunks. (A row-value IN over a
    composite key is planned badly by PostgreSQL: it scans.)"""
    groups: defaultdict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for key in sorted(set(keys)):
        groups[key[:-1]].append(key[-1])
    for prefix, lasts in groups.items():
        leading = [column == value for column, value in zip(columns, prefix, strict=False)]
        for part in chunks(lasts):
            yield and_(*leading, columns[-1].in_(part))
