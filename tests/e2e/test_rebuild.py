"""A state rebuilt from the topics answers as soon as Podium says SERVING, and keeps its
statistics current afterwards (docs/operations.md#the-planners-statistics).

The rebuild runs on PostgreSQL with autovacuum disabled for Podium's tables, as on a server
that has not come round to them yet: 10,000 drivers of one group and their trips folded from
offset 0 into an empty database by a real `podium serve`, whose statements are cancelled
after STATEMENT_TIMEOUT_SECONDS. Right after it reports SERVING, the group's ranking must
answer: a plan made without statistics joined the group's members row by row against the
whole month and was still running when the default 10 s cancelled it (UNAVAILABLE,
`storage_unavailable`); the plan Podium makes answers in well under a second on an idle
machine, and the limit leaves room for a machine loaded by other work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from podium.events.v1 import catalog_pb2, trips_pb2
from podium.v1 import driver_ranking_pb2, driver_ranking_pb2_grpc
from sqlalchemy import text

from bench.harness import produce_quickly
from consumers.local_broker import LocalBroker
from consumers.topics import ensure_topics
from service.adapters.database import create_database_engine
from service.adapters.statistics import TableStatistics
from service.bootstrap import Podium, storage
from service.clock import SystemClock
from service.config import Settings
from service.domain.ranking import Month
from tests.builders import TENANT, produce, trip_envelope
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import ServeProcess
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e]

DRIVERS = 10_000
TRIPS = 200_000
"""Twenty a driver, folded in batches that add to each driver's months again and again: the
months' table then holds many dead row versions (no vacuum has run), and a plan made without
statistics over it is the one that was cancelled (with two trips a driver it was not)."""
GROUP = "fleet"
STATEMENT_TIMEOUT_SECONDS = 5.0
"""Statements are cancelled after this (`PODIUM_STATEMENT_TIMEOUT_SECONDS`)."""


def _profiles() -> Iterator[tuple[bytes, bytes]]:
    envelope = catalog_pb2.CatalogEvent(tenant_id=TENANT)
    envelope.occurred_at.FromSeconds(int(time.time()) - 86_400)
    profile = envelope.user_upserted
    profile.groups.append(GROUP)
    for n in range(DRIVERS):
        envelope.event_id = f"profile-{n}"
        profile.user_id = f"d{n}"
        profile.firstname, profile.lastname, profile.pseudo = f"First{n}", f"Last{n}", f"p{n}"
        profile.email = f"d{n}@example.com"
        yield profile.user_id.encode(), envelope.SerializeToString()


def _trips(count: int) -> Iterator[tuple[bytes, bytes]]:
    """`count` trips of the DRIVERS drivers, every other one ended in this month so far, the
    others in the last month (binary envelopes, one message reused: built fast)."""
    now = datetime.now(UTC)
    this_month = Month.of(now)
    spans = [
        (int(this_month.starts_at.timestamp()), int((now - this_month.starts_at).total_seconds())),
        (
            int(this_month.previous().starts_at.timestamp()),
            int((this_month.starts_at - this_month.previous().starts_at).total_seconds()),
        ),
    ]
    envelope = trips_pb2.TripEvent(tenant_id=TENANT)
    trip = envelope.trip_completed
    for n in range(count):
        start, span = spans[n % 2]
        ended = start + span * ((n * 7919) % 1000) // 1000
        envelope.event_id = trip.trip_id = f"trip-{n}"
        trip.user_id = f"d{n % DRIVERS}"
        trip.distance_km = 2 + n % 13
        trip.scores.safety = n % 100 / 10
        envelope.occurred_at.FromSeconds(ended)
        trip.started_at.FromSeconds(ended - 900)
        trip.ended_at.FromSeconds(ended)
        yield trip.user_id.encode(), envelope.SerializeToString()


def _without_autovacuum(database_url: str) -> None:
    """Migrated, with autovacuum disabled on every table of Podium's."""
    with storage(database_url, migrate=True) as store, store.engine.begin() as connection:
        tables = connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ).scalars()
        for table in list(tables):
            connection.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")


async def _rebuild_answers_right_after_serving(
    broker: LocalBroker, tmp_path: Path, trips: int
) -> None:
    with empty_database("postgresql", tmp_path) as url:
        settings = replace(
            isolated_settings(broker, url), statement_timeout_seconds=STATEMENT_TIMEOUT_SECONDS
        )
        await asyncio.to_thread(_without_autovacuum, url)
        with storage(url) as store:
            key = store.create_key(TENANT, "ranking", SystemClock().now())
        servers = broker.bootstrap_servers
        await ensure_topics(settings)  # as Podium makes them: co-partitioned
        for family, records in (("catalog", _profiles()), ("trips", _trips(trips))):
            await asyncio.to_thread(produce_quickly, servers, settings.topic(family), records)
        async with ServeProcess(settings, tmp_path / "serve.log") as serve:
            await serve.serving(within=600)
            stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(serve.channel())
            started = time.perf_counter()
            try:
                answer = await stub.GetDriverRanking(
                    driver_ranking_pb2.GetDriverRankingRequest(
                        type="RANKING_TYPE_SAFETY", group_label=GROUP
                    ),
                    metadata=(("x-api-key", key),),
                )
            except grpc.aio.AioRpcError as error:
                raise AssertionError(
                    f"{error.code().name} {error.details()}\n{serve.tail()}"
                ) from error
            took = time.perf_counter() - started
            month = answer.currentMonth
            assert len(month.driverRanked) + len(month.driverNotRanked) == DRIVERS
            print(
                f"GetDriverRanking of the {DRIVERS:,}-driver group right after SERVING "
                f"({trips:,} trips rebuilt): {took * 1000:.0f} ms"
            )


async def test_a_rebuild_answers_its_biggest_group_right_after_serving(
    broker: LocalBroker, tmp_path: Path
) -> None:
    await _rebuild_answers_right_after_serving(broker, tmp_path, TRIPS)


def _analyzes(podium: Podium, table: str, outcome: str = "done") -> float:
    sample = podium.metrics.registry.get_sample_value(
        "podium_table_analyzes_total", {"table": table, "outcome": outcome}
    )
    return sample or 0.0


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_every_table_is_analyzed_after_the_catch_up_and_again_once_it_grew(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    with empty_database(kind, tmp_path) as url:
        settings: Settings = isolated_settings(broker, url)
        podium = Podium(settings)
        await podium.start()
        try:
            await asyncio.wait_for(podium.ready.wait(), 60)
            assert _analyzes(podium, "trips") == 1
            assert _analyzes(podium, "driver_months") == 1
            trips = [(b"ann", trip_envelope(f"t{n}", "ann")) for n in range(1_200)]
            await produce(broker.bootstrap_servers, settings.topic("trips"), trips)
            await eventually(  # 1,200 trips: more than half of 1,000
                lambda: _analyzes(podium, "trips") >= 2, what="trips analyzed again"
            )
            assert _analyzes(podium, "driver_months") == 1  # one row: it did not grow
        finally:
            await podium.stop()


async def test_an_analyze_that_fails_after_the_catch_up_is_counted_and_podium_serves(
    broker: LocalBroker, tmp_path: Path
) -> None:
    with empty_database("postgresql", tmp_path) as url:
        podium = Podium(isolated_settings(broker, url))
        unreachable = create_database_engine(
            "postgresql://postgres@127.0.0.1:1/test?connect_timeout=1"
        )
        podium.storage = replace(podium.storage, statistics=TableStatistics(unreachable))
        await podium.start()
        try:
            await asyncio.wait_for(podium.ready.wait(), 60)
            assert _analyzes(podium, "trips", "failed") == 1
            assert _analyzes(podium, "trips") == 0
        finally:
            await podium.stop()
            unreachable.dispose()
