"""Facts about the service itself, shared by its instances: whether a consumer of a group has
caught up once (API-only instances wait for it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from service.adapters.sql import upsert
from service.adapters.tables import service_state

CAUGHT_UP = "caught_up:{group}"


def mark_caught_up(connection: Connection, group: str, now: datetime) -> None:
    upsert(
        connection,
        service_state,
        [{"name": CAUGHT_UP.format(group=group), "value": now.isoformat()}],
        keys=["name"],
        replace=["value"],
    )
