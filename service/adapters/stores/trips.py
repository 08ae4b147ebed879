"""Trips (kept so that deletions and late registrations can be folded) and driver months."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Row, select

from service.adapters.sql import InList, key_lookups, upsert
from service.adapters.tables import SCORE_COLUMNS, driver_months, trips
from service.app.ports import MonthKey, TripKey
from service.domain.events import SCORE_KINDS
from service.domain.ranking import NO_TOTALS, MonthTotals
from service.domain.trips import StoredTrip, Tombstone, TripFacts


def trip_from_row(row: Row[Any]) -> StoredTrip:
    if row.ended_at is None:
        return Tombstone(row.trip_id, row.user_id, row.deleted_arrived_at)
    return TripFacts(
        trip_id=row.trip_id,
        user_id=row.user_id,
        ended_at=row.ended_at,
        metres=row.metres,
        score_units=(row.safety, row.eco_driving, row.distraction, row.speeding),
        arrived_at=row.arrived_at,
        deleted_arrived_at=row.deleted_arrived_at,
    )


def _trip_row(tenant_id: str, trip: StoredTrip) -> dict[str, Any]:
    row: dict[str, Any] = {
        "tenant_id": tenant_id,
        "trip_id": trip.trip_id,
        "user_id": trip.user_id,
        "deleted_arrived_at": trip.deleted_arrived_at,
    }
    facts = trip if isinstance(trip, TripFacts) else None
    row.update(
        ended_at=facts.ended_at if facts else None,
        metres=facts.metres if facts else None,
        arrived_at=facts.arrived_at if facts else None,
        **{
            SCORE_COLUMNS[kind]: facts.score_units[i] if facts else None
            for i, kind in enumerate(SCORE_KINDS)
        },
    )
    return row


class SqlTripStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def load(self, keys: Iterable[TripKey]) -> dict[TripKey, StoredTrip]:
        found: dict[TripKey, StoredTrip] = {}
        for condition in key_lookups((trips.c.tenant_id, trips.c.trip_id), keys):
            rows = self._c.execute(select(trips).where(condition))
            for row in rows:
                found[(row.tenant_id, row.trip_id)] = trip_from_row(row)
        return found

    def of_users(self, tenant_id: str, user_ids: Iterable[str]) -> list[TripFacts]:
        """Every recorded trip of these users (deleted ones included: freezes decide)."""
        rows = self._c.execute(
            select(trips).where(
                trips.c.tenant_id == tenant_id,
                InList(trips.c.user_id, sorted(set(user_ids))),
                trips.c.ended_at.is_not(None),
            )
        )
        return [t for t in map(trip_from_row, rows) if isinstance(t, TripFacts)]

    def save(
        self, new: Mapping[TripKey, StoredTrip], changed: Mapping[TripKey, StoredTrip]
    ) -> None:
        """Write new and changed trips in one statement (a changed row is replaced whole)."""
        rows = [_trip_row(tenant, trip) for (tenant, _), trip in {**new, **changed}.items()]
        upsert(self._c, trips, rows, keys=["tenant_id", "trip_id"], replace=_TRIP_VALUES)


_TRIP_VALUES = [c.name for c in trips.c if not c.primary_key]


class SqlDriverMonthStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, deltas: Mapping[MonthKey, MonthTotals]) -> None:
        """Add each delta to the driver's month (creating it at zero). Row order does not
        matter: writers of a tenant are serialized by its lock (`lock_tenants`)."""
        rows = [
            {
                "tenant_id": tenant,
                "year": month.year,
                "month": month.number,
                "user_id": user,
                "trips": totals.trips,
                "metres": totals.metres,
                **{
                    f"{SCORE_COLUMNS[kind]}_weighted": totals.weighted[i]
                    for i, kind in enumerate(SCORE_KINDS)
                },
                **{
                    f"{SCORE_COLUMNS[kind]}_weight": totals.weight[i]
                    for i, kind in enumerate(SCORE_KINDS)
                },
            }
            for (tenant, user, month), totals in deltas.items()
            if totals != NO_TOTALS
        ]
        value_columns = [c.name for c in driver_months.c if not c.primary_key]
        upsert(
            self._c,
            driver_months,
            rows,
            keys=["tenant_id", "year", "month", "user_id"],
            add=value_columns,
        )
