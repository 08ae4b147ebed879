"""What the consumer hands to the use cases: raw records, decoded events, rejections."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from service.domain.bounds import ID_MAX_LENGTH, REASON_MAX_LENGTH, TENANT_ID_MAX_LENGTH
from service.domain.events import Event
from service.domain.frozen import frozen
from service.domain.validation import NUL, id_problem
from service.domain.versions import Version

FAMILIES = ("catalog", "trips", "enrollments", "tasks")
"""The topics' names after the configurable prefix."""


RecordId = tuple[str, int, int]
"""(topic, partition, offset)"""


@frozen
class Record:
    """A Kafka record as received; kept whole so a rejected one can be replayed."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...] = ()
    """Kafka allows a header without a value (None)."""

    @property
    def id(self) -> RecordId:
        return (self.topic, self.partition, self.offset)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def arrival_at(timestamp_ms: int) -> datetime:
    """A record's arrival time from its Kafka timestamp (milliseconds since the epoch), in
    integer arithmetic; the events' `arrived_at` and the versions' alike.

    Records come in the order of their timestamps, many in one second: the last whole
    second's moment is remembered, and a record's is that one with its milliseconds (a
    quarter of the cost of making it anew)."""
    seconds, milliseconds = divmod(timestamp_ms, 1000)
    last, moment = _last_second[0]
    if seconds != last:
        moment = moment_at(seconds, 0)
        _last_second[0] = (seconds, moment)
    return moment.replace(microsecond=milliseconds * 1000) if milliseconds else moment


_last_second: list[tuple[int, datetime]] = [(0, EPOCH)]
"""The whole second `arrival_at` made last, and its moment: one entry, replaced whole, so
threads sharing it at worst make a moment again."""


_FROM_TIMESTAMP_SECONDS = 2**35
"""Up to here (the year 3058) `datetime.fromtimestamp` gives any second exactly."""
_from_timestamp = datetime.fromtimestamp


def moment_at(seconds: int, microseconds: int) -> datetime:
    """The moment `seconds` and `microseconds` (0 to 999,999) after the epoch, in UTC: on
    the ingest path (every event's times), so in C where it can be (`fromtimestamp` of an int
    is exact, and half the cost of adding a timedelta to EPOCH, which it equals)."""
    if 0 <= seconds < _FROM_TIMESTAMP_SECONDS:
        moment = _from_timestamp(seconds, UTC)
        return moment.replace(microsecond=microseconds) if microseconds else moment
    return EPOCH + timedelta(0, seconds, microseconds)


def timestamp_ms_of(moment: datetime) -> int:
    """A Kafka timestamp for a moment: whole milliseconds since the epoch (what is finer is
    dropped), so `arrival_at` gives the moment back to the millisecond."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


REJECTION_KINDS = ("undecodable", "invalid", "conflict", "unfoldable")
"""Why records are rejected, in a word (a metric label: a bounded set): the bytes are not an
envelope; the event breaks a rule; it contradicts what was folded before (a trip sent again
with other figures); its fold fails (`service.app.ingest.apply_isolating`)."""


@frozen
class Rejected:
    """Why a record cannot be folded; it goes to the dead-letter store.

    Always storable, whatever it is built from (a rejection may quote the very value that
    broke the rules): `tenant_id` and `event_id` are kept only when they are valid ids (within
    their bounds, no NUL), else None; `reason` has no NUL character or unpaired surrogate
    (they are escaped) and is at most REASON_MAX_LENGTH (1,000) characters, cut with '…'.
    """

    reason: str
    tenant_id: str | None = None
    event_id: str | None = None
    kind: str = "invalid"
    """One of REJECTION_KINDS."""

    def __post_init__(self) -> None:
        if self.kind not in REJECTION_KINDS:
            raise ValueError(f"unknown rejection kind {self.kind!r}")
        # The one place rejections are made storable: every constructor call goes through it.
        object.__setattr__(self, "reason", _storable_reason(self.reason))
        object.__setattr__(self, "tenant_id", _valid_id(self.tenant_id, TENANT_ID_MAX_LENGTH))
        object.__setattr__(self, "event_id", _valid_id(self.event_id))


def _storable_reason(reason: str) -> str:
    text = reason.replace(NUL, "\\x00")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > REASON_MAX_LENGTH:
        text = text[: REASON_MAX_LENGTH - 1] + "…"
    return text


def _valid_id(value: str | None, max_length: int = ID_MAX_LENGTH) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate: no database could store it
        return None
    return value if id_problem("id", value, max_length) is None else None


@frozen
class Received:
    event: Event
    record: Record
    unknown_fields: tuple[str, ...] = ()
    """The paths of the fields of its JSON that Podium does not know, ignored (counted and
    logged by the consumer loop)."""


def version_of(item: Received) -> Version:
    """The version an entity-replacing event gives its entity."""
    return Version(item.event.meta.occurred_at, item.event.meta.event_id)


@frozen
class DeadLetter:
    record: Record
    rejection: Rejected


@frozen
class IgnoredEvent:
    """A valid event a rule ignored (a task leaving a terminal state, ...): counted in metrics
    and kept for operators, never dead-lettered (replaying it would change nothing)."""

    record: Record
    tenant_id: str
    event_id: str
    kind: str
    reason: str


def split(
    records: Sequence[Record], decode: Callable[[Record], Received | DeadLetter]
) -> tuple[list[Received], list[DeadLetter]]:
    """Decode each record: the ones that become events, and the ones that become dead letters
    (the consumer loop and a dead-letter replay decode the same way)."""
    received: list[Received] = []
    dead: list[DeadLetter] = []
    for record in records:
        outcome = decode(record)
        if isinstance(outcome, DeadLetter):
            dead.append(outcome)
        else:
            received.append(outcome)
    return received, dead


class Stamp(enum.Enum):
    """Which Kafka timestamp `podium produce` gives a record (docs/events.md)."""

    CLIENT = "client"
    """Left to the producer client: the moment it sends, as a live producer does."""
    OCCURRED_AT = "occurred-at"
    """The envelope's `occurredAt`: a backfill, each event arriving when it first happened."""
