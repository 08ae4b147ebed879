"""Small SQL helpers shared by the stores: dialect-neutral upserts and chunked lookups."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")
CHUNK = 500
"""Rows or keys per statement: well under SQLite's bound-parameter limit."""


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert(connection: Connection, table: Table) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


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
    statement = _insert(connection, table)
    excluded = statement.excluded
    updates = {name: table.c[name] + excluded[name] for name in add}
    updates.update({name: excluded[name] for name in replace})
    key_list = list(keys)
    statement = (
        statement.on_conflict_do_update(index_elements=key_list, set_=updates)
        if updates
        else statement.on_conflict_do_nothing(index_elements=key_list)
    )
    for part in chunks(rows):
        connection.execute(statement, list(part))
