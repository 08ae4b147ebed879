"""A batch's trips are inserted as new first, and only the keys found stored are folded again
from what is stored (`service.app.trips.fold_trips`): a batch mixing new trips with trips seen
again (re-sent, deleted, completed after their deletion, another user's, repeated within the
batch) records the same trips and driver months as its events folded one batch each."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from service.adapters.tables import driver_months, trips
from service.bootstrap import Storage
from service.domain import events as ev
from tests.builders import T0, apply, deletion, trip

EARLIER = T0 - timedelta(hours=1)


def stored_before(tenant: str) -> list[ev.Event]:
    return [
        trip("t1", "ann", tenant=tenant),
        trip("t2", "ann", km=4.0, tenant=tenant),
        deletion("t3", "ann", tenant=tenant),
        trip("t6", "bob", tenant=tenant),
    ]


def seen_again(tenant: str) -> list[ev.Event]:
    return [
        trip("t1", "ann", arrived_at=EARLIER, tenant=tenant),  # re-sent, known earlier
        deletion("t2", "ann", tenant=tenant),
        trip("t3", "ann", km=6.0, tenant=tenant),  # completes its tombstone: deleted
        trip("t4", "ann", km=5.0, tenant=tenant),
        trip("t4", "ann", km=7.0, tenant=tenant),  # other figures: a conflict
        trip("t1", "bob", tenant=tenant),  # another user's: a conflict
        trip("t5", "bob", km=3.0, tenant=tenant),
        deletion("t5", "bob", tenant=tenant),
        deletion("t6", "carl", tenant=tenant),  # another user's: a conflict
        trip("t7", "ann", km=2.0, tenant=tenant),
        trip("t7", "ann", km=2.0, tenant=tenant),  # the same, twice in the batch
    ]


def state_of(storage: Storage, tenant: str) -> tuple[list[Any], list[Any]]:
    """The tenant's trips and driver months, each row without its tenant (nor its stamp)."""
    with storage.engine.connect() as connection:
        trip_rows = connection.execute(
            select(*(c for c in trips.c if c.name != "tenant_id"))
            .where(trips.c.tenant_id == tenant)
            .order_by(trips.c.trip_id)
        ).all()
        month_columns = [c for c in driver_months.c if c.name not in ("tenant_id", "changed_in")]
        month_rows = connection.execute(
            select(*month_columns)
            .where(driver_months.c.tenant_id == tenant)
            .order_by(driver_months.c.user_id, driver_months.c.year, driver_months.c.month)
        ).all()
    return [tuple(r) for r in trip_rows], [tuple(r) for r in month_rows]


def test_a_batch_of_new_and_stored_trips_folds_as_its_events_one_batch_each(
    storage: Storage,
) -> None:
    apply(storage, *stored_before("acme"), *stored_before("solo"))
    together = apply(storage, *seen_again("acme"))
    alone = [apply(storage, event) for event in seen_again("solo")]
    assert [d.rejection.kind for d in together.dead_lettered] == ["conflict"] * 3
    assert [d.rejection.kind for a in alone for d in a.dead_lettered] == ["conflict"] * 3
    assert [d.record.offset for d in together.dead_lettered] == sorted(
        d.record.offset for d in together.dead_lettered
    )
    acme = state_of(storage, "acme")
    assert acme == state_of(storage, "solo")
    trip_rows, month_rows = acme
    assert [row[0] for row in trip_rows] == ["t1", "t2", "t3", "t4", "t5", "t6", "t7"]
    assert [(row[2], row[3]) for row in month_rows] == [("ann", 3), ("bob", 1)]  # t1 t4 t7, t6
