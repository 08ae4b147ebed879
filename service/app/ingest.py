"""Apply one batch of consumed records in one transaction: state, dead letters, offsets.

A batch is folded family by family in a fixed order; each fold reads the state it needs,
folds its events in memory and writes the result, so the cost is a few statements per batch
rather than per event. The order does not change the outcome (every fold converges whatever
the arrival order); it only lets later folds see what earlier ones wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from service.app.catalog import fold_users
from service.app.challenges import fold_publications, fold_registrations, fold_trip_changes
from service.app.paths import LEARNER_EVENTS, fold_learners, fold_path_sessions
from service.app.ports import OffsetMove, TopicPartition, UnitOfWork, UnitsOfWork
from service.app.records import DeadLetter, IgnoredEvent, Received, RecordId
from service.app.state_versions import month_key, profiles_key, tenant_key
from service.app.tasks import TASK_EVENTS, fold_tasks
from service.app.trips import fold_trips
from service.domain import events as ev
from service.domain.ranking import Month
from service.domain.rules import Rules

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
    dry_run: bool = False,
) -> Applied:
    """Fold the batch and commit, or with `dry_run` roll it all back (to find out whether a
    part of a failing batch folds)."""
    received = batch.received
    with unit_of_work() as uow:
        tenants = {item.event.meta.tenant_id for item in received}
        uow.lock_tenants(tenants)
        users = _of(received, ev.UserUpserted)
        fold_users(uow, users)
        fold_publications(uow, _of(received, ev.ChallengePublished), rules)
        late = fold_registrations(uow, _of(received, ev.ChallengeRegistered), rules)
        fold_path_sessions(uow, _of(received, ev.PathSessionPublished))
        fold_learners(uow, _of(received, *LEARNER_EVENTS))
        trips = fold_trips(uow, _of(received, *TRIP_EVENTS), rules)
        fold_trip_changes(uow, trips.changes, rules)
        ignored = [*late, *fold_tasks(uow, _of(received, *TASK_EVENTS))]
        uow.ignored_events.add(ignored, now)
        dead = (*batch.dead, *trips.rejected)
        _keep_dead_letters(uow, dead, batch.replaying, now)
        uow.offsets.advance(consumer_group, batch.offsets)
        uow.versions.bump(_moved_versions(received, users, trips.months))
        if not dry_run:
            uow.commit()
    return Applied(
        folded=len(received) - len(trips.rejected), dead_lettered=dead, ignored=tuple(ignored)
    )


def _moved_versions(
    received: Sequence[Received],
    users: Sequence[Received],
    months: Iterable[tuple[str, Month]],
) -> dict[str, datetime | None]:
    """The versions the batch moves, each with the newest arrival among the events that moved
    it: a tenant's with any of its events, its profiles' with its user events, a month's with
    the tenant's trip events (the month a trip counts in is the fold's to say)."""
    moved: dict[str, datetime | None] = {}

    def arrived(key: str, items: Iterable[Received]) -> None:
        times = [item.record.arrived_at for item in items]
        moved[key] = max(times, default=None)

    by_tenant = _by_tenant(received)
    for tenant, items in by_tenant.items():
        arrived(tenant_key(tenant), items)
    for tenant, items in _by_tenant(users).items():
        arrived(profiles_key(tenant), items)
    for tenant, month in months:
        trip_events = [i for i in by_tenant[tenant] if isinstance(i.event.payload, TRIP_EVENTS)]
        arrived(month_key(tenant, month), trip_events)
    return moved


def _by_tenant(received: Iterable[Received]) -> dict[str, list[Received]]:
    tenants: dict[str, list[Received]] = {}
    for item in received:
        tenants.setdefault(item.event.meta.tenant_id, []).append(item)
    return tenants


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


def _of(received: Sequence[Received], *kinds: type) -> list[Received]:
    return [item for item in received if isinstance(item.event.payload, kinds)]
