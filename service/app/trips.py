"""Fold trip events: record each trip, then add what changed to the driver months."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from service.app.ports import MonthKey, TripKey, UnitOfWork
from service.app.records import DeadLetter, Received, Rejected
from service.app.shards import Buckets, stamp
from service.app.state_versions import month_key
from service.domain.events import TripCompleted, TripDeleted
from service.domain.frozen import frozen
from service.domain.ranking import Month, MonthDeltas, MonthTotals
from service.domain.rules import Rules
from service.domain.trips import (
    StoredTrip,
    TripConflict,
    TripFacts,
    after_completed,
    after_deleted,
)


@frozen
class TripChange:
    """A trip before and after one batch; the families derived from trips fold the change."""

    tenant_id: str
    before: StoredTrip | None
    after: StoredTrip


@dataclass
class TripFold:
    changes: list[TripChange] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    months: set[tuple[str, Month, int]] = field(default_factory=set)
    """The calendar months (by tenant, with the shard of each driver's) this fold changed."""


def fold_trips(
    uow: UnitOfWork, items: Sequence[Received], rules: Rules, buckets: Buckets
) -> TripFold:
    keys = [(i.event.meta.tenant_id, _trip_id(i)) for i in items]
    stored = uow.trips.load(set(keys))
    current: dict[TripKey, StoredTrip] = dict(stored)
    outcome = TripFold()
    for item, key in zip(items, keys, strict=True):
        meta, payload = item.event.meta, item.event.payload
        before = current.get(key)
        try:
            if type(payload) is TripCompleted:
                after = after_completed(before, payload, meta.arrived_at)
            else:
                assert type(payload) is TripDeleted
                after = after_deleted(before, payload.trip_id, payload.user_id, meta.arrived_at)
        except TripConflict as conflict:
            outcome.rejected.append(
                DeadLetter(
                    item.record,
                    Rejected(str(conflict), meta.tenant_id, meta.event_id, kind="conflict"),
                )
            )
            continue
        current[key] = after
    new: dict[TripKey, StoredTrip] = {}
    changed: dict[TripKey, StoredTrip] = {}
    changes = outcome.changes
    for key, after in current.items():  # stored trips first, then new ones as they came
        before = stored.get(key)
        if before is None:
            new[key] = after
        elif after != before:
            changed[key] = after
        else:
            continue
        changes.append(TripChange(key[0], before, after))
    uow.trips.save(new=new, changed=changed)
    deltas = month_deltas(outcome.changes, rules)
    shard_of = {key: buckets.of(key[1]) for key in deltas}
    outcome.months = {
        (tenant, month, shard_of[tenant, user, month]) for tenant, user, month in deltas
    }
    reached = month_stamps(uow, outcome.months)
    uow.driver_months.add(
        deltas, {(t, u, m): reached[t, m, shard_of[t, u, m]] for t, u, m in deltas}
    )
    return outcome


def month_stamps(
    uow: UnitOfWork, months: Iterable[tuple[str, Month, int]]
) -> dict[tuple[str, Month, int], int]:
    """The stamp of each shard of a calendar month (by tenant, month and shard) in this
    batch: the batch moves each shard it changes on by one (`service.app.ingest`), and
    writers of a shard are serialized by its bucket's lock (or the tenant's), so its version
    becomes the stored one plus one."""
    keys = {
        (month_key(tenant, month), shard): (tenant, month, shard) for tenant, month, shard in months
    }
    stored = uow.versions.shard_numbers(keys) if keys else {}
    return {at: stamp(at[2], stored.get(key, 0) + 1) for key, at in keys.items()}


def month_deltas(changes: Sequence[TripChange], rules: Rules) -> dict[MonthKey, MonthTotals]:
    """What each change adds to (or takes from) the driver months it counts in."""
    deltas: MonthDeltas[str] = MonthDeltas(rules.late_event_grace)
    for change in changes:
        if isinstance(change.before, TripFacts):
            deltas.add(change.tenant_id, change.before, -1)
        if isinstance(change.after, TripFacts):
            deltas.add(change.tenant_id, change.after)
    return deltas.totals()


def _trip_id(item: Received) -> str:
    payload = item.event.payload
    assert isinstance(payload, TripCompleted | TripDeleted)
    return payload.trip_id


__all__ = ["Month", "TripChange", "TripFold", "fold_trips", "month_deltas"]
