"""What the use cases need from the outside world, as protocols: the unit of work and its
stores (the write side), the read model (the query side), and the failures that are not a
batch's fault. `service.adapters` implements them over SQL; `tests/fakes.py` in memory, and
`tests/integration/test_ports_contract.py` holds both to what the docstrings here say.

Lookups by keys return only the keys that are stored. Lists come in no particular order
unless their docstring gives one.

Nothing here knows SQL, Kafka or gRPC (an import-linter contract keeps it so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple, Protocol, TypeAlias

from service.app.records import DeadLetter, IgnoredEvent, Record
from service.app.shards import Locks
from service.domain.challenges import Challenge, Entry
from service.domain.events import PathSessionPublished, ScoreKind, TaskType, UserUpserted
from service.domain.paths import Attempt, Correction, LearnerState
from service.domain.ranking import Month, MonthTotals, Profile
from service.domain.standings import Tally
from service.domain.tasks import TaskFacts
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
TaskTypeKey = tuple[str, TaskType]
"""(tenant_id, task type): the tasks a pause is about"""
TopicPartition = tuple[str, int]
"""(topic, partition)"""
Registration = tuple[datetime, datetime]
"""A registration as it came: (registered_at, arrived_at)."""
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
    def versions(self, keys: Iterable[TenantUser]) -> dict[TenantUser, Version]:
        """The version of each stored profile among `keys`."""

    def record_versions(
        self, versions: Sequence[tuple[str, UserUpserted, Version, datetime]]
    ) -> None:
        """Record each profile version (tenant, profile, version, arrived_at) with its groups,
        once: a re-sent version changes nothing but its arrival, which is the earliest of its
        copies'. Older versions are recorded too."""

    def replace(self, profiles: Sequence[tuple[str, UserUpserted, Version]]) -> None:
        """Replace whole profiles, group membership included (a group listed twice counts
        once). No two profiles of one user in one call."""


class TripStore(Protocol):
    def load(self, keys: Iterable[TripKey]) -> dict[TripKey, StoredTrip]:
        """Stored trips: facts, or tombstones of deletions seen before their trip."""

    def of_users(self, tenant_id: str, user_ids: Iterable[str]) -> list[TripFacts]:
        """Every recorded trip of these users (deleted ones included: freezes decide;
        tombstones left out)."""

    def add_new(self, new: Mapping[TripKey, StoredTrip]) -> dict[TripKey, StoredTrip]:
        """Record each trip whose key is not stored, and return what is stored of the others
        (left unchanged), including what another writer recorded of them meanwhile. Once per
        unit of work: what it wrote before may be taken for not stored."""

    def replace(self, changed: Mapping[TripKey, StoredTrip]) -> None:
        """Write stored trips whole."""


class DriverMonthStore(Protocol):
    def add(
        self,
        deltas: Mapping[MonthKey, MonthTotals],
        stamps: Mapping[MonthKey, int] | None = None,
    ) -> None:
        """Add each delta to the driver's month (creating it at zero), stamped with the
        version its shard of its calendar month reaches in this batch (`stamps`, by driver
        month as `deltas`, `service.app.shards.stamp`; None
        leaves the stamps as they were), so that `month_changes` finds it. A month whose
        trips fall back to zero stays stored, and `month_tallies` leaves it out."""


class ChallengeStore(Protocol):
    def load(self, keys: Iterable[ChallengeKey]) -> dict[ChallengeKey, tuple[Challenge, Version]]:
        """Stored challenges (their groups sorted, each once) with the version that
        published them."""

    def replace(self, published: Sequence[tuple[str, Challenge, Version]]) -> None:
        """Replace whole challenges, their groups included. No two of one challenge in one
        call. Registrations are kept."""

    def add_registrations(self, registrations: Iterable[tuple[EntryKey, Registration]]) -> None:
        """Record each registration as it came, once: a re-sent one changes nothing."""

    def registrations(self, keys: Iterable[EntryKey]) -> dict[EntryKey, list[Registration]]:
        """Every recorded registration of these users to these challenges, published or
        not, in time order (only the keys that have some)."""

    def registrations_of(self, tenant_id: str, challenge_id: str) -> dict[str, list[Registration]]:
        """Every recorded registration to a challenge, by user, in time order."""

    def entries(self, keys: Iterable[EntryKey]) -> dict[EntryKey, tuple[Entry, datetime]]:
        """Stored entries (a user's registration and tallies in a published challenge), with
        when their registration arrived."""

    def replace_entries(
        self, tenant_id: str, challenge_id: str, entries: Sequence[tuple[Entry, datetime]]
    ) -> None:
        """Make these the challenge's entries: others are removed. No user twice."""

    def entries_of_users(self, users: Iterable[TenantUser]) -> list[tuple[str, str, Entry]]:
        """Registrations of these users to published challenges only (a registration that
        came before its challenge is left out): (tenant, challenge_id, entry)."""

    def put_entries(self, entries: Sequence[tuple[str, str, Entry, datetime]]) -> None:
        """Write registrations whole, tallies included: (tenant, challenge_id, entry,
        arrived_at). No two of one registration in one call."""

    def add_to_entries(self, deltas: Mapping[EntryKey, tuple[Tally, Tally]]) -> None:
        """Add (during, before) deltas to stored registrations; a delta for a registration
        that is not stored changes nothing (it creates no row)."""


class PathStore(Protocol):
    def session_versions(self, keys: Iterable[SessionKey]) -> dict[SessionKey, Version]:
        """The version of each stored session among `keys`."""

    def replace_sessions(
        self, sessions: Sequence[tuple[str, PathSessionPublished, Version]]
    ) -> None:
        """Replace whole sessions, steps included. No two of one session in one call."""

    def enrollments(
        self, keys: Iterable[LearnerKey]
    ) -> dict[LearnerKey, tuple[datetime | None, datetime | None]]:
        """Stored (enrolled_at, unenrolled_at) of these learners."""

    def put_enrollments(
        self, learners: Mapping[LearnerKey, tuple[datetime | None, datetime | None]]
    ) -> None:
        """Replace both times of each learner (a None replaces a stored time too)."""

    def add_attempts(self, attempts: Sequence[tuple[LearnerKey, Attempt]]) -> None:
        """Record attempts once each, by attempt id: a re-sent attempt changes nothing, and
        of one listed twice the first counts."""

    def corrections(self, keys: Iterable[CorrectionKey]) -> dict[CorrectionKey, Correction]:
        """Stored corrections, by (tenant, session, user, attempt id)."""

    def put_corrections(self, corrections: Sequence[tuple[LearnerKey, Correction]]) -> None:
        """Replace each attempt's correction whole. No two of one attempt in one call."""


class TaskStore(Protocol):
    def load(self, keys: Iterable[TaskKey]) -> dict[TaskKey, TaskFacts]:
        """Stored facts of these tasks, created or not yet (only the keys that are stored)."""

    def save(self, facts: Mapping[TaskKey, TaskFacts]) -> None:
        """Write each task's facts whole."""

    def add_pauses(self, pauses: Iterable[tuple[str, TaskType, datetime]]) -> None:
        """Record each pause (tenant, type, when) once: a re-sent pause changes nothing."""

    def pauses(self, keys: Iterable[TaskTypeKey]) -> dict[TaskTypeKey, list[datetime]]:
        """Each (tenant, type)'s pauses, earliest first (only the keys that have some)."""


class IgnoredEventStore(Protocol):
    def add(self, ignored: Sequence[IgnoredEvent], now: datetime) -> None:
        """Keep each record (topic, partition, offset) once, ignored `now`: a record already
        kept keeps its entry, so a replay of the same offsets adds nothing; of one record
        listed twice in a call, the last counts. New entries get ids above every stored
        one, in the order listed."""


class OffsetStore(Protocol):
    def load(
        self, group: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Stored next offsets of the group (of these partitions only, when given)."""

    def advance(self, group: str, moves: Mapping[TopicPartition, OffsetMove]) -> None:
        """Compare-and-set each partition's stored offset: from `None` only if none is
        stored, else only from the stored one. `OffsetMoved` otherwise, and then the unit
        of work must not commit (partitions set before the failing one are not undone)."""

    def forget(self, group: str, topics: Iterable[str]) -> None:
        """Drop the group's stored offsets of these topics (every partition)."""


class DeadLetterStore(Protocol):
    def add(self, letters: Sequence[DeadLetter], now: datetime) -> None:
        """Keep each record's (topic, partition, offset) letter once: a record that has a
        letter keeps it as it is (reason and attempts too), so a replay of the same offsets
        adds nothing; of one record listed twice in a call, the last counts. A new letter
        failed first and last `now`, one attempt, with an id above every stored one."""

    def remove(self, ids: Iterable[int]) -> None:
        """Remove replayed letters; `LetterGone` if one is gone already (another replay got
        there first), and then the unit of work must not commit."""

    def failed_again(self, letter_id: int, reason: str, now: datetime) -> None:
        """A replayed letter failed again: its new reason, last failed `now`, one more
        attempt (a letter that is gone changes nothing)."""


class StateVersion(NamedTuple):
    number: int
    """How many batches moved it; a key never moved is at 0."""
    as_of: datetime | None
    """The record (arrival) time of the newest event that moved it (None: no event did)."""


NO_SHARDS: Mapping[tuple[str, int], datetime | None] = MappingProxyType({})


class StateVersionStore(Protocol):
    def numbers(self, keys: Iterable[str]) -> dict[str, int]:
        """The version of each of `keys` (0 for one never moved)."""

    def shard_numbers(self, shards: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The version of each of these shards of state versions (0 for one never moved)."""

    def bump(
        self,
        keys: Mapping[str, datetime | None],
        shards: Mapping[tuple[str, int], datetime | None] = NO_SHARDS,
    ) -> None:
        """Move each of these state versions, and each of these shards of them (by key and
        shard, `service.app.shards`), on by one, each with the arrival time of the newest
        event that moved it: its `as_of` becomes the later of that and the stored one (None
        changes nothing)."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A result in the outbox (`service.app.results`): its envelope as it goes out."""

    event_id: str
    tenant_id: str
    kind: str
    window: str
    occurred_at: datetime
    """When the window froze."""
    payload: bytes
    """The binary `ResultEvent`."""
    id: int = 0
    """Its place in the outbox (0: not stored yet); results go out in this order."""
    recorded_at: datetime | None = None
    sent_at: datetime | None = None
    """When the broker acknowledged it (None: not yet)."""


class ResultStore(Protocol):
    def recorded(self, event_ids: Iterable[str]) -> set[str]:
        """Which of these results are in the outbox, sent or not."""

    def add(self, entries: Sequence[OutboxEntry], now: datetime) -> None:
        """Put each result in the outbox, recorded `now`, unless its event id is
        there already (then the stored one stays as it is)."""

    def unsent(self, limit: int) -> list[OutboxEntry]:
        """The oldest results not sent yet, in outbox order, at most `limit`."""

    def mark_sent(self, ids: Iterable[int], now: datetime) -> None:
        """The broker acknowledged these results `now` (one already marked keeps its time)."""


class UnitOfWork(Protocol):
    """One transaction: every store's writes and the offsets commit together, or none. The
    stores read the transaction's own writes; nobody else sees them before `commit()`. Used
    only inside its `with` block (else RuntimeError)."""

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

    def lock(self, locks: Locks) -> None:
        """Hold these locks across instances until the transaction ends: each tenant's,
        exclusively or shared, then the buckets of the tenants held shared, all in one order
        (`service.app.shards`)."""

    def commit(self) -> None:
        """Make the writes so far the state; writes after it need a commit of their own."""


class ResultsWork(Protocol):
    """One transaction that notices freezes and writes their results: it reads the state
    (`read`, on the transaction's own connection) and writes the outbox, together."""

    @property
    def read(self) -> ReadModel: ...
    @property
    def results(self) -> ResultStore: ...

    def __enter__(self) -> ResultsWork: ...
    def __exit__(self, *exc: object) -> None:
        """Roll back whatever was not committed."""

    def lock_tenants(self, tenant_ids: Iterable[str]) -> None:
        """Hold these tenants' locks exclusively (`UnitOfWork.lock`): no batch of these
        tenants commits meanwhile."""

    def commit(self) -> None: ...


class LetterGone(RuntimeError):
    """A dead letter being replayed was removed by another replay first."""


# --- the read side ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which dead letters to list: each field given (not empty) narrows the list."""

    ids: tuple[int, ...] = ()
    topic: str | None = None
    tenant_id: str | None = None
    reason: str | None = None
    """A part of the reason, case-insensitive."""
    limit: int | None = None
    """The first this many, by id (None or 0: all)."""


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
    """Tables shaped for the answers, read on one connection. Not necessarily one snapshot:
    a batch committed while an answer is read may show in its later reads only."""

    def profiles(
        self, tenant_id: str, group: str | None, as_of: datetime | None = None
    ) -> list[Profile]:
        """The group's members, or every profile of the tenant. `as_of` (a window frozen
        then): the group's members as the window froze with them, each user placed by
        `service.domain.membership.version_at_freeze`; the tenant's profiles are all of them
        whatever `as_of`. Names stay current."""

    def month_tallies(
        self,
        tenant_id: str,
        month: Month,
        kind: ScoreKind,
        group: str | None,
        as_of: datetime | None = None,
    ) -> dict[str, Tally]:
        """Each driver's month with trips, for one ranking type: a month whose trips were
        all deleted (0 trips) is left out, as if it never happened; for a group, only its
        members' months (members as of `as_of`, as for `profiles`)."""

    def month_changes(
        self, tenant_id: str, month: Month, kind: ScoreKind, since: Mapping[int, int]
    ) -> dict[str, Tally | None]:
        """The driver months of the tenant's calendar month changed after the versions
        `since` of its shards (`service.app.state_versions.month_key`, by shard; only the
        shards named), for one ranking type, whatever the
        drivers' groups: a month whose trips were all deleted is None. Read by an index, so
        its cost follows the number of changes, not the month's size."""

    def task_facts(self, tenant_id: str, task_id: str) -> TaskFacts | None: ...
    def task_pauses(self, tenant_id: str, task_type: TaskType) -> list[datetime]:
        """The tenant's pauses of one task type, earliest first."""

    def known_groups(self, tenant_id: str) -> frozenset[str]:
        """The groups any profile version of the tenant ever listed: a label stays known
        after its members left (a frozen window may still list them)."""

    def challenge(self, tenant_id: str, challenge_id: str) -> Challenge | None:
        """The published challenge, its groups sorted."""

    def challenge_entries(
        self,
        tenant_id: str,
        challenge_id: str,
        arrived_before: datetime,
        group: str | None,
        as_of: datetime | None = None,
    ) -> list[tuple[Entry, Profile]]:
        """Registrations that arrived before `arrived_before`, with the users' profiles (a
        user without one: a profile of their id alone); for a group, its members' only
        (members as of `as_of`, as for `profiles`)."""

    def challenges_ended(self, by: datetime) -> list[tuple[str, str, datetime]]:
        """(tenant, challenge_id, end_at) of every published challenge that ended by `by`
        (its end at or before it), in tenant then challenge order."""

    def path_session(self, tenant_id: str, session_id: str) -> PathSessionPublished | None: ...
    def resolve_user(self, tenant_id: str, email_or_id: str) -> str | None:
        """A user id from an id or an email (case-insensitive): a profile of that id first,
        else the profile of that email (the smallest id if several share it); learners
        known only from their enrollments are found by id (exactly)."""

    def learner_state(self, tenant_id: str, session_id: str, user_id: str) -> LearnerState | None:
        """The learner's folded facts, attempts and corrections by attempt id, or None when
        no enrollment of theirs was seen (attempts alone enroll nobody)."""

    def state_versions(self, keys: Iterable[str] | None = None) -> dict[str, StateVersion]:
        """The state versions of `keys` that were ever bumped (None: all of them). Read first
        in a read model, they say what the rest of its reads reflect."""

    def has_caught_up(self, group: str) -> bool:
        """Whether a consumer of the group has finished a first catch-up."""

    def dead_letters(self, which: LetterFilter) -> list[Letter]:
        """The letters `which` selects, by id."""

    def ignored_events(
        self, tenant_id: str | None, kind: str | None, limit: int | None
    ) -> list[IgnoredEntry]:
        """Valid events a rule ignored, newest (highest id) first; of one tenant and one
        kind when given, at most `limit` when given (not 0). An entry's record has only its
        topic, partition and offset."""

    def stored_offsets(self, group: str) -> dict[TopicPartition, int]:
        """Every stored next offset of the group."""


UnitsOfWork: TypeAlias = Callable[[], UnitOfWork]
"""Opens a new unit of work (one transaction)."""
