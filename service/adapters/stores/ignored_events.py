"""Valid events a rule ignored (a task leaving a terminal state, ...), kept so that operators
can see them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from service.adapters.sql import upsert
from service.adapters.tables import ignored_events
from service.app.records import IgnoredEvent


class SqlIgnoredEventStore:
    """Valid events that changed nothing by rule (a task leaving a terminal state, ...), kept
    so an operator can see them."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, ignored: Sequence[IgnoredEvent], now: datetime) -> None:
        """Keep each record once: a replay of the same offsets adds nothing."""
        upsert(
            self._c,
            ignored_events,
            [
                {
                    "topic": i.record.topic,
                    "partition": i.record.partition,
                    "offset": i.record.offset,
                    "tenant_id": i.tenant_id,
                    "event_id": i.event_id,
                    "kind": i.kind,
                    "reason": i.reason,
                    "ignored_at": now,
                }
                for i in {i.record.id: i for i in ignored}.values()
            ],
            keys=["topic", "partition", "offset"],
        )
