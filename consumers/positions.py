"""Where each owned partition stands: the one owner of partition positions.

The rebalance listener adds and drops partitions; the fetcher resolves each new one against
the offset stored with the state and the log's range, moves it on as records are fetched or
the log moves on without records for us, and stalls it; the applier moves it on as batches
commit. Each of them asks `Positions`; no other module writes a `Position` field.

Every seek that sends a partition back (a new assignment, a batch another consumer fenced
out) opens a new *epoch*: records fetched before it are stale and never applied,
whatever their offsets, so a gap in the log (compaction, transaction markers) is no reason
to refuse a run.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace

from aiokafka import TopicPartition

_epochs = itertools.count(1)


class Status(enum.Enum):
    UNRESOLVED = "unresolved"
    """Assigned, paused until its stored offset is read and checked against the log."""
    READY = "ready"
    STALLED = "stalled"
    """Paused: its stored offset is outside the log, or its records cannot be read or folded.
    An operator moves it (`podium offsets reset`); the loop then resolves it again."""


@dataclass(frozen=True, slots=True)
class Position:
    """A partition's standing, read-only: `Positions` alone moves it on."""

    status: Status = Status.UNRESOLVED
    stored: int | None = None
    """The next offset as stored with the state (None: never stored)."""
    fetched: int = 0
    """The next offset expected from the broker."""
    skipped_to: int = 0
    """How far the broker's own position went without records for us (transaction markers,
    compacted records): counts toward catching up, never stored."""
    epoch: int = 0
    why_stalled: str = ""

    @property
    def consumed(self) -> int:
        """How far the state reflects the log: the stored offset, or past a gap beyond it."""
        return max(self.stored or 0, self.skipped_to)

    @property
    def in_hand(self) -> bool:
        """Records were fetched that are not committed yet."""
        return self.fetched > self.consumed


class Positions:
    def __init__(self) -> None:
        self._owned: dict[TopicPartition, Position] = {}

    def __contains__(self, partition: object) -> bool:
        return partition in self._owned

    def __getitem__(self, partition: TopicPartition) -> Position:
        return self._owned[partition]

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        for partition in partitions:
            self._owned[partition] = Position(epoch=next(_epochs))

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        for partition in partitions:
            self._owned.pop(partition, None)

    def with_status(self, status: Status) -> list[TopicPartition]:
        return sorted(tp for tp, p in self._owned.items() if p.status is status)

    def owned(self) -> list[TopicPartition]:
        return sorted(self._owned)

    def resolve(self, partition: TopicPartition, stored: int | None, fetch_from: int) -> None:
        """Ready to fetch from `fetch_from` (the consumer was just sought there)."""
        self._owned[partition] = Position(
            Status.READY, stored, fetch_from, fetch_from, next(_epochs)
        )

    def unresolve(self, partition: TopicPartition) -> None:
        """Read the stored offset again and seek there: what was fetched meanwhile is stale."""
        if partition in self._owned:
            self._owned[partition] = Position(epoch=next(_epochs))

    def stall(self, partition: TopicPartition, why: str, stored: int | None) -> None:
        """Stop the partition at `stored` (nothing fetched since is applied)."""
        position = self._owned.get(partition)
        if position is not None:
            self._owned[partition] = replace(
                position, status=Status.STALLED, why_stalled=why, stored=stored, epoch=next(_epochs)
            )

    def fetched_to(self, partition: TopicPartition, next_offset: int) -> None:
        """Records were fetched up to `next_offset` (excluded)."""
        position = self._owned.get(partition)
        if position is not None:
            self._owned[partition] = replace(position, fetched=next_offset)

    def skipped_to(self, partition: TopicPartition, offset: int) -> None:
        """The broker's own position reached `offset` without records for us."""
        position = self._owned.get(partition)
        if position is not None and offset > position.skipped_to:
            self._owned[partition] = replace(position, skipped_to=offset)

    def is_current(self, partition: TopicPartition, epoch: int) -> bool:
        """Whether records fetched in `epoch` may be applied: the partition is still ours,
        ready, and was not sought since."""
        position = self._owned.get(partition)
        return position is not None and position.status is Status.READY and position.epoch == epoch

    def committed(self, partition: TopicPartition, next_offset: int) -> None:
        position = self._owned.get(partition)
        if position is not None:
            self._owned[partition] = replace(position, stored=next_offset)
