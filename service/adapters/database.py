"""Engines for SQLite (the embedded default) and PostgreSQL, and schema migrations."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from service.adapters.tables import EXACT_ADD, exact_add
from service.app.ports import StorageUnavailable
from service.logs import describe

WRITER = {"podium_writer": True}
"""Execution options of a connection that will write: on SQLite it takes the write lock at
BEGIN, so concurrent writers queue instead of failing halfway through a batch."""


LOCK_TIMEOUT = "15s"
"""How long a PostgreSQL statement waits for a lock (a tenant's, held by another instance's
batch) before failing; the batch is then retried with a back-off."""
IDLE_IN_TRANSACTION_TIMEOUT = "60s"
"""A session idle this long inside a transaction is ended by PostgreSQL, its locks released:
an instance frozen mid-batch (SIGSTOP, a VM pause) cannot hold its tenants' locks forever. A
batch's fold works between its statements for well under a second."""

WRITER_CACHE_KIB = 64 * 1024
"""SQLite's page cache on the ingest's own connection (`create_writer_engine`; SQLite's
default, which readers keep, is 2 MiB). A replay inserts trips at random keys all over a table
that grows to hundreds of MiB, which the default cache makes the fold wait on
(bench/RESULTS.md, "Where ingest time goes"). Readers keep the default: each pooled
connection has a cache of its own."""

LINK_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
"""libpq parameters that bound how long a silent link can hold a call (DATABASE_URL may set
any of them). A dead network or host sends no reset: without them a connection attempt waits
for ever, a call waiting for its answer too (Linux probes an idle connection after two hours
only), and the consumer loop with it, reporting nothing since nothing fails. With them a
connection is given up after 10 s of silence while connecting, and an open one once probes or
data go unacknowledged for 30 s; the call then fails as the database's fault and is retried
with a back-off, reported as such. Probes are answered by a live server's kernel, so a long
statement or a lock wait is never cut short by them."""

WRITER_RANDOM_PAGE_COST = "1.1"
"""PostgreSQL's `random_page_cost` on the ingest's own connections (the server's default, 4, is
priced for spinning disks). A batch looks rows up by key by the thousand (`... = ANY(...)`:
its driver months, its trips seen again); priced at 4, an index probe looked dearer than
reading the whole table: with statistics, when every trip of a replay's batch was looked up,
the planner scanned all the tenant's trips for each batch, a cost that grows with the table
(at 2,000,000 trips a scan took 280 ms of a batch, the probes 55 ms: bench/RESULTS.md,
"PostgreSQL at 10x: the trips' look-up scans"). Pages in memory or on SSDs make a random read
cost about what a sequential one does."""


def create_writer_engine(url: str) -> Engine | None:
    """The ingest's own engine: one connection, kept (so its SQLite page cache stays warm from
    batch to batch, and grows to `WRITER_CACHE_KIB`), and never waited for behind queries.
    None for an in-memory SQLite database, which exists in its one connection only."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and _in_memory(parsed):
        return None
    return create_database_engine(url, writer=True)


def database_description(database_url: str) -> str:
    """`postgresql://db.internal:5432/podium` or `sqlite file /data/podium.db`: the scheme,
    host, port and database name, never a user or a password."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return (
            "sqlite in memory"
            if _in_memory(url)
            else f"sqlite file {Path(url.database or '').resolve()}"
        )
    port = f":{url.port}" if url.port else ""
    return f"{url.get_backend_name()}://{url.host or 'localhost'}{port}/{url.database or ''}"


def _in_memory(parsed: URL) -> bool:
    """An SQLite database that lives in its connection only."""
    return parsed.database in (None, "", ":memory:")


def create_database_engine(url: str, *, writer: bool = False) -> Engine:
    """`hide_parameters`: SQLAlchemy's errors never show a statement's parameters (names,
    emails), whoever prints them. `writer`: the ingest's (`create_writer_engine`)."""
    parsed = make_url(url)
    pool = {"pool_size": 1, "max_overflow": 1} if writer else {}
    if parsed.get_backend_name() == "postgresql":
        link = {name: value for name, value in LINK_DEFAULTS.items() if name not in parsed.query}
        engine = create_engine(
            parsed.set(drivername="postgresql+psycopg"),
            **({"pool_size": 8} | pool),
            pool_pre_ping=True,
            # Plans for batch lookups must follow the tables as they grow: a generic plan
            # prepared while a table was empty keeps scanning it once it is large.
            connect_args={"prepare_threshold": None, **link},
            hide_parameters=True,
        )
        _configure_postgresql(engine, writer=writer)
        return engine
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}")
    in_memory = _in_memory(parsed)
    engine = create_engine(
        parsed,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=StaticPool if in_memory else None,
        hide_parameters=True,
        **({} if in_memory else pool),
    )
    _configure_sqlite(engine, wal=not in_memory, cache_kib=WRITER_CACHE_KIB if writer else None)
    return engine


def _configure_postgresql(engine: Engine, *, writer: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(
                f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'"
            )
            if writer:
                cursor.execute(f"SET random_page_cost = {WRITER_RANDOM_PAGE_COST}")
        dbapi_connection.commit()


_GENERATIONS: weakref.WeakKeyDictionary[Engine, list[int]] = weakref.WeakKeyDictionary()
"""Each SQLite engine's generation of connections (`renew_connections`)."""


def renew_connections(engine: Engine) -> None:
    """Every pooled connection of an SQLite `engine` is replaced as it is next checked out,
    those checked out now included. `Engine.dispose` would hand those to a discarded pool,
    which never closes them (Python 3.13 reports each as an unclosed database). An in-memory
    database keeps its one connection: the database lives in it."""
    if engine in _GENERATIONS:
        _GENERATIONS[engine][0] += 1


def _configure_sqlite(engine: Engine, *, wal: bool, cache_kib: int | None) -> None:
    if wal:
        _renewable(engine)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below decide how transactions start (pysqlite's own
        # handling defers BEGIN and cannot take the write lock up front).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if cache_kib is not None:
            cursor.execute(f"PRAGMA cache_size=-{cache_kib}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        dbapi_connection.create_function(EXACT_ADD, 2, exact_add, deterministic=True)

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("podium_writer", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _renewable(engine: Engine) -> None:
    generation = _GENERATIONS.setdefault(engine, [0])

    @event.listens_for(engine, "connect")
    def on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info["generation"] = generation[0]

    @event.listens_for(engine, "checkout")
    def on_checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("generation") != generation[0]:
            # The pool closes this connection and checks out a new one.
            raise sa_exc.DisconnectionError("renewed (renew_connections)")


RECORD_CAUSED = frozenset({"22", "23"})
"""PostgreSQL error classes a batch's own data causes: data exceptions (a value out of range,
too long, a NUL byte) and integrity violations. Every other database error says nothing about
the records (a lost connection, a lock or statement timeout, a serialization failure, a
missing table): the batch is retried, never dead-lettered."""


def is_storage_failure(error: BaseException) -> bool:
    """Whether `error` is the database's fault rather than the batch's."""
    if isinstance(error, sa_exc.DBAPIError):
        sqlstate = getattr(error.orig, "sqlstate", None)
        if sqlstate:
            return str(sqlstate)[:2] not in RECORD_CAUSED
        return not isinstance(
            error, sa_exc.DataError | sa_exc.IntegrityError | sa_exc.ProgrammingError
        )
    return isinstance(
        error, sa_exc.DisconnectionError | sa_exc.TimeoutError | ConnectionError | TimeoutError
    )


@contextlib.contextmanager
def storage_failures_as_unavailable() -> Iterator[None]:
    """Re-raise the database's own failures as `StorageUnavailable` (retry, don't blame the
    batch); anything else goes through as it is."""
    try:
        yield
    except Exception as error:
        if is_storage_failure(error):
            raise StorageUnavailable(describe(error)) from error
        raise
