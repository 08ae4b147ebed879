"""`make bench`: every figure beside a ceiling measured in the same run, and their ratio.

    python -m bench [--quick] [--databases sqlite,postgresql] [--drivers N]

Sections: ingest (Podium's consumer loop against a bare aiokafka consumer on the same topic),
big answers (GetDriverRanking for a 10,000-driver group at 16 in flight, while ingest runs at a
tenth of its rate, against a trivial unary method of the same server), and freshness (event
produced to visible in GetDriverRanking, while ingest runs at half its rate).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import grpc

from bench.families import (
    CHALLENGES,
    LEARNERS,
    REGISTERED,
    SESSIONS,
    STEPS,
    challenge_trip,
    produce_messages,
    seed_challenges,
    seed_paths,
    seed_tasks,
    step_message,
    utc_now,
)
from bench.harness import (
    TENANT,
    BackgroundLoad,
    analyze,
    apply_events,
    database,
    engine_for,
    probe_profile,
    produce_trips,
    seed_state,
    summary,
    trip_message,
)
from bench.ingest import bare_consumer_rate, bench_settings, podium_ingest_rate
from bench.queries import HEALTH, load
from consumers.topics import ensure_topics
from service.adapters.keys import create_key
from service.bootstrap import Podium
from service.clock import SystemClock
from service.config import Settings
from service.gen.podium.v1 import (
    challenges_pb2,
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
    paths_pb2,
    tasks_pb2,
)
from service.local_broker import LocalBroker

BIG_GROUP = "group-0"
PROBE_GROUP = "probe"
PROBE_TIMEOUT_SECONDS = 20.0


def say(text: str) -> None:
    print(text, flush=True)


async def bench_database(
    kind: str, broker: LocalBroker, folder: Path, args: argparse.Namespace
) -> None:
    drivers, groups = args.drivers, max(1, args.drivers // 10_000)
    say(
        f"\n== {kind}: {drivers:,} drivers, {groups} groups of {drivers // groups:,}, "
        f"{args.trips_per_driver} trips each over 3 months =="
    )
    with database(kind, folder) as url:
        engine = engine_for(url)
        started = time.perf_counter()
        seed_state(
            engine,
            drivers=drivers,
            trips_per_driver=args.trips_per_driver,
            groups=groups,
            months=3,
            now=datetime.now(UTC),
        )
        analyze(engine)
        say(f"seeded state in {time.perf_counter() - started:.1f} s")

        settings = bench_settings(broker.bootstrap_servers, url, f"b{uuid.uuid4().hex[:6]}.")
        await ensure_topics(settings)
        topic = settings.topic("trips")
        await produce_trips(broker.bootstrap_servers, topic, args.events, drivers)
        say(f"produced {args.events:,} trip events to {topic}")
        bare = await bare_consumer_rate(broker.bootstrap_servers, topic, args.events)
        podium = await podium_ingest_rate(settings, engine, args.events)
        say(
            f"ingest: podium {podium.per_second:,.0f} trip events/s (bare aiokafka consumer "
            f"{bare.per_second:,.0f}/s, ratio {podium.per_second / bare.per_second:.2f})"
        )
        apply_events(engine, [probe_profile(drivers + 1)])
        analyze(engine)
        engine.dispose()
        await bench_queries(settings, podium.per_second, drivers, args)


async def bench_queries(
    settings: Settings, ingest_rate: float, drivers: int, args: argparse.Namespace
) -> None:
    podium = Podium(settings)
    await podium.start()
    try:
        await asyncio.wait_for(podium.ready.wait(), 120)
        key = create_key(
            podium.engine, TENANT, "ranking,challenges,tasks,paths", SystemClock().now()
        )
        address = f"127.0.0.1:{podium.port}"
        request = driver_ranking_pb2.GetDriverRankingRequest(
            type="RANKING_TYPE_SAFETY", group_label=BIG_GROUP
        ).SerializeToString()
        method = "/podium.v1.DriverRankingService/GetDriverRanking"
        servers, topic = settings.kafka_bootstrap_servers or "", settings.topic("trips")

        async with BackgroundLoad(servers, topic, ingest_rate / 10, drivers):
            trivial = await load(address, HEALTH, b"", "", seconds=args.seconds)
            ranking = await load(address, method, request, key, seconds=args.seconds)
        say(trivial.line("trivial unary (health check), 16 in flight"))
        say(
            ranking.line(
                f"GetDriverRanking, {BIG_GROUP} of {drivers // max(1, drivers // 10_000):,} "
                "drivers, 16 in flight, ingest at 1/10 rate"
            )
        )
        say(f"  ratio to the trivial ceiling: {ranking.per_second / trivial.per_second:.2f}")

        async with BackgroundLoad(servers, topic, ingest_rate / 2, drivers):
            delays = await freshness(address, key, servers, topic, drivers, args.probes)
        say(
            "freshness at 1/2 ingest rate, produced to visible in GetDriverRanking: "
            + summary(delays)
        )
    finally:
        await podium.stop()


async def freshness(
    address: str, key: str, servers: str, topic: str, drivers: int, probes: int
) -> list[float]:
    """Produce one trip for a probe driver and poll until the ranking shows it."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    delays: list[float] = []
    probe_driver = f"d{drivers + 1}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
        # The probe driver is alone in its group, so polling costs little and measures the
        # way from Kafka to an answer rather than the building of a 10,000-driver one.
        request = driver_ranking_pb2.GetDriverRankingRequest(
            type="RANKING_TYPE_SAFETY", group_label=PROBE_GROUP
        )
        metadata = (("x-api-key", key),)

        async def trips_of_probe() -> int:
            answer = await stub.GetDriverRanking(request, metadata=metadata)
            month = answer.currentMonth
            ranked = [d.tripNumber for d in month.driverRanked if d.userId == probe_driver]
            rest = [d.tripNumber for d in month.driverNotRanked if d.userId == probe_driver]
            return next(iter(ranked + rest), 0)

        try:
            for n in range(probes):
                before = await trips_of_probe()
                _, value = trip_message(20_000_000 + n, 1, driver=probe_driver)
                started = time.perf_counter()
                await producer.send_and_wait(topic, value, key=probe_driver.encode())
                deadline = started + PROBE_TIMEOUT_SECONDS
                while await trips_of_probe() == before and time.perf_counter() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                delays.append(time.perf_counter() - started)
        finally:
            await producer.stop()
    return delays


async def bench_families(
    kind: str, broker: LocalBroker, folder: Path, args: argparse.Namespace
) -> None:
    challenges, registered = (10, 500) if args.quick else (CHALLENGES, REGISTERED)
    say(
        f"\n== {kind}: {challenges} live challenges of {registered:,} registered users, "
        f"{SESSIONS} path sessions of {STEPS} steps with {LEARNERS:,} learners, 1,000 tasks =="
    )
    with database(kind, folder) as url:
        engine = engine_for(url)
        now = utc_now()
        start, _ = seed_challenges(engine, now, challenges, registered)
        seed_paths(engine, now)
        seed_tasks(engine, now)
        analyze(engine)
        settings = bench_settings(broker.bootstrap_servers, url, f"f{uuid.uuid4().hex[:6]}.")
        await ensure_topics(settings)
        servers = broker.bootstrap_servers
        for family, label, messages in (
            (
                "trips",
                "trip events with live challenges",
                [challenge_trip(n, start, challenges, registered) for n in range(args.events // 2)],
            ),
            ("enrollments", "step events", [step_message(n, now) for n in range(args.events // 2)]),
        ):
            topic = settings.topic(family)
            await produce_messages(servers, topic, messages)
            bare = await bare_consumer_rate(servers, topic, len(messages))
            podium = await podium_ingest_rate(settings, engine, len(messages), family)
            say(
                f"ingest, {label}: podium {podium.per_second:,.0f}/s (bare aiokafka consumer "
                f"{bare.per_second:,.0f}/s, ratio {podium.per_second / bare.per_second:.2f})"
            )
        engine.dispose()
        await bench_small_answers(settings, args)


async def bench_small_answers(settings: Settings, args: argparse.Namespace) -> None:
    podium = Podium(settings)
    await podium.start()
    try:
        await asyncio.wait_for(podium.ready.wait(), 300)
        key = create_key(
            podium.engine, TENANT, "ranking,challenges,tasks,paths", SystemClock().now()
        )
        address = f"127.0.0.1:{podium.port}"
        trivial = await load(address, HEALTH, b"", "", seconds=args.seconds)
        say(trivial.line("trivial unary (health check), 16 in flight"))
        calls = (
            (
                "GetTask",
                "/podium.v1.TaskService/GetTask",
                tasks_pb2.GetTaskRequest(task_id="task7"),
            ),
            (
                "GetPathSessionStats",
                "/podium.v1.PathService/GetPathSessionStats",
                paths_pb2.GetPathSessionStatsRequest(session_id="ps7", user_email_or_id="l7"),
            ),
            (
                "GetChallengeRanking",
                "/podium.v1.ChallengeService/GetChallengeRanking",
                challenges_pb2.GetChallengeRankingRequest(challenge_id="c1"),
            ),
            (
                "GetChallengeProgress",
                "/podium.v1.ChallengeService/GetChallengeProgress",
                challenges_pb2.GetChallengeProgressRequest(challenge_id="c1"),
            ),
        )
        for name, method, request in calls:
            measured = await load(
                address, method, request.SerializeToString(), key, seconds=args.seconds
            )
            say(
                measured.line(f"{name}, 16 in flight")
                + f", ratio to trivial {measured.per_second / trivial.per_second:.2f}"
            )
    finally:
        await podium.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, a minute or two")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--drivers", type=int)
    args = parser.parse_args()
    args.drivers = args.drivers or (10_000 if args.quick else 100_000)
    args.trips_per_driver = 3 if args.quick else 6
    args.events = 50_000 if args.quick else 200_000
    args.seconds = 3.0 if args.quick else 8.0
    args.probes = 10 if args.quick else 30
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as folder:
        for kind in args.databases.split(","):
            await bench_database(kind, broker, Path(folder), args)
            await bench_families(kind, broker, Path(folder), args)


if __name__ == "__main__":
    asyncio.run(main())
