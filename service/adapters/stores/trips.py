"""Trips (kept so that deletions and late registrations can be folded) and driver months."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, literal_column, select

from service.adapters.sql import InList, key_lookups, upsert_columns, upsert_rows
from service.adapters.tables import SCORE_COLUMNS, driver_months, micros_or_none, trips
from service.app.ports import MonthKey, StorageUnavailable, TripKey
from service.domain.events import SCORE_KINDS
from service.domain.ranking import MonthTotals
from service.domain.trips import StoredTrip, Tombstone, TripFacts


def trip_from_row(row: Row[Any]) -> StoredTrip:
    """The table keeps the producer's doubles as sent (REAL, float8: both keep a double)."""
    if row.ended_at is None:
        return Tombstone(row.trip_id, row.user_id, row.deleted_arrived_at)
    return TripFacts(
        trip_id=row.trip_id,
        user_id=row.user_id,
        ended_at=row.ended_at,
        distance_km=row.distance_km,
        scores=(row.safety, row.eco_driving, row.distraction, row.speeding),
        arrived_at=row.arrived_at,
        deleted_arrived_at=row.deleted_arrived_at,
    )


TRIP_ROW = (
    "tenant_id",
    "trip_id",
    "user_id",
    "ended_at",
    "distance_km",
    *(SCORE_COLUMNS[kind] for kind in SCORE_KINDS),
    "arrived_at",
    "deleted_arrived_at",
)
"""The columns of `_trip_rows`' rows, in order."""


def _trip_rows(written: Mapping[TripKey, StoredTrip]) -> list[tuple[Any, ...]]:
    """The trips as the table's rows (`TRIP_ROW`), in the driver's form (`Instant`s as
    microseconds; the doubles as they are), tombstones' facts as NULL: one tuple a trip,
    made in one pass (a batch of a replay writes tens of thousands)."""
    micros = micros_or_none
    return [
        (
            tenant,
            trip.trip_id,
            trip.user_id,
            micros(trip.ended_at),
            trip.distance_km,
            *trip.scores,
            micros(trip.arrived_at),
            micros(trip.deleted_arrived_at),
        )
        if type(trip) is TripFacts
        else (tenant, trip.trip_id, trip.user_id, *_NO_FACTS, micros(trip.deleted_arrived_at))
        for (tenant, _), trip in written.items()
    ]


_NO_FACTS = (None,) * (len(TRIP_ROW) - 4)
"""A tombstone's columns between its user and its deletion's arrival."""


class SqlTripStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def load(self, keys: Iterable[TripKey]) -> dict[TripKey, StoredTrip]:
        return self._load(keys)

    def _load(
        self, keys: Iterable[TripKey], *condition: ColumnElement[bool]
    ) -> dict[TripKey, StoredTrip]:
        found: dict[TripKey, StoredTrip] = {}
        for lookup in key_lookups((trips.c.tenant_id, trips.c.trip_id), keys):
            rows = self._c.execute(select(trips).where(lookup, *condition))
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

    def add_new(self, new: Mapping[TripKey, StoredTrip]) -> dict[TripKey, StoredTrip]:
        """Record the trips whose key is not stored, and return what is stored of the others
        (left as it is): one insert, whose count says whether every trip was new (nearly
        every trip of a live feed or a replay is), and a look-up only when one was not: of
        the batch's keys among the rows the insert did not write. Those are on SQLite the rows
        there before it (a new row's id is greater than any before it; the writer is alone),
        on PostgreSQL the rows another transaction wrote (`xmin`; no savepoints here).

        On PostgreSQL a writer of another user's bucket inserting the same key meanwhile (a
        trip id re-used for another user) makes the insert wait for its commit, and the
        look-up then reads its row (READ COMMITTED: each statement sees what was committed
        before it began)."""
        if not new:
            return {}
        postgresql = self._c.dialect.name == "postgresql"
        last_row = None if postgresql else self._c.exec_driver_sql(_LAST_ROW).scalar()
        rows = _trip_rows(new)
        inserted = upsert_rows(self._c, trips, TRIP_ROW, rows, keys=_TRIP_KEY)
        if inserted == len(rows):
            return {}
        older = literal_column("rowid") <= (last_row or 0)
        not_written = _OTHER_TRANSACTIONS if postgresql else older
        stored = self._load(new, not_written)
        if len(stored) != len(rows) - inserted:
            raise StorageUnavailable(
                f"{len(rows) - inserted - len(stored)} trips were neither inserted nor found "
                "stored; the batch is folded again"
            )
        return stored

    def replace(self, changed: Mapping[TripKey, StoredTrip]) -> None:
        """Write stored trips whole."""
        upsert_rows(
            self._c, trips, TRIP_ROW, _trip_rows(changed), keys=_TRIP_KEY, replace=_TRIP_VALUES
        )


_TRIP_KEY = ("tenant_id", "trip_id")
_LAST_ROW = "SELECT max(rowid) FROM trips"
_OTHER_TRANSACTIONS = literal_column("xmin") != literal_column("pg_current_xact_id()::xid")
_TRIP_VALUES = [c.name for c in trips.c if not c.primary_key]


class SqlDriverMonthStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(
        self,
        deltas: Mapping[MonthKey, MonthTotals],
        stamps: Mapping[MonthKey, int] | None = None,
    ) -> None:
        """Add each delta to the driver's month (creating it at zero), stamped by `stamps`
        (None: the stamps stay as they were). Row order does not matter: writers of a driver
        are serialized by its bucket's lock (`SqlUnitOfWork.lock`)."""
        kept = [(key, totals) for key, totals in deltas.items() if not totals.is_empty]
        months = [month for (_, _, month), _ in kept]
        sums = [totals for _, totals in kept]
        columns: dict[str, list[Any]] = {
            "tenant_id": [tenant for (tenant, _, _), _ in kept],
            "year": [month.year for month in months],
            "month": [month.number for month in months],
            "user_id": [user for (_, user, _), _ in kept],
            "trips": [totals.trips for totals in sums],
            "km": [totals.km for totals in sums],
        }
        for i, kind in enumerate(SCORE_KINDS):
            columns[f"{SCORE_COLUMNS[kind]}_weighted"] = [totals.weighted[i] for totals in sums]
            columns[f"{SCORE_COLUMNS[kind]}_weight"] = [totals.weight[i] for totals in sums]
        if stamps is not None:
            columns["changed_in"] = [stamps[key] for key, _ in kept]
        upsert_columns(
            self._c,
            driver_months,
            columns,
            keys=["tenant_id", "year", "month", "user_id"],
            add=_MONTH_VALUES,
            replace=["changed_in"] if stamps is not None else [],
        )


_MONTH_VALUES = [c.name for c in driver_months.c if not c.primary_key and c.name != "changed_in"]
