"""One database transaction for one batch: the state changes and the offsets commit together."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, text

from service.adapters.database import WRITER
from service.adapters.read_model import SqlReadModel
from service.adapters.statistics import TableStatistics, TransactionGrowth
from service.adapters.stores.challenges import SqlChallengeStore
from service.adapters.stores.dead_letters import SqlDeadLetterStore
from service.adapters.stores.ignored_events import SqlIgnoredEventStore
from service.adapters.stores.offsets import SqlOffsetStore
from service.adapters.stores.paths import SqlPathStore
from service.adapters.stores.results import SqlResultStore
from service.adapters.stores.state_versions import SqlStateVersionStore
from service.adapters.stores.tasks import SqlTaskStore
from service.adapters.stores.trips import SqlDriverMonthStore, SqlTripStore
from service.adapters.stores.users import SqlUserStore
from service.app.shards import Locks


def tenant_lock_key(tenant: str) -> int:
    """A tenant's advisory lock: one bigint, the same in every schema of the database (and
    in every release, so that instances of two releases exclude each other in a rollout)."""
    return zlib.crc32(tenant.encode()) - 2**31


BUCKET_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || :t), :s)")
"""A bucket's advisory lock, in PostgreSQL's other space of advisory locks (two ints): the
schema and the tenant, and the bucket. Advisory locks are the database's, not a schema's:
without the schema, the writers of a tenant of the same name in another schema (another
deployment, a test, a bench) would wait for these."""


class SqlUnitOfWork:
    """The stores of one transaction, opened by `with`; anything not committed is rolled back
    when the block ends."""

    users: SqlUserStore
    trips: SqlTripStore
    driver_months: SqlDriverMonthStore
    challenges: SqlChallengeStore
    paths: SqlPathStore
    tasks: SqlTaskStore
    ignored_events: SqlIgnoredEventStore
    offsets: SqlOffsetStore
    dead_letters: SqlDeadLetterStore
    versions: SqlStateVersionStore
    results: SqlResultStore
    read: SqlReadModel
    """The read model on this transaction's connection: it sees the transaction's writes."""

    def __init__(self, engine: Engine, statistics: TableStatistics | None = None) -> None:
        """`statistics`: told what each committed transaction added to each table, so that
        the tables that grew are analyzed."""
        self._engine = engine
        self._statistics = statistics
        self._connection: Connection | None = None
        self._growth: TransactionGrowth | None = None

    def __enter__(self) -> SqlUnitOfWork:
        connection = self._engine.connect().execution_options(**WRITER)
        connection.begin()
        self._connection = connection
        if self._statistics is not None:
            self._growth = self._statistics.transaction(connection)
        self.users = SqlUserStore(connection)
        self.trips = SqlTripStore(connection)
        self.driver_months = SqlDriverMonthStore(connection)
        self.challenges = SqlChallengeStore(connection)
        self.paths = SqlPathStore(connection)
        self.tasks = SqlTaskStore(connection)
        self.ignored_events = SqlIgnoredEventStore(connection)
        self.offsets = SqlOffsetStore(connection)
        self.dead_letters = SqlDeadLetterStore(connection)
        self.versions = SqlStateVersionStore(connection)
        self.results = SqlResultStore(connection)
        self.read = SqlReadModel(connection)
        return self

    def __exit__(self, *exc: object) -> None:
        connection = self._connection
        self._connection = None
        if connection is None:
            return
        try:
            if connection.in_transaction():
                connection.rollback()
        finally:
            connection.close()

    def lock(self, locks: Locks) -> None:
        """Serialize writers across instances (PostgreSQL; SQLite has one writer).

        Folds read state and then write what they derived from it (a registration reads the
        user's trips, a trip reads the user's registrations); two instances doing that for
        one user at once could each miss the other's write. Each tenant's lock is taken
        exclusively or shared, in the order of the tenants, then each bucket's of the tenants
        held shared, in order: every transaction takes its locks in one global order, so none
        waits for another that waits for it (`service.app.shards`).
        """
        connection = self._require()
        if connection.dialect.name != "postgresql":
            return
        tenants = sorted(locks.exclusive | set(locks.buckets))
        for tenant in tenants:
            shared = "" if tenant in locks.exclusive else "_shared"
            statement = text(f"SELECT pg_advisory_xact_lock{shared}(:k)")
            connection.execute(statement, {"k": tenant_lock_key(tenant)})
        for tenant in tenants:
            for shard in locks.shards(tenant):
                connection.execute(BUCKET_LOCK, {"t": tenant, "s": shard})

    def lock_tenants(self, tenant_ids: Iterable[str]) -> None:
        """Hold these tenants' locks exclusively (as a batch with catalog events does)."""
        self.lock(Locks(exclusive=set(tenant_ids)))

    def commit(self) -> None:
        connection = self._require()
        record = None if self._growth is None else self._growth.committing()
        connection.commit()
        if record is not None:
            record()

    def _require(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("unit of work used outside its `with` block")
        return self._connection
