"""One database transaction for one batch: the state changes and the offsets commit together."""

from __future__ import annotations

import zlib
from types import TracebackType

from sqlalchemy import Connection, Engine, text

from service.adapters.database import WRITER
from service.adapters.stores import (
    DeadLetterStore,
    DriverMonthStore,
    OffsetStore,
    TripStore,
    UserStore,
    VersionStore,
)
from service.adapters.stores.challenges import ChallengeStore
from service.adapters.stores.paths import PathStore
from service.adapters.stores.tasks import IgnoredEventStore, TaskStore


class SqlUnitOfWork:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    def __enter__(self) -> SqlUnitOfWork:
        connection = self._engine.connect().execution_options(**WRITER)
        connection.begin()
        self._connection = connection
        self.users = UserStore(connection)
        self.trips = TripStore(connection)
        self.driver_months = DriverMonthStore(connection)
        self.challenges = ChallengeStore(connection)
        self.paths = PathStore(connection)
        self.tasks = TaskStore(connection)
        self.ignored_events = IgnoredEventStore(connection)
        self.offsets = OffsetStore(connection)
        self.dead_letters = DeadLetterStore(connection)
        self.versions = VersionStore(connection)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self._connection
        self._connection = None
        if connection is None:
            return
        try:
            if connection.in_transaction():
                connection.rollback()
        finally:
            connection.close()

    def lock_tenants(self, tenant_ids: set[str]) -> None:
        """Serialize writers per tenant across instances (PostgreSQL; SQLite has one writer).

        Folds read state and then write what they derived from it (a registration reads the
        user's trips, a trip reads the user's registrations); two instances doing that for
        one tenant at once could each miss the other's write.
        """
        connection = self._require()
        if connection.dialect.name != "postgresql":
            return
        for tenant in sorted(tenant_ids):
            key = zlib.crc32(tenant.encode()) - 2**31
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    def commit(self) -> None:
        self._require().commit()

    def _require(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("unit of work used outside its `with` block")
        return self._connection
