"""Consumed offsets, stored with the state they led to (one transaction)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, and_, delete, insert, select, update

from service.adapters.tables import consumer_offsets
from service.app.ports import OffsetMove, OffsetMoved, TopicPartition


class SqlOffsetStore:
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
        moves: Mapping[TopicPartition, OffsetMove],
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
