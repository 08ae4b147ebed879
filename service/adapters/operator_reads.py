"""The read model's part for operators: whether a group caught up, its stored offsets, the
dead letters and the ignored events kept."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, select

from service.adapters.stores.dead_letters import decode_headers
from service.adapters.stores.service_state import CAUGHT_UP
from service.adapters.tables import consumer_offsets, dead_letters, ignored_events, service_state
from service.app.ports import IgnoredEntry, Letter, LetterFilter, TopicPartition
from service.app.records import Record


class OperatorReads:
    """Mixed into `SqlReadModel`, on its connection."""

    _c: Connection

    def has_caught_up(self, group: str) -> bool:
        query = select(service_state.c.value).where(
            service_state.c.name == CAUGHT_UP.format(group=group)
        )
        return self._c.execute(query).first() is not None

    def dead_letters(self, which: LetterFilter) -> list[Letter]:
        query = select(dead_letters).order_by(dead_letters.c.id)
        if which.ids:
            query = query.where(dead_letters.c.id.in_(which.ids))
        if which.topic:
            query = query.where(dead_letters.c.topic == which.topic)
        if which.tenant_id:
            query = query.where(dead_letters.c.tenant_id == which.tenant_id)
        letters = [_letter(row) for row in self._c.execute(query)]
        if which.reason:
            wanted = which.reason.lower()
            letters = [x for x in letters if wanted in x.reason.lower()]
        return letters[: which.limit] if which.limit else letters

    def ignored_events(
        self, tenant_id: str | None, kind: str | None, limit: int | None
    ) -> list[IgnoredEntry]:
        query = select(ignored_events).order_by(ignored_events.c.id.desc())
        if tenant_id:
            query = query.where(ignored_events.c.tenant_id == tenant_id)
        if kind:
            query = query.where(ignored_events.c.kind == kind)
        if limit:
            query = query.limit(limit)
        return [
            IgnoredEntry(
                row.id,
                Record(row.topic, row.partition, row.offset, 0, None, b""),
                row.tenant_id,
                row.event_id,
                row.kind,
                row.reason,
                row.ignored_at,
            )
            for row in self._c.execute(query)
        ]

    def stored_offsets(self, group: str) -> dict[TopicPartition, int]:
        o = consumer_offsets
        query = select(o.c.topic, o.c.partition, o.c.next_offset).where(o.c.consumer_group == group)
        return {(topic, partition): offset for topic, partition, offset in self._c.execute(query)}


def _letter(row: Row[Any]) -> Letter:
    record = Record(
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        timestamp_ms=row.record_timestamp_ms,
        key=row.key,
        value=row.value,
        headers=decode_headers(row.headers),
    )
    return Letter(
        row.id,
        record,
        row.reason,
        row.tenant_id,
        row.event_id,
        row.first_failed_at,
        row.last_failed_at,
        row.attempts,
    )
