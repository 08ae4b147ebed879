"""Facts about the service itself, shared by its instances: whether a consumer of a group has
caught up once (API-only instances wait for it); how many lock buckets the writers share."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from service.adapters.sql import upsert
from service.adapters.tables import service_state
from service.app.shards import Buckets

CAUGHT_UP = "caught_up:{group}"
LOCK_BUCKETS = "lock_buckets"


def mark_caught_up(connection: Connection, group: str, now: datetime) -> None:
    upsert(
        connection,
        service_state,
        [{"name": CAUGHT_UP.format(group=group), "value": now.isoformat()}],
        keys=["name"],
        replace=["value"],
    )


def agreed_lock_buckets(connection: Connection, proposed: Buckets) -> Buckets:
    """The lock buckets every writer of this database uses (`service.app.shards`): the first
    writer's proposal, kept (writers that disagreed would not exclude each other)."""
    row = {"name": LOCK_BUCKETS, "value": str(proposed)}
    upsert(connection, service_state, [row], keys=["name"])
    stored = connection.execute(
        select(service_state.c.value).where(service_state.c.name == LOCK_BUCKETS)
    ).scalar_one()
    return Buckets.parse(stored)
