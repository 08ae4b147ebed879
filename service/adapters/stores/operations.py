"""Consumer offsets, dead letters and the per-tenant state versions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, delete, insert, select, update

from service.adapters.sql import upsert
from service.adapters.tables import consumer_offsets, dead_letters, service_state, tenant_versions
from service.app.ports import OffsetMoved
from service.app.records import DeadLetter

TopicPartition = tuple[str, int]


class OffsetStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def load(
        self, group: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Stored next offsets of the group (of these partitions only, when given)."""
        rows = self._c.execute(
            select(
                consumer_offsets.c.topic,
                consumer_offsets.c.partition,
                consumer_offsets.c.next_offset,
            ).where(consumer_offsets.c.consumer_group == group)
        )
        stored = {(t, p): o for t, p, o in rows}
        if partitions is None:
            return stored
        return {tp: stored[tp] for tp in set(partitions) if tp in stored}

    def forget(self, group: str, topics: Iterable[str]) -> None:
        """Drop the stored offsets of these topics: a log that was just created cannot have
        been consumed, whatever an older log of the same name left here."""
        names = sorted(set(topics))
        if names:
            self._c.execute(
                delete(consumer_offsets).where(
                    consumer_offsets.c.consumer_group == group,
                    consumer_offsets.c.topic.in_(names),
                )
            )

    def advance(
        self,
        group: str,
        moves: Mapping[TopicPartition, tuple[int | None, int]],
    ) -> None:
        """Move each partition from the offset we started the batch at to its next offset.

        The compare-and-set fences out a consumer that lost the partition in a rebalance but
        has not noticed yet: its update matches no row and the whole batch rolls back.
        """
        for (topic, partition), (expected, next_offset) in sorted(moves.items()):
            key = and_(
                consumer_offsets.c.consumer_group == group,
                consumer_offsets.c.topic == topic,
                consumer_offsets.c.partition == partition,
            )
            if expected is None:
                taken = self._c.execute(select(consumer_offsets.c.next_offset).where(key)).first()
                if taken is not None:
                    raise OffsetMoved(f"{topic}[{partition}] was committed by another consumer")
                self._c.execute(
                    insert(consumer_offsets).values(
                        consumer_group=group,
                        topic=topic,
                        partition=partition,
                        next_offset=next_offset,
                    )
                )
                continue
            moved = self._c.execute(
                update(consumer_offsets)
                .where(key, consumer_offsets.c.next_offset == expected)
                .values(next_offset=next_offset)
            )
            if moved.rowcount != 1:
                raise OffsetMoved(f"{topic}[{partition}] is no longer at offset {expected}")


class LetterGone(RuntimeError):
    pass


class DeadLetterStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, letters: Sequence[DeadLetter], now: datetime) -> None:
        """Keep each record's letter once: a replay of the same offsets adds nothing."""
        upsert(
            self._c,
            dead_letters,
            [
                {
                    "topic": d.record.topic,
                    "partition": d.record.partition,
                    "offset": d.record.offset,
                    "record_timestamp_ms": d.record.timestamp_ms,
                    "key": d.record.key,
                    "value": d.record.value,
                    "headers": encode_headers(d.record.headers),
                    "reason": d.rejection.reason,
                    "tenant_id": d.rejection.tenant_id,
                    "event_id": d.rejection.event_id,
                    "first_failed_at": now,
                    "last_failed_at": now,
                    "attempts": 1,
                }
                for d in _one_per_record(letters)
            ],
            keys=["topic", "partition", "offset"],
        )

    def remove(self, ids: Iterable[int]) -> None:
        """Remove replayed letters; if one is gone already, another replay got there first
        and this one must not apply it again."""
        id_list = sorted(set(ids))
        if not id_list:
            return
        removed = self._c.execute(delete(dead_letters).where(dead_letters.c.id.in_(id_list)))
        if removed.rowcount != len(id_list):
            raise LetterGone("some dead letters were replayed concurrently; nothing applied")

    def failed_again(self, letter_id: int, reason: str, now: datetime) -> None:
        self._c.execute(
            update(dead_letters)
            .where(dead_letters.c.id == letter_id)
            .values(reason=reason, last_failed_at=now, attempts=dead_letters.c.attempts + 1)
        )


def _one_per_record(letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    return list({d.record.id: d for d in letters}.values())


def encode_headers(headers: Iterable[tuple[str, bytes | None]]) -> str:
    """Headers as JSON text (a null value stays null); bytes as latin-1, which maps each byte
    to one character and back."""
    return json.dumps(
        [[name, None if value is None else value.decode("latin-1")] for name, value in headers]
    )


def decode_headers(raw: str) -> tuple[tuple[str, bytes | None], ...]:
    return tuple(
        (name, None if value is None else value.encode("latin-1"))
        for name, value in json.loads(raw)
    )


class VersionStore:
    """A counter per tenant, bumped by every batch that changes the tenant's state, so that
    API instances know when a cached answer is stale."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def bump(self, scopes: Iterable[str]) -> None:
        """Bump tenants' versions, and finer scopes' (see `service.app.scopes`)."""
        rows = [{"tenant_id": t, "version": 1} for t in sorted(set(scopes))]
        upsert(self._c, tenant_versions, rows, keys=["tenant_id"], add=["version"])


def mark_caught_up(connection: Connection, group: str, now: datetime) -> None:
    from service.adapters.views import CAUGHT_UP

    upsert(
        connection,
        service_state,
        [{"name": CAUGHT_UP.format(group=group), "value": now.isoformat()}],
        keys=["name"],
        replace=["value"],
    )
