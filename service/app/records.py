"""What the consumer hands to the use cases: raw records, decoded events, rejections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from service.domain.events import Event

FAMILIES = ("catalog", "trips", "enrollments", "tasks")
"""The topics' names after the configurable prefix."""


RecordId = tuple[str, int, int]
"""(topic, partition, offset)"""


@dataclass(frozen=True, slots=True)
class Record:
    """A Kafka record as received; kept whole so a rejected one can be replayed."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def id(self) -> RecordId:
        return (self.topic, self.partition, self.offset)

    @property
    def arrived_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a record cannot be folded; it goes to the dead-letter store."""

    reason: str
    tenant_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Received:
    event: Event
    record: Record


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: Record
    rejection: Rejected


@dataclass(frozen=True, slots=True)
class IgnoredEvent:
    """A valid event a rule ignored (a task leaving a terminal state, ...): counted in metrics
    and kept for operators, never dead-lettered (replaying it would change nothing)."""

    record: Record
    tenant_id: str
    event_id: str
    kind: str
    reason: str
