"""In-memory ports: every store of the unit of work and the read model over one `State`, for
the use-case tests that test orchestration rather than storage.

They keep the SQL adapters' semantics, the subtle ones included (the contract tests in
`tests/integration/test_ports_contract.py` run the same tests on both). A unit of work writes
to a copy of the state that becomes the state only on `commit()`; leaving its `with` block
without committing discards the copy, so dry runs and failures roll back as on the database.
A published state is never changed again: a read model reads the state of the moment it opened.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from service.app.ports import (
    NO_SHARDS,
    ChallengeKey,
    CorrectionKey,
    EntryKey,
    IgnoredEntry,
    LearnerKey,
    Letter,
    LetterFilter,
    LetterGone,
    MonthKey,
    OffsetMove,
    OffsetMoved,
    OutboxEntry,
    Registration,
    SessionKey,
    StateVersion,
    TaskKey,
    TaskTypeKey,
    TenantUser,
    TopicPartition,
    TripKey,
)
from service.app.records import DeadLetter, IgnoredEvent, Record
from service.app.shards import Locks, shard_range
from service.app.state_versions import shard_key
from service.domain.challenges import Challenge, Entry
from service.domain.events import (
    PathSessionPublished,
    ScoreKind,
    TaskType,
    UserUpserted,
)
from service.domain.membership import ProfileVersion, version_at_freeze
from service.domain.paths import Attempt, Correction, LearnerState
from service.domain.ranking import NO_TOTALS, Month, MonthTotals, Profile
from service.domain.standings import Tally
from service.domain.tasks import TaskFacts
from service.domain.trips import StoredTrip, TripFacts
from service.domain.versions import Version

K = TypeVar("K")
R = TypeVar("R", DeadLetter, IgnoredEvent)
Times = tuple[datetime | None, datetime | None]
"""A learner's (enrolled_at, unenrolled_at)."""


@dataclass
class State:
    """What the database holds, one dict per table. The values are frozen, so copying each
    dict copies the state."""

    users: dict[TenantUser, tuple[UserUpserted, Version]] = field(default_factory=dict)
    profile_versions: dict[tuple[str, str, Version], tuple[frozenset[str], datetime]] = field(
        default_factory=dict
    )
    """(tenant, user, version) -> the version's groups and when it arrived."""
    trips: dict[TripKey, StoredTrip] = field(default_factory=dict)
    driver_months: dict[MonthKey, MonthTotals] = field(default_factory=dict)
    month_stamps: dict[MonthKey, int] = field(default_factory=dict)
    """The stamp of the batch that last changed a driver month: the shard of its calendar
    month's version and the version it moved that shard to (`service.app.shards.stamp`)."""
    challenges: dict[ChallengeKey, tuple[Challenge, Version]] = field(default_factory=dict)
    entries: dict[EntryKey, tuple[Entry, datetime]] = field(default_factory=dict)
    """Entries of published challenges with their tallies, and when their registration
    arrived."""
    registrations: set[tuple[EntryKey, Registration]] = field(default_factory=set)
    sessions: dict[SessionKey, tuple[PathSessionPublished, Version]] = field(default_factory=dict)
    learners: dict[LearnerKey, Times] = field(default_factory=dict)
    attempts: dict[CorrectionKey, Attempt] = field(default_factory=dict)
    corrections: dict[CorrectionKey, Correction] = field(default_factory=dict)
    tasks: dict[TaskKey, TaskFacts] = field(default_factory=dict)
    pauses: set[tuple[str, TaskType, datetime]] = field(default_factory=set)
    ignored_events: dict[int, IgnoredEntry] = field(default_factory=dict)
    offsets: dict[tuple[str, str, int], int] = field(default_factory=dict)
    """(consumer group, topic, partition) -> the next offset to consume."""
    dead_letters: dict[int, Letter] = field(default_factory=dict)
    versions: dict[str, StateVersion] = field(default_factory=dict)
    version_shards: dict[tuple[str, int], StateVersion] = field(default_factory=dict)
    caught_up: dict[str, datetime] = field(default_factory=dict)
    results: dict[str, OutboxEntry] = field(default_factory=dict)
    """The outbox of results, by event id."""
    last_ids: dict[str, int] = field(default_factory=dict)
    """The last id given per table (never reused, as a PostgreSQL sequence's)."""

    def copy(self) -> State:
        return State(**{f.name: copy.copy(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def next_id(self, table: str) -> int:
        self.last_ids[table] = self.last_ids.get(table, 0) + 1
        return self.last_ids[table]

    def members(self, tenant_id: str, group: str, as_of: datetime | None = None) -> set[str]:
        if as_of is None:
            users = self.users.items()
            return {u for (t, u), (p, _) in users if t == tenant_id and group in p.groups}
        return {u for u, groups in self.groups_as_of(tenant_id, as_of).items() if group in groups}

    def groups_as_of(self, tenant_id: str, as_of: datetime) -> dict[str, frozenset[str]]:
        """Each user's groups in a window frozen at `as_of` (`version_at_freeze`)."""
        versions: dict[str, list[ProfileVersion]] = {}
        for (tenant, user, version), (groups, arrived_at) in self.profile_versions.items():
            if tenant == tenant_id:
                versions.setdefault(user, []).append(ProfileVersion(version, arrived_at, groups))
        placing = {user: version_at_freeze(kept, as_of) for user, kept in versions.items()}
        return {user: v.groups for user, v in placing.items() if v is not None}


class FakePorts:
    """What `service.bootstrap.Storage` gives the use cases, in memory: `unit_of_work()` and
    `read()`. `commits` counts the commits and `locked` the tenants each unit of work locked."""

    def __init__(self) -> None:
        self.state = State()
        self.commits = 0
        self.locked: list[tuple[str, ...]] = []
        self.locks: list[Locks] = []

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    @contextlib.contextmanager
    def read(self) -> Iterator[FakeReadModel]:
        yield FakeReadModel(self.state)

    def results_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self)

    def mark_caught_up(self, group: str, now: datetime) -> None:
        state = self.state.copy()
        state.caught_up[group] = now
        self.state = state


class FakeUnitOfWork:
    """One transaction: the stores write to a copy of the state, published on `commit()`.

    Units of work may overlap, but a commit after another one's commit (since this one
    began) is refused rather than losing what that one wrote: where the databases would
    make one wait for the other, the fake has nobody to wait for."""

    def __init__(self, ports: FakePorts) -> None:
        self._ports = ports
        self._base: State | None = None
        self._working: State | None = None
        self.users = FakeUserStore(self)
        self.trips = FakeTripStore(self)
        self.driver_months = FakeDriverMonthStore(self)
        self.challenges = FakeChallengeStore(self)
        self.paths = FakePathStore(self)
        self.tasks = FakeTaskStore(self)
        self.ignored_events = FakeIgnoredEventStore(self)
        self.offsets = FakeOffsetStore(self)
        self.dead_letters = FakeDeadLetterStore(self)
        self.versions = FakeStateVersionStore(self)
        self.results = FakeResultStore(self)

    @property
    def read(self) -> FakeReadModel:
        """The read model over the transaction's own copy: it sees the transaction's writes."""
        return FakeReadModel(self.state)

    def __enter__(self) -> FakeUnitOfWork:
        self._base = self._ports.state
        self._working = self._base.copy()
        return self

    def __exit__(self, *exc: object) -> None:
        self._base = self._working = None

    @property
    def state(self) -> State:
        """The transaction's own copy of the state."""
        if self._working is None:
            raise RuntimeError("unit of work used outside its `with` block")
        return self._working

    def lock(self, locks: Locks) -> None:
        if self._working is None:
            raise RuntimeError("unit of work used outside its `with` block")
        self._ports.locked.append(tuple(sorted(locks.exclusive | set(locks.buckets))))
        self._ports.locks.append(locks)

    def lock_tenants(self, tenant_ids: Iterable[str]) -> None:
        self.lock(Locks(exclusive=set(tenant_ids)))

    def commit(self) -> None:
        working = self.state
        if self._ports.state is not self._base:
            raise RuntimeError("another unit of work committed meanwhile (one writer at a time)")
        self._ports.state = self._base = working
        self._ports.commits += 1
        self._working = working.copy()


class _Store:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _state(self) -> State:
        return self._uow.state


def _one_each(keys: Iterable[K]) -> None:
    """The SQL replaces rows in one statement, which PostgreSQL refuses for two rows of one
    key (SQLite would keep the last): a use case never asks for that."""
    listed = list(keys)
    if len(set(listed)) != len(listed):
        raise ValueError("two rows of the same key in one write")


class FakeUserStore(_Store):
    def versions(self, keys: Iterable[TenantUser]) -> dict[TenantUser, Version]:
        users = self._state.users
        return {key: users[key][1] for key in keys if key in users}

    def record_versions(
        self, versions: Sequence[tuple[str, UserUpserted, Version, datetime]]
    ) -> None:
        kept = self._state.profile_versions
        for tenant, profile, version, arrived_at in versions:
            key = (tenant, profile.user_id, version)
            first = kept[key][1] if key in kept else arrived_at
            kept[key] = (frozenset(profile.groups), min(first, arrived_at))

    def replace(self, profiles: Sequence[tuple[str, UserUpserted, Version]]) -> None:
        _one_each((tenant, p.user_id) for tenant, p, _ in profiles)
        for tenant, profile, version in profiles:
            self._state.users[(tenant, profile.user_id)] = (profile, version)


class FakeTripStore(_Store):
    def load(self, keys: Iterable[TripKey]) -> dict[TripKey, StoredTrip]:
        trips = self._state.trips
        return {key: trips[key] for key in keys if key in trips}

    def of_users(self, tenant_id: str, user_ids: Iterable[str]) -> list[TripFacts]:
        users = set(user_ids)
        return [
            trip
            for (tenant, _), trip in self._state.trips.items()
            if tenant == tenant_id and trip.user_id in users and isinstance(trip, TripFacts)
        ]

    def add_new(self, new: Mapping[TripKey, StoredTrip]) -> dict[TripKey, StoredTrip]:
        trips = self._state.trips
        stored = {key: trips[key] for key in new if key in trips}
        trips.update((key, trip) for key, trip in new.items() if key not in stored)
        return stored

    def replace(self, changed: Mapping[TripKey, StoredTrip]) -> None:
        self._state.trips.update(changed)


class FakeDriverMonthStore(_Store):
    def add(
        self,
        deltas: Mapping[MonthKey, MonthTotals],
        stamps: Mapping[MonthKey, int] | None = None,
    ) -> None:
        months = self._state.driver_months
        for key, delta in deltas.items():
            if delta == NO_TOTALS:
                continue
            months[key] = months.get(key, NO_TOTALS) + delta
            if stamps is not None:
                self._state.month_stamps[key] = stamps[key]


class FakeChallengeStore(_Store):
    def load(self, keys: Iterable[ChallengeKey]) -> dict[ChallengeKey, tuple[Challenge, Version]]:
        challenges = self._state.challenges
        return {key: challenges[key] for key in keys if key in challenges}

    def replace(self, published: Sequence[tuple[str, Challenge, Version]]) -> None:
        _one_each((tenant, c.challenge_id) for tenant, c, _ in published)
        for tenant, challenge, version in published:
            groups = tuple(sorted(set(challenge.groups)))
            self._state.challenges[(tenant, challenge.challenge_id)] = (
                dataclasses.replace(challenge, groups=groups),
                version,
            )

    def add_registrations(self, registrations: Iterable[tuple[EntryKey, Registration]]) -> None:
        self._state.registrations.update(registrations)

    def registrations(self, keys: Iterable[EntryKey]) -> dict[EntryKey, list[Registration]]:
        wanted = set(keys)
        found: dict[EntryKey, list[Registration]] = {}
        for key, registration in self._state.registrations:
            if key in wanted:
                found.setdefault(key, []).append(registration)
        return {key: sorted(times) for key, times in found.items()}

    def registrations_of(self, tenant_id: str, challenge_id: str) -> dict[str, list[Registration]]:
        found: dict[str, list[Registration]] = {}
        for (tenant, challenge, user), registration in self._state.registrations:
            if (tenant, challenge) == (tenant_id, challenge_id):
                found.setdefault(user, []).append(registration)
        return {user: sorted(times) for user, times in found.items()}

    def entries(self, keys: Iterable[EntryKey]) -> dict[EntryKey, tuple[Entry, datetime]]:
        entries = self._state.entries
        return {key: entries[key] for key in keys if key in entries}

    def replace_entries(
        self, tenant_id: str, challenge_id: str, entries: Sequence[tuple[Entry, datetime]]
    ) -> None:
        _one_each(entry.user_id for entry, _ in entries)
        kept = {
            key: stored
            for key, stored in self._state.entries.items()
            if key[:2] != (tenant_id, challenge_id)
        }
        for entry, arrived_at in entries:
            kept[(tenant_id, challenge_id, entry.user_id)] = (entry, arrived_at)
        self._state.entries = kept

    def entries_of_users(self, users: Iterable[TenantUser]) -> list[tuple[str, str, Entry]]:
        wanted = set(users)
        return [
            (tenant, challenge, entry)
            for (tenant, challenge, user), (entry, _) in self._state.entries.items()
            if (tenant, user) in wanted and (tenant, challenge) in self._state.challenges
        ]

    def put_entries(self, entries: Sequence[tuple[str, str, Entry, datetime]]) -> None:
        _one_each((tenant, challenge, e.user_id) for tenant, challenge, e, _ in entries)
        for tenant, challenge, entry, arrived_at in entries:
            self._state.entries[(tenant, challenge, entry.user_id)] = (entry, arrived_at)

    def add_to_entries(self, deltas: Mapping[EntryKey, tuple[Tally, Tally]]) -> None:
        entries = self._state.entries
        for key, (during, before) in deltas.items():
            if key in entries:
                entry, arrived_at = entries[key]
                entries[key] = (
                    dataclasses.replace(
                        entry, during=entry.during + during, before=entry.before + before
                    ),
                    arrived_at,
                )


class FakePathStore(_Store):
    def session_versions(self, keys: Iterable[SessionKey]) -> dict[SessionKey, Version]:
        sessions = self._state.sessions
        return {key: sessions[key][1] for key in keys if key in sessions}

    def replace_sessions(
        self, sessions: Sequence[tuple[str, PathSessionPublished, Version]]
    ) -> None:
        _one_each((tenant, s.session_id) for tenant, s, _ in sessions)
        for tenant, session, version in sessions:
            self._state.sessions[(tenant, session.session_id)] = (session, version)

    def enrollments(self, keys: Iterable[LearnerKey]) -> dict[LearnerKey, Times]:
        learners = self._state.learners
        return {key: learners[key] for key in keys if key in learners}

    def put_enrollments(self, learners: Mapping[LearnerKey, Times]) -> None:
        self._state.learners.update(learners)

    def add_attempts(self, attempts: Sequence[tuple[LearnerKey, Attempt]]) -> None:
        for key, attempt in attempts:
            self._state.attempts.setdefault((*key, attempt.attempt_id), attempt)

    def corrections(self, keys: Iterable[CorrectionKey]) -> dict[CorrectionKey, Correction]:
        corrections = self._state.corrections
        return {key: corrections[key] for key in keys if key in corrections}

    def put_corrections(self, corrections: Sequence[tuple[LearnerKey, Correction]]) -> None:
        _one_each((*key, c.attempt_id) for key, c in corrections)
        for key, correction in corrections:
            self._state.corrections[(*key, correction.attempt_id)] = correction


class FakeTaskStore(_Store):
    def load(self, keys: Iterable[TaskKey]) -> dict[TaskKey, TaskFacts]:
        tasks = self._state.tasks
        return {key: tasks[key] for key in keys if key in tasks}

    def save(self, facts: Mapping[TaskKey, TaskFacts]) -> None:
        self._state.tasks.update(facts)

    def add_pauses(self, pauses: Iterable[tuple[str, TaskType, datetime]]) -> None:
        self._state.pauses.update(pauses)

    def pauses(self, keys: Iterable[TaskTypeKey]) -> dict[TaskTypeKey, list[datetime]]:
        wanted = set(keys)
        found: dict[TaskTypeKey, list[datetime]] = {}
        for tenant, task_type, at in self._state.pauses:
            if (tenant, task_type) in wanted:
                found.setdefault((tenant, task_type), []).append(at)
        return {key: sorted(times) for key, times in found.items()}


class FakeIgnoredEventStore(_Store):
    def add(self, ignored: Sequence[IgnoredEvent], now: datetime) -> None:
        state = self._state
        kept = {e.record.id for e in state.ignored_events.values()}
        for event in _last_per_record(ignored):
            if event.record.id in kept:
                continue
            topic, partition, offset = event.record.id
            entry_id = state.next_id("ignored_events")
            state.ignored_events[entry_id] = IgnoredEntry(
                entry_id,
                Record(topic, partition, offset, 0, None, b""),
                event.tenant_id,
                event.event_id,
                event.kind,
                event.reason,
                now,
            )


class FakeOffsetStore(_Store):
    def load(
        self, group: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        stored = _offsets_of(self._state, group)
        if partitions is None:
            return stored
        return {tp: stored[tp] for tp in set(partitions) if tp in stored}

    def advance(self, group: str, moves: Mapping[TopicPartition, OffsetMove]) -> None:
        offsets = self._state.offsets
        for (topic, partition), (expected, next_offset) in sorted(moves.items()):
            key = (group, topic, partition)
            if offsets.get(key) != expected:
                raise OffsetMoved(f"{topic}[{partition}] is no longer at offset {expected}")
            offsets[key] = next_offset

    def forget(self, group: str, topics: Iterable[str]) -> None:
        names = set(topics)
        offsets = self._state.offsets
        for key in [k for k in offsets if k[0] == group and k[1] in names]:
            del offsets[key]


class FakeDeadLetterStore(_Store):
    def add(self, letters: Sequence[DeadLetter], now: datetime) -> None:
        state = self._state
        kept = {letter.record.id for letter in state.dead_letters.values()}
        for dead in _last_per_record(letters):
            if dead.record.id in kept:
                continue
            letter_id = state.next_id("dead_letters")
            state.dead_letters[letter_id] = Letter(
                letter_id,
                dead.record,
                dead.rejection.reason,
                dead.rejection.tenant_id,
                dead.rejection.event_id,
                now,
                now,
                1,
            )

    def remove(self, ids: Iterable[int]) -> None:
        letters = self._state.dead_letters
        wanted = set(ids)
        gone = wanted - set(letters)
        for letter_id in wanted - gone:
            del letters[letter_id]
        if gone:
            raise LetterGone("some dead letters were replayed concurrently; nothing applied")

    def failed_again(self, letter_id: int, reason: str, now: datetime) -> None:
        letters = self._state.dead_letters
        if letter_id in letters:
            letter = letters[letter_id]
            letters[letter_id] = dataclasses.replace(
                letter, reason=reason, last_failed_at=now, attempts=letter.attempts + 1
            )


class FakeStateVersionStore(_Store):
    def numbers(self, keys: Iterable[str]) -> dict[str, int]:
        versions = self._state.versions
        return {key: versions[key].number for key in keys if key in versions}

    def shard_numbers(self, shards: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        found = self._state.version_shards
        return {at: found[at].number for at in shards if at in found}

    def bump(
        self,
        keys: Mapping[str, datetime | None],
        shards: Mapping[tuple[str, int], datetime | None] = NO_SHARDS,
    ) -> None:
        _bump(self._state.versions, keys)
        _bump(self._state.version_shards, shards)


def _shard_of_any(name: str, keys: set[str]) -> bool:
    key, sep, _ = name.rpartition(shard_key("", 0)[:-1])
    return bool(sep) and key in keys


H = TypeVar("H", bound=Hashable)


def _bump(versions: dict[H, StateVersion], moved: Mapping[H, datetime | None]) -> None:
    for key, as_of in moved.items():
        number, stored = versions.get(key, StateVersion(0, None))
        latest = max((t for t in (stored, as_of) if t is not None), default=None)
        versions[key] = StateVersion(number + 1, latest)


class FakeResultStore(_Store):
    def recorded(self, event_ids: Iterable[str]) -> set[str]:
        return {i for i in event_ids if i in self._state.results}

    def add(self, entries: Sequence[OutboxEntry], now: datetime) -> None:
        for entry in entries:
            if entry.event_id not in self._state.results:
                entry_id = self._uow.state.next_id("results_outbox")
                stored = dataclasses.replace(entry, id=entry_id, recorded_at=now, sent_at=None)
                self._state.results[entry.event_id] = stored

    def unsent(self, limit: int) -> list[OutboxEntry]:
        waiting = [e for e in self._state.results.values() if e.sent_at is None]
        return sorted(waiting, key=lambda e: e.id)[:limit]

    def mark_sent(self, ids: Iterable[int], now: datetime) -> None:
        marked = set(ids)
        for event_id, entry in list(self._state.results.items()):
            if entry.id in marked and entry.sent_at is None:
                self._state.results[event_id] = dataclasses.replace(entry, sent_at=now)


def _last_per_record(items: Sequence[R]) -> list[R]:
    """One item per record, the last listed, in the order records were first listed (as the
    SQL stores' `{record id: item}` dict)."""
    return list({item.record.id: item for item in items}.values())


def _offsets_of(state: State, group: str) -> dict[TopicPartition, int]:
    return {(t, p): offset for (g, t, p), offset in state.offsets.items() if g == group}


class FakeReadModel:
    """The read model over one published state (never changed afterwards)."""

    def __init__(self, state: State) -> None:
        self._state = state

    def profiles(
        self, tenant_id: str, group: str | None, as_of: datetime | None = None
    ) -> list[Profile]:
        members = self._state.members(tenant_id, group, as_of) if group else None
        return [
            Profile(user, p.firstname, p.lastname, p.pseudo)
            for (tenant, user), (p, _) in self._state.users.items()
            if tenant == tenant_id and (members is None or user in members)
        ]

    def month_tallies(
        self,
        tenant_id: str,
        month: Month,
        kind: ScoreKind,
        group: str | None,
        as_of: datetime | None = None,
    ) -> dict[str, Tally]:
        members = self._state.members(tenant_id, group, as_of) if group else None
        return {
            user: totals.tally(kind)
            for (tenant, user, of), totals in self._state.driver_months.items()
            if (tenant, of) == (tenant_id, month)
            and totals.trips
            and (members is None or user in members)
        }

    def month_changes(
        self, tenant_id: str, month: Month, kind: ScoreKind, since: Mapping[int, int]
    ) -> dict[str, Tally | None]:
        stamps = self._state.month_stamps
        ranges = [shard_range(shard, version) for shard, version in since.items()]
        return {
            user: totals.tally(kind) if totals.trips else None
            for (tenant, user, of), totals in self._state.driver_months.items()
            if (tenant, of) == (tenant_id, month)
            and (tenant, user, of) in stamps
            and any(low < stamps[tenant, user, of] < high for low, high in ranges)
        }

    def task_facts(self, tenant_id: str, task_id: str) -> TaskFacts | None:
        return self._state.tasks.get((tenant_id, task_id))

    def task_pauses(self, tenant_id: str, task_type: TaskType) -> list[datetime]:
        return sorted(
            at for t, kind, at in self._state.pauses if (t, kind) == (tenant_id, task_type)
        )

    def known_groups(self, tenant_id: str) -> frozenset[str]:
        return frozenset(
            group
            for (tenant, _, _), (groups, _) in self._state.profile_versions.items()
            if tenant == tenant_id
            for group in groups
        )

    def challenge(self, tenant_id: str, challenge_id: str) -> Challenge | None:
        stored = self._state.challenges.get((tenant_id, challenge_id))
        return None if stored is None else stored[0]

    def challenges_ended(self, by: datetime) -> list[tuple[str, str, datetime]]:
        return sorted(
            (tenant, challenge_id, challenge.end_at)
            for (tenant, challenge_id), (challenge, _) in self._state.challenges.items()
            if challenge.end_at <= by
        )

    def challenge_entries(
        self,
        tenant_id: str,
        challenge_id: str,
        arrived_before: datetime,
        group: str | None,
        as_of: datetime | None = None,
    ) -> list[tuple[Entry, Profile]]:
        users = self._state.users
        members = self._state.members(tenant_id, group, as_of) if group else None
        found: list[tuple[Entry, Profile]] = []
        for (tenant, challenge, user), (entry, arrived_at) in self._state.entries.items():
            if (tenant, challenge) != (tenant_id, challenge_id) or arrived_at >= arrived_before:
                continue
            if members is not None and user not in members:
                continue
            stored = users.get((tenant, user))
            profile = (
                Profile(user)
                if stored is None
                else Profile(user, stored[0].firstname, stored[0].lastname, stored[0].pseudo)
            )
            found.append((entry, profile))
        return found

    def path_session(self, tenant_id: str, session_id: str) -> PathSessionPublished | None:
        stored = self._state.sessions.get((tenant_id, session_id))
        return None if stored is None else stored[0]

    def resolve_user(self, tenant_id: str, email_or_id: str) -> str | None:
        email = email_or_id.lower()
        by_profile = sorted(
            (user != email_or_id, user)
            for (tenant, user), (p, _) in self._state.users.items()
            if tenant == tenant_id and (user == email_or_id or p.email.lower() == email)
        )
        if by_profile:
            return by_profile[0][1]
        enrolled = any(
            (tenant, user) == (tenant_id, email_or_id) for tenant, _, user in self._state.learners
        )
        return email_or_id if enrolled else None

    def learner_state(self, tenant_id: str, session_id: str, user_id: str) -> LearnerState | None:
        key = (tenant_id, session_id, user_id)
        times = self._state.learners.get(key)
        if times is None:
            return None

        def mine(stored: Mapping[CorrectionKey, K]) -> tuple[K, ...]:
            return tuple(v for k, v in sorted(stored.items(), key=lambda kv: kv[0]) if k[:3] == key)

        return LearnerState(*times, mine(self._state.attempts), mine(self._state.corrections))

    def state_versions(self, keys: Iterable[str] | None = None) -> dict[str, StateVersion]:
        versions = dict(self._state.versions)
        for (key, shard), state in sorted(self._state.version_shards.items()):
            was = versions.get(key, StateVersion(0, None))
            latest = max((t for t in (was.as_of, state.as_of) if t is not None), default=None)
            versions[key] = StateVersion(was.number + state.number, latest)
            versions[shard_key(key, shard)] = state
        if keys is None:
            return versions
        wanted = set(keys)
        return {k: v for k, v in versions.items() if k in wanted or _shard_of_any(k, wanted)}

    def has_caught_up(self, group: str) -> bool:
        return group in self._state.caught_up

    def dead_letters(self, which: LetterFilter) -> list[Letter]:
        letters = [
            letter
            for _, letter in sorted(self._state.dead_letters.items())
            if (not which.ids or letter.id in which.ids)
            and (not which.topic or letter.record.topic == which.topic)
            and (not which.tenant_id or letter.tenant_id == which.tenant_id)
            and (not which.reason or which.reason.lower() in letter.reason.lower())
        ]
        return letters[: which.limit] if which.limit else letters

    def ignored_events(
        self, tenant_id: str | None, kind: str | None, limit: int | None
    ) -> list[IgnoredEntry]:
        entries = [
            entry
            for _, entry in sorted(self._state.ignored_events.items(), reverse=True)
            if (not tenant_id or entry.tenant_id == tenant_id) and (not kind or entry.kind == kind)
        ]
        return entries[:limit] if limit else entries

    def stored_offsets(self, group: str) -> dict[TopicPartition, int]:
        return _offsets_of(self._state, group)
