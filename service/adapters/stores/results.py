"""The outbox of results (`service.app.results`): one row per result, by its event id."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from service.adapters.sql import InList
from service.adapters.tables import results_outbox
from service.app.ports import OutboxEntry

o = results_outbox

log = logging.getLogger(__name__)


class SqlResultStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def recorded(self, event_ids: Iterable[str]) -> set[str]:
        wanted = sorted(set(event_ids))
        if not wanted:
            return set()
        query = select(o.c.event_id).where(InList(o.c.event_id, wanted))
        return set(self._c.execute(query).scalars())

    def add(self, entries: Sequence[OutboxEntry], now: datetime) -> None:
        if not entries:
            return
        rows = [
            {
                "event_id": e.event_id,
                "tenant_id": e.tenant_id,
                "kind": e.kind,
                "window_name": e.window,
                "occurred_at": e.occurred_at,
                "recorded_at": now,
                "payload": e.payload,
                "sent_at": None,
            }
            for e in entries
        ]
        insert = postgresql.insert if self._c.dialect.name == "postgresql" else sqlite.insert
        # Another instance may have recorded the same result meanwhile: its row stays.
        self._c.execute(insert(o).on_conflict_do_nothing(index_elements=["event_id"]), rows)

    def unsent(self, limit: int) -> list[OutboxEntry]:
        query = select(o).where(o.c.sent_at.is_(None)).order_by(o.c.id).limit(limit)
        return [entry_from_row(row) for row in self._c.execute(query)]

    def listed(
        self, tenant_id: str | None, unsent_only: bool, limit: int | None
    ) -> list[OutboxEntry]:
        """The outbox for an operator, in outbox order: of one tenant when given, only the
        unsent results when asked, the first `limit` (None or 0: all)."""
        query = select(o).order_by(o.c.id)
        if tenant_id:
            query = query.where(o.c.tenant_id == tenant_id)
        if unsent_only:
            query = query.where(o.c.sent_at.is_(None))
        if limit:
            query = query.limit(limit)
        return [entry_from_row(row) for row in self._c.execute(query)]

    def mark_sent(self, ids: Iterable[int], now: datetime) -> None:
        wanted = sorted(set(ids))
        if wanted:
            self._c.execute(
                update(o).where(o.c.id.in_(wanted), o.c.sent_at.is_(None)).values(sent_at=now)
            )


def entry_from_row(row: Row[Any]) -> OutboxEntry:
    return OutboxEntry(
        event_id=row.event_id,
        tenant_id=row.tenant_id,
        kind=row.kind,
        window=row.window_name,
        occurred_at=row.occurred_at,
        payload=bytes(row.payload),
        id=row.id,
        recorded_at=row.recorded_at,
        sent_at=row.sent_at,
    )


RELAY_LOCK = 0x706F6400  # "pod": the advisory locks of results relays
"""With the schema's hash, the lock one relay holds: one relay sends at a time across the
instances of a schema (deployments in other schemas of the database have their own)."""


class AdvisoryLease:
    """The relay's lease: a PostgreSQL session-level advisory lock held on a connection of
    its own, released when the relay stops or its connection dies (a killed instance's lease
    ends with its session). SQLite serves one instance: the lease is always held."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    def acquire(self) -> bool:
        if self._engine.dialect.name != "postgresql":
            return True
        if self._connection is not None:
            return True
        connection = self._engine.connect()
        try:
            held = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(:k, hashtext(current_schema()))"),
                    {"k": RELAY_LOCK},
                ).scalar()
            )
            connection.commit()
        except BaseException:
            connection.close()
            raise
        if not held:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            # Unlocked before the session ends: the server ends a closed session's backend,
            # and its locks, a moment after the client has gone, and another relay asking at
            # once would be refused.
            connection.execute(
                text("SELECT pg_advisory_unlock(:k, hashtext(current_schema()))"),
                {"k": RELAY_LOCK},
            )
        except Exception:  # a dead connection: its session's end releases the lock
            log.debug("could not unlock the relay's lease; its session's end will", exc_info=True)
        finally:
            # Not back to the pool, where its session would keep the lock: the session ends.
            connection.invalidate()
            connection.close()
