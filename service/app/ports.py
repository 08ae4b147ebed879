"""What the use cases need from the outside world, as protocols: the unit of work and its
stores (the write side), the read model (the query side), and the failures that are not a
batch's fault. `service.adapters` implements them over SQL; `tests/fakes.py` in memory.

Nothing here knows SQL, Kafka or gRPC (an import-linter contract keeps it so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeAlias

from service.app.records import DeadLetter, IgnoredEvent, Record
from service.domain.challenges import Challenge, Entry
from service.domain.events import PathSessionPublished, ScoreKind, TaskType, UserUpserted
from service.domain.paths import Attempt, Correction, LearnerState
from service.domain.ranking import Month, MonthTotals, Profile
from service.domain.standings import Tally
from service.domain.tasks import Task
from service.domain.trips import StoredTrip, TripFacts
from service.domain.versions import Version

# --- keys ------------------------------------------------------------------------------------

TenantUser = tuple[str, str]
"""(tenant_id, user_id)"""
TripKey = tuple[str, str]
"""(tenant_id, trip_id)"""
MonthKey = tuple[str, str, Month]
"""(tenant_id, user_id, month)"""
ChallengeKey = tuple[str, str]
"""(tenant_id, challenge_id)"""
EntryKey = tuple[str, str, str]
"""(tenant_id, challenge_id, user_id)"""
SessionKey = tuple[str, str]
"""(tenant_id, session_id)"""
LearnerKey = tuple[str, str, str]
"""(tenant_id, session_id, user_id)"""
CorrectionKey = tuple[str, str, str, str]
"""(tenant_id, session_id, user_id, attempt_id)"""
TaskKey = tuple[str, str]
"""(tenant_id, task_id)"""
TopicPartition = tuple[str, int]
"""(topic, partition)"""
OffsetMove = tuple[int | None, int]
"""A partition's stored next offset as a batch found it (None: never stored), and after it."""


# --- failures that are not the batch's -------------------------------------------------------


class OffsetMoved(RuntimeError):
    """Another consumer committed this partition since we read it: our batch is stale.

    Raised by the unit of work when a batch's offsets no longer start where the batch thought
    they did (a compare-and-set on the stored position). Nothing of the batch is written.
    """


class StorageUnavailable(RuntimeError):
    """The database failed in a way that says nothing about the batch: the connection was
    lost, a lock or statement timed out, a serialization failure. Retrying the same batch
    later is right; dead-lettering any of its records would be wrong."""


# --- the write side --------------------------------------------------------------------------


class UserStore(Protocol):
    def versions(self, keys: Iterable[TenantUser]) -> dict[TenantUser, Version]: ...
    def replace(self, profiles: Sequence[tuple[str, UserUpserted, Version]]) -> None:
        """Replace whole profiles, group membership included."""


class TripStore(Protocol):
    def load(self, keys: Iterable[TripKey]) -> dict[TripKey, StoredTrip]: ...
    def of_users(self, tenant_id: str, user_ids: Iterable[str]) -> list[TripFacts]:
        """Every recorded trip of these users (deleted ones included: freezes decide)."""

    def save(
        self, new: Mapping[TripKey, StoredTrip], changed: Mapping[TripKey, StoredTrip]
    ) -> None: ...


class DriverMonthStore(Protocol):
    def add(self, deltas: Mapping[MonthKey, MonthTotals]) -> None:
        """Add each delta to the driver's month (creating it at zero)."""


class ChallengeStore(Protocol):
    def load(
        self, keys: Iterable[ChallengeKey]
    ) -> dict[ChallengeKey, tuple[Challenge, Version]]: ...
    def replace(self, published: Sequence[tuple[str, Challenge, Version]]) -> None:
        """Replace whole challenges, their groups included."""

    def registrations(self, keys: Iterable[EntryKey]) -> dict[EntryKey, tuple[datetime, datetime]]:
        """Stored registrations: (registered_at, arrived_at)."""

    def entries_of(self, tenant_id: str, challenge_id: str) -> list[tuple[Entry, datetime]]:
        """Every registration of a challenge, with when it arrived."""

    def entries_of_users(self, users: Iterable[TenantUser]) -> list[tuple[str, str, Entry]]:
        """Registrations of these users to published challenges: (tenant, challenge_id, entry)."""

    def put_entries(self, entries: Sequence[tuple[str, str, Entry, datetime]]) -> None:
        """Write registrations with their tallies: (tenant, challenge_id, entry, arrived_at)."""

    def add_to_entries(self, deltas: Mapping[EntryKey, tuple[Tally, Tally]]) -> None:
        """Add (during, before) deltas to stored registrations."""


class PathStore(Protocol):
    def session_versions(self, keys: Iterable[SessionKey]) -> dict[SessionKey, Version]: ...
    def replace_sessions(
        self, sessions: Sequence[tuple[str, PathSessionPublished, Version]]
    ) -> None: ...
    def enrollments(
        self, keys: Iterable[LearnerKey]
    ) -> dict[LearnerKey, tuple[datetime | None, datetime | None]]:
        """Stored (enrolled_at, unenrolled_at) of these learners."""

    def put_enrollments(
        self, learners: Mapping[LearnerKey, tuple[datetime | None, datetime | None]]
    ) -> None: ...
    def add_attempts(self, attempts: Sequence[tuple[LearnerKey, Attempt]]) -> None:
        """Record attempts once each (a re-sent attempt changes nothing)."""

    def corrections(self, keys: Iterable[CorrectionKey]) -> dict[CorrectionKey, Correction]: ...
    def put_corrections(self, corrections: Sequence[tuple[LearnerKey, Correction]]) -> None: ...


class TaskStore(Protocol):
    def load(self, keys: Iterable[TaskKey]) -> dict[TaskKey, Task]: ...
    def in_progress(self, tenant_id: str, task_type: TaskType) -> dict[TaskKey, Task]: ...
    def save(self, changed: Mapping[TaskKey, Task]) -> None: ...


class IgnoredEventStore(Protocol):
    def add(self, ignored: Sequence[IgnoredEvent], now: datetime) -> None:
        """Keep each record once: a replay of the same offsets adds nothing."""


class OffsetStore(Protocol):
    def load(
        self, group: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Stored next offsets of the group (of these partitions only, when given)."""

    def advance(self, group: str, moves: Mapping[TopicPartition, OffsetMove]) -> None:
        """Compare-and-set each partition's stored offset; `OffsetMoved` if one moved."""

    def forget(self, group: str, topics: Iterable[str]) -> None: ...


class DeadLetterStore(Protocol):
    def add(self, letters: Sequence[DeadLetter], now: datetime) -> None:
        """Keep each record's letter once: a replay of the same offsets adds nothing."""

    def remove(self, ids: Iterable[int]) -> None:
        """Remove replayed letters; `LetterGone` if another replay got there first."""

    def failed_again(self, letter_id: int, reason: str, now: datetime) -> None: ...


class StateVersionStore(Protocol):
    def bump(self, keys: Iterable[str]) -> None:
        """Move these state versions on (`service.app.state_versions`)."""


class UnitOfWork(Protocol):
    """One transaction: every store's writes and the offsets commit together, or none."""

    @property
    def users(self) -> UserStore: ...
    @property
    def trips(self) -> TripStore: ...
    @property
    def driver_months(self) -> DriverMonthStore: ...
    @property
    def challenges(self) -> ChallengeStore: ...
    @property
    def paths(self) -> PathStore: ...
    @property
    def tasks(self) -> TaskStore: ...
    @property
    def ignored_events(self) -> IgnoredEventStore: ...
    @property
    def offsets(self) -> OffsetStore: ...
    @property
    def dead_letters(self) -> DeadLetterStore: ...
    @property
    def versions(self) -> StateVersionStore: ...

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc: object) -> None:
        """Roll back whatever was not committed."""

    def lock_tenants(self, tenant_ids: Iterable[str]) -> None:
        """Serialize writers of these tenants across instances until the transaction ends."""

    def commit(self) -> None: ...


class LetterGone(RuntimeError):
    """A dead letter being replayed was removed by another replay first."""


# --- the read side ---------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class IgnoredEntry:
    id: int
    record: Record
    tenant_id: str
    event_id: str
    kind: str
    reason: str
    ignored_at: datetime


class ReadModel(Protocol):
    """Tables shaped for the answers, read at one moment (a connection, a snapshot)."""

    def profiles(self, tenant_id: str, group: str | None) -> list[Profile]:
        """The group's members, or every profile of the tenant."""

    def month_tallies(
        self, tenant_id: str, month: Month, kind: ScoreKind, group: str | None
    ) -> dict[str, Tally]:
        """Each driver's month with trips, for one ranking type."""

    def task(self, tenant_id: str, task_id: str) -> Task | None: ...
    def known_groups(self, tenant_id: str) -> frozenset[str]: ...
    def challenge(self, tenant_id: str, challenge_id: str) -> Challenge | None: ...
    def challenge_entries(
        self, tenant_id: str, challenge_id: str, arrived_before: datetime, group: str | None
    ) -> list[tuple[Entry, Profile]]:
        """Registrations that arrived before `arrived_before`, with the users' profiles."""

    def path_session(self, tenant_id: str, session_id: str) -> PathSessionPublished | None: ...
    def resolve_user(self, tenant_id: str, email_or_id: str) -> str | None:
        """A user id from an id or an email (case-insensitive); learners known only from
        their enrollments are found by id."""

    def learner_state(self, tenant_id: str, session_id: str, user_id: str) -> LearnerState | None:
        """The learner's folded facts, or None when no enrollment of theirs was seen."""

    def state_versions(self) -> dict[str, int]: ...
    def has_caught_up(self, group: str) -> bool:
        """Whether a consumer of the group has finished a first catch-up."""

    def dead_letters(self, which: LetterFilter) -> list[Letter]: ...
    def ignored_events(
        self, tenant_id: str | None, kind: str | None, limit: int | None
    ) -> list[IgnoredEntry]:
        """Valid events a rule ignored, newest first."""

    def stored_offsets(self, group: str) -> dict[TopicPartition, int]: ...


UnitsOfWork: TypeAlias = Callable[[], UnitOfWork]
"""Opens a new unit of work (one transaction)."""
