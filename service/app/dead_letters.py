"""The operator's dead-letter tools: list what was kept, and replay it through the folds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from service.adapters.stores.operations import decode_headers
from service.adapters.tables import dead_letters
from service.adapters.unit_of_work import SqlUnitOfWork
from service.app.ingest import Applied, Batch, apply_batch
from service.app.records import DeadLetter, Received, Record
from service.domain.rules import Rules


@dataclass(frozen=True, slots=True)
class LetterFilter:
    ids: tuple[int, ...] = ()
    topic: str | None = None
    tenant_id: str | None = None
    reason: str | None = None
    """A part of the reason, case-insensitive."""
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Letter:
    id: int
    record: Record
    reason: str
    tenant_id: str | None
    event_id: str | None
    first_failed_at: datetime
    last_failed_at: datetime
    attempts: int


def list_letters(c: Connection, which: LetterFilter) -> list[Letter]:
    query = select(dead_letters).order_by(dead_letters.c.id)
    if which.ids:
        query = query.where(dead_letters.c.id.in_(which.ids))
    if which.topic:
        query = query.where(dead_letters.c.topic == which.topic)
    if which.tenant_id:
        query = query.where(dead_letters.c.tenant_id == which.tenant_id)
    letters = [_letter(row) for row in c.execute(query)]
    if which.reason:
        letters = [x for x in letters if which.reason.lower() in x.reason.lower()]
    return letters[: which.limit] if which.limit else letters


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


def replay(
    unit_of_work: Callable[[], SqlUnitOfWork],
    letters: Sequence[Letter],
    decode: Callable[[Record], Received | DeadLetter],
    *,
    rules: Rules,
    consumer_group: str,
    now: datetime,
) -> Applied:
    """Decode and fold the letters again, in one transaction. A letter that now passes is
    applied once and leaves the store; one that fails again stays, with the new reason.
    Replaying a letter twice is safe: the second time it is no longer in the store."""
    received: list[Received] = []
    dead: list[DeadLetter] = []
    for letter in letters:
        outcome = decode(letter.record)
        if isinstance(outcome, DeadLetter):
            dead.append(outcome)
        else:
            received.append(outcome)
    batch = Batch(
        received=received,
        dead=dead,
        replaying={letter.record.id: letter.id for letter in letters},
    )
    return apply_batch(unit_of_work, batch, rules=rules, consumer_group=consumer_group, now=now)
