"""Migration 0008 (exact figures): state stored in whole metres and score units is converted
exactly as stored, on each database, so every answer stays what it was."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, column, insert, table

import migrations
from service.adapters.database import create_database_engine
from service.adapters.tables import to_micros
from service.bootstrap import Storage
from service.domain.events import ScoreKind
from service.domain.ranking import Month
from service.domain.standings import Tally
from service.domain.tasks import Report
from service.domain.trips import Tombstone, TripFacts
from tests.builders import apply, trip

AT = datetime(2026, 11, 3, 8, 30, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
def before_0008(database_url: str) -> Iterator[Engine]:
    """A database at the schema before 0008."""
    engine = create_database_engine(database_url)
    migrations.upgrade(engine, "0007")
    yield engine
    engine.dispose()


def _rows(engine: Engine, name: str, *rows: dict[str, Any]) -> None:
    with engine.begin() as c:
        c.execute(insert(table(name, *(column(k) for k in rows[0]))), list(rows))


def _old_state(engine: Engine) -> None:
    at = to_micros(AT)
    scores = {"safety": 81_234, "eco_driving": None, "distraction": 0, "speeding": 100_000}
    trip = {"tenant_id": "acme", "user_id": "ann", "arrived_at": at, "deleted_arrived_at": None}
    _rows(
        engine,
        "trips",
        {**trip, "trip_id": "t1", "ended_at": at, "metres": 12_345, **scores},
        {**trip, "trip_id": "t2", "ended_at": None, "metres": None, "deleted_arrived_at": at}
        | dict.fromkeys(scores),
    )
    weighted = {f"{kind}_weighted": 0 for kind in ("eco_driving", "distraction", "speeding")}
    weight = {f"{kind}_weight": 0 for kind in ("eco_driving", "distraction", "speeding")}
    _rows(
        engine,
        "driver_months",
        {
            "tenant_id": "acme",
            "year": 2026,
            "month": 11,
            "user_id": "ann",
            "trips": 2,
            "metres": 12_345,
            "safety_weighted": 81_234 * 12_345,
            "safety_weight": 12_345,
            **weighted,
            **weight,
        },
    )
    _rows(
        engine,
        "challenges",
        {
            "tenant_id": "acme",
            "challenge_id": "c1",
            "title": "Safe week",
            "theme": 1,
            "start_at": at,
            "end_at": at + 7 * 86_400_000_000,
            "min_trips": 1,
            "min_metres": 19_999,
            "pre_period_us": 7 * 86_400_000_000,
            "pre_min_trips": 10,
            "version_at": at,
            "version_event": "e1",
        },
    )
    _rows(
        engine,
        "challenge_entries",
        {
            "tenant_id": "acme",
            "challenge_id": "c1",
            "user_id": "ann",
            "registered_at": at,
            "arrived_at": at,
            "during_trips": 1,
            "during_metres": 5,
            "during_weighted": 75_000 * 5,
            "during_weight": 5,
            "before_trips": 0,
            "before_metres": 0,
            "before_weighted": 0,
            "before_weight": 0,
        },
    )
    _rows(
        engine,
        "tasks",
        {
            "tenant_id": "acme",
            "task_id": "k1",
            "type": 1,
            "nb_items": 10,
            "created_at": at,
            "created_version_at": at,
            "created_version_event": "e1",
            "started_at": at,
            "lowest_remaining": 7,
            "completed_at": None,
            "failed_at": None,
            "failure_reason": "",
            "canceled_at": None,
        },
    )


def test_stored_figures_become_the_decimals_they_stood_for(before_0008: Engine) -> None:
    _old_state(before_0008)
    migrations.upgrade(before_0008)
    storage = Storage(before_0008)
    with storage.unit_of_work() as uow:
        trips = uow.trips.load([("acme", "t1"), ("acme", "t2")])
        challenge, _ = uow.challenges.load([("acme", "c1")])[("acme", "c1")]
        [(entry, _)] = uow.challenges.entries([("acme", "c1", "ann")]).values()
        task = uow.tasks.load([("acme", "k1")])[("acme", "k1")]
    # The doubles a producer sending 12.345 and 8.1234 sends, which stand for those decimals.
    assert trips == {
        ("acme", "t1"): TripFacts("t1", "ann", AT, 12.345, (8.1234, None, 0.0, 10.0), AT),
        ("acme", "t2"): Tombstone("t2", "ann", AT),
    }
    t1 = trips[("acme", "t1")]
    assert isinstance(t1, TripFacts)
    assert (t1.km, t1.score_of(ScoreKind.SAFETY)) == (Decimal("12.345"), Decimal("8.1234"))
    assert challenge.min_km == Decimal("19.999")
    assert entry.during == Tally(1, Decimal("0.005"), Decimal("0.0375"), Decimal("0.005"))
    assert entry.during.score == 7.5
    assert task.progress == (Report(EPOCH, 7),)
    with storage.read() as read:
        tallies = read.month_tallies("acme", Month(2026, 11), ScoreKind.SAFETY, None)
        answered = read.task_facts("acme", "k1")
    ann = tallies["ann"]
    assert ann == Tally(2, Decimal("12.345"), Decimal("100.283373"), Decimal("12.345"))
    assert (ann.metres, ann.score_hundredths) == (12_345, 812)
    assert answered == task


def test_the_migrated_state_takes_new_trips_exactly(before_0008: Engine) -> None:
    """Adding to a converted tally (text on SQLite, NUMERIC on PostgreSQL) is exact."""
    _old_state(before_0008)
    migrations.upgrade(before_0008)
    storage = Storage(before_0008)
    apply(storage, trip("t3", "ann", km=1e-9, safety=9.99, ended_at=AT + timedelta(hours=1)))
    with storage.read() as read:
        ann = read.month_tallies("acme", Month(2026, 11), ScoreKind.SAFETY, None)["ann"]
    assert ann.km == Decimal("12.345000001")
    assert ann.weighted == Decimal("100.28337300999")
