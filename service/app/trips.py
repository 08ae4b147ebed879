"""Fold trip events: record each trip, then add what changed to the driver months."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
    """A stored trip before and after one batch; the families derived from trips fold the
    change."""

    tenant_id: str
    before: StoredTrip
    after: StoredTrip


@dataclass
class TripFold:
    """What a batch's trip events did: the trips it recorded for the first time (nothing was
    stored of them: the whole trip is the change, so no change object is made for each, the
    most of a replay), the stored trips it changed, and the events it rejected."""

    new: dict[TripKey, StoredTrip] = field(default_factory=dict)
    changed: list[TripChange] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    months: set[tuple[str, Month, int]] = field(default_factory=set)
    """The calendar months (by tenant, with the shard of each driver's) this fold changed."""

    def users(self) -> set[tuple[str, str]]:
        """The drivers (by tenant) whose trips changed."""
        users = {(tenant, trip.user_id) for (tenant, _), trip in self.new.items()}
        users.update((change.tenant_id, change.after.user_id) for change in self.changed)
        return users

    def changes(self) -> Iterator[tuple[str, StoredTrip | None, StoredTrip]]:
        """Each trip's change as (tenant, before or None for a new trip, after)."""
        for (tenant, _), trip in self.new.items():
            yield tenant, None, trip
        for change in self.changed:
            yield change.tenant_id, change.before, change.after


def fold_trips(
    uow: UnitOfWork, items: Iterable[Received], rules: Rules, buckets: Buckets
) -> TripFold:
    """Fold the batch's trip events. Nearly every trip of a live feed or a replay is new, so
    the batch's trips are first folded as if nothing were stored of them and inserted as new;
    only those whose key turns out stored (a trip seen again: a re-sent or deleted trip, or
    another user's) are folded again from what is stored, and replace it."""
    keyed = [
        (at, item, (item.event.meta.tenant_id, _trip_id(item))) for at, item in enumerate(items)
    ]
    current: dict[TripKey, StoredTrip] = {}
    rejected = _fold_events(keyed, current)
    stored = uow.trips.add_new(current)
    outcome = TripFold()
    if stored:
        refolded = dict(stored)
        rejected = {at: letter for at, letter in rejected.items() if keyed[at][2] not in stored}
        rejected.update(_fold_events([k for k in keyed if k[2] in stored], refolded))
        outcome.new = {key: trip for key, trip in current.items() if key not in stored}
        changed = {key: refolded[key] for key in stored if refolded[key] != stored[key]}
        outcome.changed = [TripChange(key[0], stored[key], after) for key, after in changed.items()]
        uow.trips.replace(changed)
    else:
        outcome.new = current
    outcome.rejected = [rejected[at] for at in sorted(rejected)]
    deltas = month_deltas(outcome, rules)
    # The shards of the calendar months, keyed by built-in values: a `Month` in a key is
    # hashed in Python, and a batch holds tens of thousands of driver months.
    shards = [buckets.of(user) for _, user, _ in deltas]
    months = {
        (tenant, month.year, month.number, shard): (tenant, month, shard)
        for (tenant, _, month), shard in zip(deltas, shards, strict=True)
    }
    outcome.months = set(months.values())
    reached = month_stamps(uow, outcome.months)
    stamp_of = {key: reached[at] for key, at in months.items()}
    stamps = {
        key: stamp_of[key[0], key[2].year, key[2].number, shard]
        for key, shard in zip(deltas, shards, strict=True)
    }
    uow.driver_months.add(deltas, stamps)
    return outcome


def _fold_events(
    keyed: Iterable[tuple[int, Received, TripKey]], current: dict[TripKey, StoredTrip]
) -> dict[int, DeadLetter]:
    """Fold each event (with its position in the batch and its trip's key) on its trip in
    `current` (a key missing: nothing stored of it), in order; return the events rejected
    by their position."""
    rejected: dict[int, DeadLetter] = {}
    for at, item, key in keyed:
        event = item.event
        meta, payload = event.meta, event.payload
        try:
            if type(payload) is TripCompleted:
                after = after_completed(current.get(key), payload, meta.arrived_at)
            else:
                assert type(payload) is TripDeleted
                after = after_deleted(
                    current.get(key), payload.trip_id, payload.user_id, meta.arrived_at
                )
        except TripConflict as conflict:
            rejected[at] = DeadLetter(
                item.record,
                Rejected(str(conflict), meta.tenant_id, meta.event_id, kind="conflict"),
            )
            continue
        current[key] = after
    return rejected


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


def month_deltas(fold: TripFold, rules: Rules) -> dict[MonthKey, MonthTotals]:
    """What the fold's trips add to (or take from) the driver months they count in: a new
    trip its contribution, a changed one its contribution less what it contributed before."""
    deltas: MonthDeltas[str] = MonthDeltas(rules.late_event_grace)
    add = deltas.add
    for (tenant, _), trip in fold.new.items():
        if type(trip) is TripFacts:
            add(tenant, trip)
    for change in fold.changed:
        if isinstance(change.before, TripFacts):
            add(change.tenant_id, change.before, -1)
        if isinstance(change.after, TripFacts):
            add(change.tenant_id, change.after)
    return deltas.totals()


def _trip_id(item: Received) -> str:
    payload = item.event.payload
    assert type(payload) is TripCompleted or type(payload) is TripDeleted
    return payload.trip_id


__all__ = ["Month", "TripChange", "TripFold", "fold_trips", "month_deltas"]
