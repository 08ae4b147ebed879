"""Shared pieces of the benchmarks: databases, seeding state, producing, percentiles."""

from __future__ import annotations

import asyncio
import statistics
import sys
import uuid
import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer
from podium.events.v1 import trips_pb2
from sqlalchemy import Engine

import migrations
from service.adapters.database import create_database_engine
from service.app.ingest import Batch, apply_batch
from service.app.records import Received, Record
from service.bootstrap import Storage
from service.domain import events as ev
from service.domain.ranking import Month
from service.domain.rules import Rules
from service.domain.standings import Thresholds

RULES = Rules(Thresholds(5, Decimal(20)), timedelta(hours=24))
TENANT = "bench"


def engine_for(url: str) -> Engine:
    engine = create_database_engine(url)
    migrations.upgrade(engine)
    return engine


def analyze(engine: Engine) -> None:
    """Refresh the planner's statistics after bulk seeding, as autovacuum would in a running
    deployment; without them PostgreSQL plans the ranking's joins as if the tables were empty."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("ANALYZE")


GROUPS = 20
SEED_BATCH = 20_000


def group_of(driver: int, big_group: int) -> str:
    """`group-0` holds the first `big_group` drivers (the group whose ranking is measured);
    the others are spread over the 19 other groups."""
    return "group-0" if driver < big_group else f"group-{1 + driver % (GROUPS - 1)}"


def seed_state(
    engine: Engine, *, drivers: int, trips_per_driver: int, big_group: int, now: datetime
) -> int:
    """Realistic state straight through the fold (no broker), streamed in batches: profiles
    (arrived long before), then each driver's trips over the last three months (half in the
    current month, most of the rest in the previous one), each arrived a minute after it
    ended, so the frozen months hold theirs as they froze. Returns how many events were
    folded."""
    folded = 0
    for first in range(0, drivers, SEED_BATCH):
        apply_events(
            engine,
            [_profile(d, big_group, now) for d in range(first, min(drivers, first + SEED_BATCH))],
        )
        folded += min(drivers, first + SEED_BATCH) - first
    batch: list[ev.Event] = []
    for d in range(drivers):
        for t in range(trips_per_driver):
            ended = _seeded_end(now, d, t, trips_per_driver)
            arrived = min(now, ended + timedelta(minutes=1))
            batch.append(_trip_event(f"s{d}-{t}", f"d{d}", ended, arrived))
        if len(batch) >= SEED_BATCH:
            apply_events(engine, batch)
            folded, batch = folded + len(batch), []
    apply_events(engine, batch)
    return folded + len(batch)


PROFILES_AGE = timedelta(days=120)
"""How long before the run the seeded profiles arrived: before every seeded month."""


def _profile(driver: int, big_group: int, now: datetime) -> ev.Event:
    arrived = now - PROFILES_AGE
    return ev.Event(
        ev.Meta(TENANT, f"u{driver}", arrived, arrived),
        ev.UserUpserted(
            f"d{driver}",
            f"d{driver}@example.com",
            f"First{driver}",
            f"Last{driver}",
            f"p{driver}",
            (group_of(driver, big_group),),
        ),
    )


def _seeded_end(now: datetime, driver: int, trip: int, trips: int) -> datetime:
    """When a seeded trip ended: trips [0, trips/2) in the current month (before now), the
    next ones in the previous month, the last in the month before; spread by driver."""
    half = trips // 2
    months_back = 0 if trip < half else 1 if trip < trips - 1 or trips < 3 else 2
    month = Month.of(now)
    for _ in range(months_back):
        month = month.previous()
    start = month.starts_at
    end = now if months_back == 0 else month.next().starts_at
    fraction = (driver * 7919 + trip * 104_729) % 1000 / 1000
    return start + (end - start) * fraction


def _trip_event(trip_id: str, user_id: str, ended: datetime, arrived: datetime) -> ev.Event:
    payload = ev.TripCompleted(
        trip_id,
        user_id,
        ended - timedelta(minutes=20),
        ended,
        3.0 + zlib.crc32(trip_id.encode()) % 17,
        ev.Scores(safety=5 + zlib.crc32(trip_id.encode()) % 50 / 10),
    )
    return ev.Event(ev.Meta(TENANT, trip_id, ended, arrived), payload)


def apply_events(engine: Engine, events: Sequence[ev.Event], batch: int = 20_000) -> None:
    """Fold events straight into the database (seeding state without the broker)."""
    for first in range(0, len(events), batch):
        part = events[first : first + batch]
        received = [Received(e, Record("seed", 0, i, 0, None, b"")) for i, e in enumerate(part)]
        apply_batch(
            Storage(engine).unit_of_work,
            Batch(received=received),
            rules=RULES,
            consumer_group="seed",
            now=datetime.now(UTC),
        )


def trip_message(
    n: int,
    drivers: int,
    ended: datetime | None = None,
    driver: str | None = None,
    tenant: str = TENANT,
) -> tuple[bytes, bytes]:
    """A trip event's Kafka key and binary envelope."""
    envelope = trip_envelope(n, drivers, ended, driver, tenant)
    return envelope.trip_completed.user_id.encode(), envelope.SerializeToString()


def trip_envelope(
    n: int,
    drivers: int,
    ended: datetime | None = None,
    driver: str | None = None,
    tenant: str = TENANT,
) -> trips_pb2.TripEvent:
    """The `n`th bench trip (of driver `n % drivers` unless named), ended `ended` (now unless
    given), with a distance and a safety score."""
    driver = driver or f"d{n % drivers}"
    end = ended or datetime.now(UTC)
    envelope = trips_pb2.TripEvent(
        event_id=f"k{n}-{uuid.uuid4().hex[:6]}",
        tenant_id=tenant,
        trip_completed=trips_pb2.TripCompleted(
            trip_id=f"k{n}-{uuid.uuid4().hex[:6]}",
            user_id=driver,
            distance_km=2 + n % 13,
            scores=trips_pb2.TripScores(safety=n % 100 / 10),
        ),
    )
    envelope.occurred_at.FromDatetime(end)
    envelope.trip_completed.started_at.FromDatetime(end - timedelta(minutes=15))
    envelope.trip_completed.ended_at.FromDatetime(end)
    return envelope


async def produce_trips(servers: str, topic: str, count: int, drivers: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        for n in range(count):
            key, value = trip_message(n, drivers)
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def produce_quickly(
    servers: str,
    topic: str,
    messages: Iterable[tuple[bytes, bytes]],
    headers: Sequence[tuple[str, bytes]] = (),
    partitioner: str = "consistent_random",
) -> None:
    """The backlog at once, with librdkafka: aiokafka producing in Python is hardly faster
    than the server folds, so the backlog would never build up. `headers` go with every
    record; `partitioner`: librdkafka's (its default, crc32 of the key, or `murmur2_random`,
    Kafka's default partitioner, as Java and aiokafka producers use)."""
    producer = Producer(
        {
            "bootstrap.servers": servers,
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "partitioner": partitioner,
        }
    )
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key=key, headers=list(headers))
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} trip events not delivered")


class BackgroundLoad:
    """`rate` trip events a second from a separate process, while a measurement runs."""

    def __init__(
        self, servers: str, topic: str, rate: float, drivers: int, tenant: str = TENANT
    ) -> None:
        self._args = (servers, topic, str(rate), str(drivers), tenant)
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> BackgroundLoad:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.produce", *self._args, stdout=asyncio.subprocess.PIPE
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            await self._process.communicate()


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: Sequence[float]) -> str:
    return (
        f"p50 {percentile(values, 0.5) * 1e3:.1f} ms, p99 {percentile(values, 0.99) * 1e3:.1f} ms"
        f" (n={len(values)}, mean {statistics.fmean(values) * 1e3:.1f} ms)"
    )


def probe_profile(driver: int) -> ev.Event:
    """The freshness probe's driver, alone in the group `probe`."""
    now = datetime.now(UTC)
    return ev.Event(
        ev.Meta(TENANT, f"probe{driver}", now, now),
        ev.UserUpserted(f"d{driver}", groups=("probe",)),
    )
