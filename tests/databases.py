"""Empty databases for a test or a benchmark: a SQLite file, or a PostgreSQL schema of the
server at POSTGRES_URL dropped afterwards. Each has a name of its own, so any number of
runs (the parallel workers of `make test`, a benchmark beside them) share the server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.services_up import POSTGRES_URL

DATABASES = ["sqlite", "postgresql"]


def postgres_schema_url(schema: str) -> str:
    """The URL of POSTGRES_URL's database whose connections work in `schema`."""
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def empty_database(kind: str, folder: Path, *, prefix: str = "t") -> Iterator[str]:
    """A fresh, empty database of `kind`; its URL. A SQLite file goes in `folder`; a
    PostgreSQL schema (named `prefix` and a random part) is dropped when the block ends."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'{prefix}-{uuid.uuid4().hex[:8]}.db'}"
        return
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    try:
        yield postgres_schema_url(schema)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")
