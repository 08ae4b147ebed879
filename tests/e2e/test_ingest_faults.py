"""Ingest under ordinary faults, tried from outside as producers and operators meet them:
nothing lost, nothing stalled silently, every fault reported."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, redirect_stdout
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from podium.events.v1 import catalog_pb2
from podium.v1 import common_pb2, driver_ranking_pb2, driver_ranking_pb2_grpc
from sqlalchemy import select

from consumers.local_broker import LocalBroker
from consumers.runner import ConsumerLoop
from service import cli
from service.adapters.tables import dead_letters
from service.app.records import FAMILIES
from service.bootstrap import Podium, serve
from service.clock import SystemClock
from service.config import Settings
from tests.builders import TENANT, produce, trip_envelope
from tests.databases import empty_database
from tests.e2e.conftest import Running, isolated_settings
from tests.processes import UNKNOWN, ServeProcess
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@asynccontextmanager
async def podium_running(settings: Settings) -> AsyncIterator[Podium]:
    podium = Podium(settings)
    await podium.start()
    try:
        yield podium
    finally:
        await podium.stop()


async def driver_month(
    podium: Podium, key: str, driver: str
) -> driver_ranking_pb2.GetDriverRankingResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{podium.port}") as channel:
        return await driver_ranking_pb2_grpc.DriverRankingServiceStub(channel).GetDriverRanking(
            driver_ranking_pb2.GetDriverRankingRequest(type="RANKING_TYPE_SAFETY"),
            metadata=(("x-api-key", key),),
        )


def trips_of(answer: driver_ranking_pb2.GetDriverRankingResponse, driver: str) -> int:
    month = answer.currentMonth
    ranked = sum(d.tripNumber for d in month.driverRanked if d.userId == driver)
    return ranked + sum(d.tripNumber for d in month.driverNotRanked if d.userId == driver)


async def health_of(podium: Podium, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{podium.port}") as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service)
        )
    return int(answer.status)


def letters_of(podium: Podium, tenant: str | None = None) -> list[tuple[str, int, str]]:
    query = select(dead_letters.c.topic, dead_letters.c.offset, dead_letters.c.reason)
    if tenant is not None:
        query = query.where(dead_letters.c.tenant_id == tenant)
    with podium.storage.engine.connect() as c:
        return [(r.topic, r.offset, r.reason) for r in c.execute(query.order_by("offset"))]


def stalled_partitions(podium: Podium, topic: str) -> float:
    registry = podium.metrics.registry
    return sum(
        registry.get_sample_value("podium_partition_stalled", {"topic": topic, "partition": p}) or 0
        for p in ("0", "1")
    )


def run_cli(settings: Settings, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(list(args), env=settings.to_env())
    return code, out.getvalue()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_bad_record_in_a_first_batch_is_dead_lettered_and_nothing_is_skipped(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    """Batches of 100 from partitions never stored before, 300 trips of which one has an
    infinite distance: 299 are folded and the bad one is kept as a dead letter."""
    with empty_database(kind, tmp_path) as url:
        settings = replace(isolated_settings(broker, url), batch_max_records=100)
        async with podium_running(settings) as podium:
            key = podium.storage.create_key(TENANT, "ranking", SystemClock().now())
            await asyncio.wait_for(podium.ready.wait(), 60)
            trips: list[tuple[bytes, Message]] = []
            for n in range(300):
                envelope = trip_envelope(f"t{n}", "ann", km=5)
                if n == 50:
                    envelope.trip_completed.distance_km = float("inf")
                trips.append((b"ann", envelope))
            await produce(
                settings.kafka_bootstrap_servers or "", settings.topic("trips"), trips, as_json=True
            )
            answer = await eventually(
                lambda: driver_month(podium, key, "ann"), lambda a: trips_of(a, "ann") == 299
            )
            assert trips_of(answer, "ann") == 299
            letters = letters_of(podium)
            assert [(offset, "distance_km" in reason) for _, offset, reason in letters] == [
                (50, True)
            ]


async def _produce_raw(
    servers: str, topic: str, records: Sequence[tuple[bytes, bytes, int | None]]
) -> None:
    """Values as bytes, with a record timestamp of the test's choosing (None: now)."""
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        for key, value, timestamp_ms in records:
            await producer.send(topic, value, key=key, timestamp_ms=timestamp_ms)
        await producer.flush()
    finally:
        await producer.stop()


def _stretch_binary_timestamp(envelope: Message) -> bytes:
    """The envelope with `occurred_at.seconds = 2**40`, a Timestamp no datetime can hold (a
    broken producer's bytes: the generated class lets the field be set)."""
    envelope.occurred_at.seconds = 2**40  # type: ignore[attr-defined]
    return envelope.SerializeToString()


@pytest.mark.asyncio(loop_scope="session")
async def test_values_the_fold_cannot_hold_are_dead_lettered_and_consumption_goes_on(
    running: Running,
) -> None:
    tenant, servers = running.tenant, running.servers
    trips, catalog = running.settings.topic("trips"), running.settings.topic("catalog")
    far = datetime(9999, 12, 31, 23, tzinfo=UTC)

    huge = trip_envelope("huge", "zed", km=5, tenant=tenant)
    huge.trip_completed.distance_km = 1e300
    last_year = trip_envelope("y9999", "zed", km=5, tenant=tenant)
    last_year.trip_completed.ended_at.FromDatetime(far)
    nul = trip_envelope("nul", "zed\x00", km=5, tenant=tenant)
    long_id = trip_envelope("x" * 250, "zed", km=5, tenant=tenant)
    stretched = trip_envelope("stretched", "zed", km=5, tenant=tenant)
    late = trip_envelope("late", "zed", km=5, tenant=tenant)
    challenge = catalog_pb2.CatalogEvent(event_id="c-long", tenant_id=tenant)
    challenge.occurred_at.GetCurrentTime()
    published = challenge.challenge_published
    published.challenge_id, published.title = "c", "c"
    published.theme = common_pb2.CHALLENGE_THEME_SAFETY
    published.start_at.FromDatetime(datetime.now(UTC))
    published.end_at.FromDatetime(datetime.now(UTC) + timedelta(days=1))
    published.pre_challenge_period.seconds = 315_000_000_000  # ten thousand years

    await _produce_raw(
        servers,
        trips,
        [
            (b"zed", huge.SerializeToString(), None),
            (b"zed", last_year.SerializeToString(), None),
            (b"zed", nul.SerializeToString(), None),
            (b"zed", long_id.SerializeToString(), None),
            (b"zed", _stretch_binary_timestamp(stretched), None),
            (b"zed", late.SerializeToString(), 300_000_000_000_000),  # year ~11,000
        ],
    )
    await _produce_raw(servers, catalog, [(b"c", challenge.SerializeToString(), None)])
    good = [(b"zed", trip_envelope(f"ok{i}", "zed", km=5, tenant=tenant)) for i in range(5)]
    await produce(servers, trips, good)
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)

    async def zed() -> int:
        answer = await stub.GetDriverRanking(
            driver_ranking_pb2.GetDriverRankingRequest(type="RANKING_TYPE_SAFETY"),
            metadata=running.auth,
        )
        return trips_of(answer, "zed")

    assert await eventually(zed, lambda n: n == 5) == 5
    reasons = [reason for _, _, reason in letters_of(running.podium, tenant)]
    assert len(reasons) == 7, reasons
    assert await health_of(running.podium, "podium.ingest") == SERVING


async def test_podium_serve_stops_with_a_failure_code_when_its_consumer_loop_dies(
    broker: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a zombie API answering from a state nobody updates any more."""

    async def broken(
        self: ConsumerLoop, stop: asyncio.Event, ready: asyncio.Event | None = None
    ) -> None:
        raise RuntimeError("a bug in the loop")

    monkeypatch.setattr(ConsumerLoop, "run", broken)
    with empty_database("sqlite", tmp_path) as url:
        settings = isolated_settings(broker, url)
        code = await asyncio.wait_for(serve(settings, "all", asyncio.Event()), 60)
    assert code == 1


async def six_trips_folded_from_a_broker_now_gone(url: str) -> tuple[Settings, str]:
    """Podium's first life: 6 trips of ann folded from a local broker that then stops, as
    `make run` stops; its settings and an API key, for the second life."""
    with LocalBroker() as first:
        settings = isolated_settings(first, url)
        async with podium_running(settings) as podium:
            key = podium.storage.create_key(TENANT, "ranking", SystemClock().now())
            await asyncio.wait_for(podium.ready.wait(), 60)
            await produce(
                first.bootstrap_servers,
                settings.topic("trips"),
                [(b"ann", trip_envelope(f"a{n}", "ann", km=5)) for n in range(6)],
            )
            await eventually(
                lambda: driver_month(podium, key, "ann"), lambda a: trips_of(a, "ann") == 6
            )
    return settings, key


async def ten_more_trips_make_sixteen(
    podium: Podium, broker: LocalBroker, settings: Settings, key: str
) -> None:
    """The second life: 10 more trips of ann on the new broker; none of the 16 is lost."""
    await produce(
        broker.bootstrap_servers,
        settings.topic("trips"),
        [(b"ann", trip_envelope(f"b{n}", "ann", km=5)) for n in range(10)],
    )
    answer = await eventually(
        lambda: driver_month(podium, key, "ann"), lambda a: trips_of(a, "ann") == 16
    )
    assert trips_of(answer, "ann") == 16


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_broker_that_restarted_empty_skips_none_of_the_new_events(
    tmp_path: Path, kind: str
) -> None:
    """`make run` twice: the local broker starts empty, the database keeps the offsets of the
    old log. Podium created the topics anew, so it reads them from their start: 6 + 10 trips."""
    with empty_database(kind, tmp_path) as url:
        settings, key = await six_trips_folded_from_a_broker_now_gone(url)
        with LocalBroker() as second:
            again = replace(settings, kafka_bootstrap_servers=second.bootstrap_servers)
            async with podium_running(again) as podium:
                await asyncio.wait_for(podium.ready.wait(), 60)
                await ten_more_trips_make_sixteen(podium, second, again, key)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_stored_offset_outside_the_log_stops_the_partition_until_an_operator_resets_it(
    tmp_path: Path, kind: str
) -> None:
    """Topics someone else re-created: the stored offsets are past their end. Podium stops
    those partitions and says so (log, metric, health, `podium offsets show`); after
    `podium offsets reset --to earliest` it reads the new logs from their start."""
    with empty_database(kind, tmp_path) as url:
        settings, key = await six_trips_folded_from_a_broker_now_gone(url)
        with LocalBroker() as second:
            again = replace(settings, kafka_bootstrap_servers=second.bootstrap_servers)
            admin = AIOKafkaAdminClient(bootstrap_servers=second.bootstrap_servers)
            await admin.start()
            try:
                await admin.create_topics(
                    [NewTopic(again.topic(f), again.topic_partitions, 1) for f in FAMILIES]
                )
            finally:
                await admin.close()
            async with podium_running(again) as podium:
                trips = again.topic("trips")
                await eventually(lambda: stalled_partitions(podium, trips) == 1, within=60)
                assert await health_of(podium, "podium.ingest") == NOT_SERVING
                code, shown = await asyncio.to_thread(run_cli, again, "offsets", "show")
                assert code == 1
                assert "OUTSIDE THE LOG" in shown
                reset = ("offsets", "reset", "--topic", "trips", "--to", "earliest")
                code, planned = await asyncio.to_thread(
                    run_cli, again, *reset, "--dry-run", "--json"
                )
                assert code == 0
                moves = [json.loads(line) for line in planned.splitlines()]
                assert {(m["topic"], m["to"], m["dryRun"]) for m in moves} == {(trips, 0, True)}
                assert any(m["from"] > 0 for m in moves)
                code, shown = await asyncio.to_thread(run_cli, again, "offsets", "show")
                assert (code, "OUTSIDE THE LOG" in shown) == (1, True)  # nothing moved
                code, _ = await asyncio.to_thread(run_cli, again, *reset)
                assert code == 0
                await eventually(
                    lambda: health_of(podium, "podium.ingest"),
                    lambda status: status == SERVING,
                    what="podium.ingest SERVING",
                )
                await ten_more_trips_make_sixteen(podium, second, again, key)
                code, shown = await asyncio.to_thread(run_cli, again, "offsets", "show")
                assert code == 0, shown
                assert "OUTSIDE" not in shown


async def test_every_role_serves_health(broker: LocalBroker, tmp_path: Path) -> None:
    """A consumers-only instance answers health too ("" and podium.ingest, no API); an API-only
    one answers "" and podium.api once a consumer of its group has caught up."""
    with empty_database("sqlite", tmp_path) as url:
        settings = isolated_settings(broker, url)
        logs = tmp_path / "consumers.log", tmp_path / "api.log"
        async with ServeProcess(settings, logs[0], role="consumers") as consumers:
            await consumers.until_health("podium.ingest", SERVING)
            assert await consumers.health("") == SERVING
            assert await consumers.health("podium.api") == UNKNOWN  # not served here
            async with ServeProcess(settings, logs[1], role="api") as api:
                await api.until_health("podium.api", SERVING)
                assert await api.health("") == SERVING
                assert await api.health("podium.ingest") == UNKNOWN
            assert await consumers.terminate() == 0
