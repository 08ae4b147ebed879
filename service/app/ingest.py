"""Apply one batch of consumed records in one transaction: state, dead letters, offsets.

A batch is folded family by family in a fixed order; each fold reads the state it needs,
folds its events in memory and writes the result, so the cost is a few statements per batch
rather than per event. The order does not change the outcome (every fold converges whatever
the arrival order); it only lets later folds see what earlier ones wrote.

A batch that fails for a reason of its own (not the database's: see `StorageUnavailable`) is
split until the records that cause the failure are found (`apply_isolating`); they are
dead-lettered with the error as their reason and the rest is folded. Each try is a dry run
(rolled back), so the batch is still applied once, in one transaction, offsets included. The
consumer loop and a dead-letter replay isolate the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from service.app.catalog import fold_users
from service.app.challenges import fold_publications, fold_registrations, fold_trip_changes
from service.app.paths import LEARNER_EVENTS, fold_learners, fold_path_sessions
from service.app.ports import (
    LetterGone,
    OffsetMove,
    OffsetMoved,
    StorageUnavailable,
    TopicPartition,
    UnitOfWork,
    UnitsOfWork,
)
from service.app.records import DeadLetter, IgnoredEvent, Received, RecordId, Rejected, arrival_at
from service.app.shards import ONE_BUCKET, Buckets, Locks, locks_of
from service.app.state_versions import month_key, profiles_key, tenant_key
from service.app.tasks import TASK_EVENTS, fold_tasks
from service.app.trips import fold_trips
from service.domain import events as ev
from service.domain.ranking import Month
from service.domain.rules import Rules

log = logging.getLogger(__name__)
T = TypeVar("T")

TRIP_EVENTS = (ev.TripCompleted, ev.TripDeleted)


@dataclass(frozen=True, slots=True)
class Batch:
    received: Sequence[Received] = ()
    dead: Sequence[DeadLetter] = ()
    offsets: Mapping[TopicPartition, OffsetMove] = field(default_factory=dict)
    """Per partition: the offset the batch starts from as stored (None: never stored), and
    the next offset to consume once the batch is applied."""
    replaying: Mapping[RecordId, int] = field(default_factory=dict)
    """Records taken from the dead-letter store, by their letter id: applied ones leave the
    store in the same transaction, failing ones stay with the new reason."""


@dataclass(frozen=True, slots=True)
class Applied:
    folded: int
    dead_lettered: tuple[DeadLetter, ...]
    ignored: tuple[IgnoredEvent, ...] = ()


def apply_batch(
    unit_of_work: UnitsOfWork,
    batch: Batch,
    *,
    rules: Rules,
    consumer_group: str,
    now: datetime,
    buckets: Buckets = ONE_BUCKET,
    dry_run: bool = False,
) -> Applied:
    """Fold the batch and commit, or with `dry_run` roll it all back (to find out whether a
    part of a failing batch folds). `buckets`: the lock buckets the writers share
    (`service.app.shards`): every writer of a database uses the same, those agreed in the
    database (one bucket only for a database with one writer)."""
    received = batch.received
    with unit_of_work() as uow:
        locks = locks_of((item.event for item in received), buckets)
        _warn_off_buckets(received, buckets)
        uow.lock(locks)
        of = _by_family(received)
        users = of[ev.UserUpserted]
        fold_users(uow, users)
        fold_publications(uow, of[ev.ChallengePublished], rules)
        late = fold_registrations(uow, of[ev.ChallengeRegistered], rules)
        fold_path_sessions(uow, of[ev.PathSessionPublished])
        fold_learners(uow, of[LEARNER_EVENTS])
        trips = fold_trips(uow, of[TRIP_EVENTS], rules, buckets)
        fold_trip_changes(uow, trips, rules)
        ignored = [*late, *fold_tasks(uow, of[TASK_EVENTS])]
        uow.ignored_events.add(ignored, now)
        dead = (*batch.dead, *trips.rejected)
        _keep_dead_letters(uow, dead, batch.replaying, now)
        uow.offsets.advance(consumer_group, batch.offsets)
        uow.versions.bump(*_moved_versions(received, users, trips.months, locks))
        if not dry_run:
            uow.commit()
    return Applied(
        folded=len(received) - len(trips.rejected), dead_lettered=dead, ignored=tuple(ignored)
    )


USER_KEYED = (*TRIP_EVENTS, ev.ChallengeRegistered, *LEARNER_EVENTS)
"""The events of the topics keyed by user, whose partitions the lock buckets follow."""
OFF_BUCKET_SAMPLE = 16
"""Records of a batch looked at for one on another partition than its user's bucket."""
_OFF_BUCKETS_WARNED: list[str] = []


def _warn_off_buckets(received: Sequence[Received], buckets: Buckets) -> None:
    """Once per process, a WARNING when a record keyed by user is on another partition than
    its user's lock bucket: consumers of different partitions then wait for each other
    (correct, but one consumer's pace; docs/operations.md, "Co-partitioned topics")."""
    if _OFF_BUCKETS_WARNED or buckets.number == 1:
        return
    for item in received[:OFF_BUCKET_SAMPLE]:
        payload = item.event.payload
        if not isinstance(payload, USER_KEYED):
            continue
        if buckets.of(payload.user_id) != item.record.partition:
            topic = item.record.topic
            _OFF_BUCKETS_WARNED.append(topic)
            log.warning(
                "a record of %s is on partition %d, not on its user's lock bucket (%d of %d by "
                "%s, PODIUM_LOCK_PARTITIONER): the producers partition otherwise, or partitions "
                "were added, so consumers of different partitions wait for each other (the "
                'state is right; docs/operations.md, "Co-partitioned topics")',
                topic,
                item.record.partition,
                buckets.of(payload.user_id),
                buckets.number,
                buckets.partitioner,
            )
            return


def _moved_versions(
    received: Sequence[Received],
    users: Sequence[Received],
    months: Iterable[tuple[str, Month, int]],
    locks: Locks,
) -> tuple[dict[str, datetime | None], dict[tuple[str, int], datetime | None]]:
    """The versions the batch moves, each with the newest arrival among the events that moved
    it: a tenant's with any of its events, its profiles' with its user events, a month's with
    the tenant's trip events (the month a trip counts in is the fold's to say). A tenant held
    shared moves the shards of its buckets, never a version another writer may move at the
    same time (`service.app.shards`); a month moves the shards of its drivers' buckets."""
    moved: dict[str, datetime | None] = {}
    shards: dict[tuple[str, int], datetime | None] = {}
    newest, newest_trip = _newest_arrivals(received)
    for tenant, arrived_ms in newest.items():
        arrived = arrival_at(arrived_ms)
        held = locks.shards(tenant)
        for shard in held:
            shards[(tenant_key(tenant), shard)] = arrived
        if not held:
            moved[tenant_key(tenant)] = arrived
    for tenant, arrived_ms in _newest_arrivals(users)[0].items():
        moved[profiles_key(tenant)] = arrival_at(arrived_ms)
    trips_arrived = {tenant: arrival_at(ms) for tenant, ms in newest_trip.items()}
    for tenant, month, shard in months:
        shards[(month_key(tenant, month), shard)] = trips_arrived.get(tenant)
    return moved, shards


def _newest_arrivals(received: Iterable[Received]) -> tuple[dict[str, int], dict[str, int]]:
    """By tenant, the newest record timestamp of its events, and of its trip events (one
    pass over the batch)."""
    newest: dict[str, int] = {}
    newest_trip: dict[str, int] = {}
    for item in received:
        event = item.event
        tenant, arrived = event.meta.tenant_id, item.record.timestamp_ms
        kept = newest_trip if type(event.payload) in _TRIP_KINDS else newest
        if tenant not in kept or arrived > kept[tenant]:
            kept[tenant] = arrived
    for tenant, arrived in newest_trip.items():
        if tenant not in newest or arrived > newest[tenant]:
            newest[tenant] = arrived
    return newest, newest_trip


_TRIP_KINDS = frozenset(TRIP_EVENTS)


def _keep_dead_letters(
    uow: UnitOfWork,
    dead: Sequence[DeadLetter],
    replaying: Mapping[RecordId, int],
    now: datetime,
) -> None:
    failed_again: set[int] = set()
    for letter in dead:
        letter_id = replaying.get(letter.record.id)
        if letter_id is not None:
            uow.dead_letters.failed_again(letter_id, letter.rejection.reason, now)
            failed_again.add(letter_id)
    uow.dead_letters.add([d for d in dead if d.record.id not in replaying], now)
    uow.dead_letters.remove(sorted(set(replaying.values()) - failed_again))


Family = type | tuple[type, ...]
"""A kind of event, or several folded together (their relative order kept)."""

FAMILIES: tuple[Family, ...] = (
    ev.UserUpserted,
    ev.ChallengePublished,
    ev.ChallengeRegistered,
    ev.PathSessionPublished,
    LEARNER_EVENTS,
    TRIP_EVENTS,
    TASK_EVENTS,
)
_FAMILY_OF: dict[type, Family] = {
    kind: family
    for family in FAMILIES
    for kind in (family if isinstance(family, tuple) else (family,))
}


def _by_family(received: Sequence[Received]) -> dict[Family, list[Received]]:
    """The batch's events by family, in arrival order within each (one pass over the batch)."""
    families: dict[Family, list[Received]] = {family: [] for family in FAMILIES}
    for item in received:
        families[_FAMILY_OF[type(item.event.payload)]].append(item)
    return families


ApplyBatch = Callable[[Batch, bool], Applied]
"""Fold a batch in one transaction, `True` for a dry run that is rolled back. Raises
`OffsetMoved` when fenced out, `StorageUnavailable` when the database fails; anything else is
the batch's own fault."""


NOT_THE_RECORDS = (OffsetMoved, StorageUnavailable, LetterGone)
"""Failures that say nothing of a batch's records: passed on, never isolated."""


class Unresolvable(RuntimeError):
    """The failure is not any record's: even an empty batch fails, or every record of a batch
    fails (a bug or a broken schema rather than bad data). Dead-lettering would empty the
    stream, so the partitions stall and an operator is told."""


Describe = Callable[[BaseException], str]
"""An error in one line, safe for a log or a dead letter's reason (`service.logs.describe`:
a database's error shows its class and SQLSTATE, never the row it quotes)."""


def apply_isolating(
    apply: ApplyBatch,
    batch: Batch,
    describe: Describe,
    *,
    dry_run: bool = False,
    every_record_may_fail: bool = False,
) -> Applied:
    """Apply the batch; if its records make it fail, dead-letter those and apply the rest.
    Raises `Unresolvable` when the failure is not the records' (see `find_poison`)."""
    try:
        return apply(batch, dry_run)
    except NOT_THE_RECORDS:
        raise
    except Exception as error:
        log.warning("a batch failed to fold (%s); isolating its records", describe(error))
    received = list(batch.received)

    def rolled_back(items: Sequence[Received]) -> None:
        apply(Batch(received=items), True)

    poison = find_poison(received, rolled_back, describe, every_record_may_fail)
    poisoned = {index for index, _ in poison}
    dead = [
        DeadLetter(
            received[index].record,
            Rejected(
                f"cannot be folded: {why}",
                received[index].event.meta.tenant_id,
                received[index].event.meta.event_id,
                kind="unfoldable",
            ),
        )
        for index, why in poison
    ]
    remaining = [item for index, item in enumerate(received) if index not in poisoned]
    try:
        return apply(replace(batch, received=remaining, dead=[*batch.dead, *dead]), dry_run)
    except NOT_THE_RECORDS:
        raise
    except Exception as error:
        raise Unresolvable(
            f"the batch fails even without its bad records: {describe(error)}"
        ) from error


Attempt = Callable[[Sequence[T]], None]
"""Fold these items in a transaction that is rolled back; raise what the fold raises."""


def find_poison(
    items: Sequence[T],
    attempt: Attempt[T],
    describe: Describe,
    every_record_may_fail: bool = False,
) -> list[tuple[int, str]]:
    """The positions of the items that make `attempt` fail, each with why; folding all the
    others succeeds. Raises `Unresolvable` when the failure is not the items': even none of
    them fails, or (unless `every_record_may_fail`: dead letters replayed, not a stream that
    would be emptied) every one of several does."""

    def tried(chosen: list[int]) -> None:
        attempt([items[i] for i in chosen])

    def failure(chosen: list[int]) -> str | None:
        try:
            tried(chosen)
        except NOT_THE_RECORDS:
            raise
        except Exception as error:
            return describe(error)
        return None

    if (error := failure([])) is not None:
        raise Unresolvable(f"a batch without records fails too: {error}")
    poison = _isolate(list(range(len(items))), failure)
    if not every_record_may_fail and len(items) > 1 and len(poison) == len(items):
        raise Unresolvable(f"every record of the batch fails: {poison[0][1]}")
    return sorted(poison)


Failure = Callable[[list[int]], str | None]
"""Why folding the chosen items fails, or None when it does not."""


def _isolate(chosen: list[int], failure: Failure) -> list[tuple[int, str]]:
    error = failure(chosen)
    if error is None:
        return []
    if len(chosen) == 1:
        return [(chosen[0], error)]
    middle = len(chosen) // 2
    found = _isolate(chosen[:middle], failure) + _isolate(chosen[middle:], failure)
    if not found:
        # Each half folds alone, not together: the culprit is the record whose arrival makes
        # a prefix fail (the smallest failing prefix is longer than the first half).
        low, high = middle, len(chosen)
        while high - low > 1:
            mid = (low + high) // 2
            if failure(chosen[:mid]) is None:
                low = mid
            else:
                high = mid
        culprit = chosen[high - 1]
        found = [(culprit, failure(chosen[:high]) or error)]
    bad = {index for index, _ in found}
    return found + _isolate([i for i in chosen if i not in bad], failure)
