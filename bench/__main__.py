"""`make bench`: every figure beside a ceiling measured in the same run, and their ratio.

    python -m bench [--quick] [--growth] [--databases sqlite,postgresql] [--drivers N]
                    [--section all|startup|drivers|boards|families|abuse|replay|scaling|
                               growth|handover]

For each database:
- startup: a real `podium serve` process's time to SERVING (on an empty state, restarted on
  it, with a backlog to fold, restarted with it folded) beside a bare aiokafka consumer's
  group join on the same broker (`bench/startup.py`).
- drivers: the issue's state (100,000 drivers in 20 groups, `group-0` holding 10,000 of them
  and the rest spread over the 19 others, 10 trips each over 3 months) seeded straight
  through the fold in streamed batches (seeding time and rate printed); then ingest (Podium's
  consumer loop, the code `podium serve` runs, driven in the bench process) against a bare
  aiokafka consumer reading the same topic; then a real `podium serve` process, configured
  through its environment only, answering GetDriverRanking for `group-0` at 16 in flight:
  at rest (no ingest, the answer cached: what serving those bytes costs), then while trips
  arrive at a tenth of the ingest rate, against a trivial unary method of the same server
  (the grpc.health.v1 check); freshness (produced to visible in the ranking while trips
  arrive at half the ingest rate), and beside it the same way to 100 watchers of
  WatchDriverRanking; the new query shapes at rest (GetDriverRank in the whole tenant's
  month beside the trivial ceiling, a page of 100 beside the whole list, a live month's board
  read cold beside a frozen one's: `bench/shapes.py`); the server's peak memory (VmHWM,
  read just before SIGTERM, after which it must exit 0); and the ranking load again with
  ingest and queries in two processes (`--role consumers`, `--role api`).
- boards: kept boards in this process, on made-up rows (`bench/boards.py`): a 10,000-driver
  board's memory, an update beside a read anew, 1,000 tenants x 5 groups under
  `PODIUM_BOARD_CACHE_MB`. The drivers section measures the ranking again while trips arrive
  at 700/s, and says whether each load under ingest keeps its target (p99 under 50 ms, at
  least 0.7 of the calls a second at rest).
- families: challenge and step ingest with live state, and the single-entity queries
  (tasks, path sessions, challenges) against the trivial ceiling, on their own server.
- abuse: 50 clients flooding the API with random keys while a second tenant queries and
  ingest runs, beside the same load without the flood (`bench/abuse.py`).
- replay: 200,000 trip events of 10,000 drivers on a fresh 4-partition topic, binary and JSON
  envelopes, folded from offset 0 into an empty database by a real `podium serve` (the rate
  from its folded-events counter, first folded event to last), beside a bare aiokafka
  consumer of the topic and, for JSON, beside the peer (Quix Streams, exactly-once with a
  per-trip dedupe key, and as a plain per-driver aggregate; `make bench` installs it into
  `.venv-peer`); the time to rebuild 1,000,000 trips from offset 0; on PostgreSQL two
  `--role consumers` processes against one, with their CPU and the database's
  (`bench/replay.py`).

- growth (only when named): the replay section's binary fold at the base size and again at 10x
  the drivers and the trip events, nothing else of the section (`bench.replay.bench_growth`).

- handover: a `--role consumers` process folding a stream of trips is killed (kill -9, then
  SIGTERM), a replacement started in its place as soon as it has exited; the seconds from the
  signal to the replacement's first folded event, min/median/max (`bench/handover.py`).

Flags:
- `--quick`: a tenth of the drivers (10,000, `group-0` 1,000), 3 trips each, fewer events,
  shorter load phases; runnable in a couple of minutes (replay: 50,000 trip events, a
  rebuild of 100,000).
- `--growth`: the drivers section at the base size and again at 10x the drivers (`group-0`
  stays the same), then each figure at both sizes with the factor between them and whether
  it is within 2x (with `--quick`: 10,000 -> 100,000 drivers); replay: the fold rate again at
  10x the drivers and the trip events, and whether it is within 1.5x.
- `--databases`: comma-separated, `sqlite` and/or `postgresql` (127.0.0.1:5432, db `test`).
- `--drivers N`: another base size.
- `--section`: one section only (default: all six).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
from podium.v1 import (
    challenges_pb2,
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
    paths_pb2,
    tasks_pb2,
)
from sqlalchemy import Engine

from bench.abuse import bench_abuse
from bench.boards import bench_boards
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
from bench.handover import bench_handover
from bench.harness import (
    TENANT,
    BackgroundLoad,
    analyze,
    apply_events,
    engine_for,
    percentile,
    probe_profile,
    produce_trips,
    seed_state,
    summary,
    trip_message,
)
from bench.ingest import Rate, bare_consumer_rate, bench_settings, podium_ingest_rate
from bench.queries import HEALTH, Load, load
from bench.replay import bench_growth, bench_replay, bench_scaling
from bench.server import PodiumServe, Stopped
from bench.shapes import WATCHERS, bench_shapes, watcher_latency
from bench.startup import bench_startup
from consumers.local_broker import LocalBroker
from consumers.topics import ensure_topics
from service.bootstrap import Storage, collect_garbage_less_often
from service.clock import SystemClock
from service.config import Settings
from tests.databases import empty_database

BIG_GROUP = "group-0"
PROBE_GROUP = "probe"
PROBE_TIMEOUT_SECONDS = 20.0
RANKING = "/podium.v1.DriverRankingService/GetDriverRanking"
RANKING_REQUEST = driver_ranking_pb2.GetDriverRankingRequest(
    type="RANKING_TYPE_SAFETY", group_label=BIG_GROUP
).SerializeToString()
"""The measured call: the big group's safety ranking."""
SCOPES = "ranking,challenges,tasks,paths"


def say(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class DriverFigures:
    drivers: int
    ingest: Rate
    bare: Rate
    trivial: Load
    ranking: Load
    split: Load
    freshness: list[float]
    server: Stopped


async def bench_drivers(
    kind: str, broker: LocalBroker, folder: Path, args: argparse.Namespace, drivers: int
) -> DriverFigures:
    say(
        f"\n== {kind}: {drivers:,} drivers in 20 groups ({BIG_GROUP}: {args.big_group:,}), "
        f"{args.trips_per_driver} trips each over 3 months =="
    )
    with empty_database(kind, folder, prefix="bench") as url:
        engine = engine_for(url)
        seed(engine, drivers, args)
        settings = bench_settings(broker.bootstrap_servers, url, f"b{uuid.uuid4().hex[:6]}.")
        await ensure_topics(settings)
        topic = settings.topic("trips")
        await produce_trips(broker.bootstrap_servers, topic, args.events, drivers)
        say(f"produced {args.events:,} trip events to {topic}")
        bare = await bare_consumer_rate(broker.bootstrap_servers, topic, args.events)
        ingest = await podium_ingest_rate(settings, engine, args.events)
        say(
            f"ingest: podium {ingest.per_second:,.0f} trip events/s, every batch (bare aiokafka "
            f"consumer {bare.per_second:,.0f}/s, ratio {ingest.per_second / bare.per_second:.2f})"
        )
        apply_events(engine, [probe_profile(drivers + 1)])
        analyze(engine)
        key = Storage(engine).create_key(TENANT, SCOPES, SystemClock().now())
        engine.dispose()
        trivial, ranking, delays, server = await bench_ranking(
            settings, key, ingest.per_second, drivers, args
        )
        split = await bench_split_roles(settings, key, ingest.per_second, drivers, args)
    return DriverFigures(drivers, ingest, bare, trivial, ranking, split, delays, server)


def seed(engine: Engine, drivers: int, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    seeded = seed_state(
        engine,
        drivers=drivers,
        trips_per_driver=args.trips_per_driver,
        big_group=args.big_group,
        now=datetime.now(UTC),
    )
    analyze(engine)
    seconds = time.perf_counter() - started
    say(
        f"seeded {seeded:,} events ({drivers:,} profiles, {seeded - drivers:,} trips) through "
        f"the fold in {seconds:,.1f} s ({seeded / seconds:,.0f} events/s)"
    )


async def bench_ranking(
    settings: Settings, key: str, ingest_rate: float, drivers: int, args: argparse.Namespace
) -> tuple[Load, Load, list[float], Stopped]:
    servers, topic = settings.kafka_bootstrap_servers or "", settings.topic("trips")
    async with PodiumServe(settings) as server:
        say(
            f"podium serve SERVING {server.ready_seconds:.1f} s after start "
            "(consumer group join included)"
        )
        cold = await load(server.address, RANKING, RANKING_REQUEST, key, concurrency=1, calls=1)
        say(
            f"GetDriverRanking {BIG_GROUP}, first call (answer built cold): "
            f"{percentile(cold.latencies, 0.5) * 1e3:.1f} ms, errors {cold.errors}"
        )
        at_rest = await load(server.address, RANKING, RANKING_REQUEST, key, seconds=args.seconds)
        say(
            at_rest.line(
                f"GetDriverRanking at rest (no ingest, answer cached: this answer's own "
                f"ceiling, {len(await ranking_answer(server.address, key)):,} bytes)"
            )
        )
        await bench_shapes(server.address, key, drivers, BIG_GROUP, RANKING_REQUEST, args.seconds)
        async with BackgroundLoad(servers, topic, ingest_rate / 10, drivers):
            trivial = await load(server.address, HEALTH, b"", "", seconds=args.seconds)
            ranking = await load(
                server.address, RANKING, RANKING_REQUEST, key, seconds=args.seconds
            )
        say(trivial.line("trivial unary (health check), 16 in flight"))
        say(
            ranking.line(
                f"GetDriverRanking, {BIG_GROUP} of {args.big_group:,} drivers, 16 in flight, "
                "ingest at 1/10 rate"
            )
        )
        say(
            f"  ratio to the trivial ceiling: {ranking.per_second / trivial.per_second:.2f}; "
            f"to the answer at rest: {ranking.per_second / at_rest.per_second:.2f}"
        )
        target(ranking, at_rest)
        async with BackgroundLoad(servers, topic, STEADY_TRIPS_PER_SECOND, drivers):
            steady = await load(server.address, RANKING, RANKING_REQUEST, key, seconds=args.seconds)
        say(
            steady.line(
                f"GetDriverRanking, {BIG_GROUP} of {args.big_group:,} drivers, 16 in flight, "
                f"trips arriving at {STEADY_TRIPS_PER_SECOND}/s"
            )
        )
        target(steady, at_rest)
        async with BackgroundLoad(servers, topic, ingest_rate / 2, drivers):
            delays = await freshness(server.address, key, servers, topic, drivers, args.probes)
            watched = await watcher_latency(
                server.address, key, servers, topic, f"d{drivers + 1}", PROBE_GROUP, args.probes
            )
        say(
            "freshness at 1/2 ingest rate, produced to visible in GetDriverRanking (polled "
            "every 5 ms): " + summary(delays)
        )
        say(
            f"produced to received by each of {WATCHERS} watchers of WatchDriverRanking, "
            f"same load: {summary(watched)}"
        )
        say(
            "  watchers / polling: p50 "
            f"{percentile(watched, 0.5) / percentile(delays, 0.5):.2f}x, "
            f"p99 {percentile(watched, 0.99) / percentile(delays, 0.99):.2f}x"
        )
    assert server.stopped is not None
    report_stopped(server.stopped)
    return trivial, ranking, delays, server.stopped


STEADY_TRIPS_PER_SECOND = 700
"""A busy tenant's steady feed."""
TARGET_P99_SECONDS = 0.05
TARGET_OF_AT_REST = 0.7


def target(under_ingest: Load, at_rest: Load) -> None:
    """Whether the ranking under ingest keeps its target: p99 under 50 ms and at least 0.7 of
    the calls a second at rest."""
    p99 = percentile(under_ingest.latencies, 0.99)
    ratio = under_ingest.per_second / at_rest.per_second
    met = p99 < TARGET_P99_SECONDS and ratio >= TARGET_OF_AT_REST
    say(
        f"  target (p99 < {TARGET_P99_SECONDS * 1e3:.0f} ms, >= {TARGET_OF_AT_REST} of at rest): "
        f"p99 {p99 * 1e3:.1f} ms, {ratio:.2f} of at rest: {'met' if met else 'MISSED'}"
    )


async def ranking_answer(address: str, key: str) -> bytes:
    """The serialized GetDriverRanking answer for the big group, as it goes over the wire."""
    async with grpc.aio.insecure_channel(address) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(RANKING)
        return await call(RANKING_REQUEST, metadata=(("x-api-key", key),))


async def bench_split_roles(
    settings: Settings, key: str, ingest_rate: float, drivers: int, args: argparse.Namespace
) -> Load:
    """The same load with ingest and queries in two processes (`--role consumers` and
    `--role api`), the other way to deploy Podium."""
    servers, topic = settings.kafka_bootstrap_servers or "", settings.topic("trips")
    async with (
        PodiumServe(settings, role="consumers") as consumers,
        PodiumServe(settings, role="api") as api,
        BackgroundLoad(servers, topic, ingest_rate / 10, drivers),
    ):
        trivial = await load(api.address, HEALTH, b"", "", seconds=args.seconds)
        ranking = await load(api.address, RANKING, RANKING_REQUEST, key, seconds=args.seconds)
    say(
        ranking.line(
            "GetDriverRanking, roles split (podium serve --role consumers / --role api), "
            "16 in flight, ingest at 1/10 rate"
        )
    )
    say(
        f"  ratio to the trivial ceiling of the api process "
        f"({trivial.per_second:,.0f} calls/s): {ranking.per_second / trivial.per_second:.2f}"
    )
    for role, process in (("consumers", consumers), ("api", api)):
        assert process.stopped is not None
        report_stopped(process.stopped, f"podium serve --role {role}")
    return ranking


def report_stopped(stopped: Stopped, name: str = "podium serve") -> None:
    say(f"peak memory of {name}: {stopped.peak_memory_mib:,.0f} MiB (VmHWM)")
    if stopped.exit_code is None:
        say(f"WARNING: {name} did not exit within a minute of SIGTERM and was killed")
    elif stopped.exit_code != 0:
        say(f"WARNING: {name} exited {stopped.exit_code} on SIGTERM (expected 0)")


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
                if delays[-1] >= PROBE_TIMEOUT_SECONDS:
                    say(f"WARNING: probe trip {n} not visible after {PROBE_TIMEOUT_SECONDS} s")
        finally:
            await producer.stop()
    return delays


@dataclass(frozen=True)
class Growth:
    """One figure at both sizes, with the same run's ceiling at both sizes when it has one."""

    name: str
    base: float
    grown: float
    higher_is_better: bool
    ceiling: tuple[str, float, float] | None = None

    @property
    def factor(self) -> float:
        """How many times worse the 10x state does (below 1: it did better)."""
        return self.base / self.grown if self.higher_is_better else self.grown / self.base

    def line(self) -> str:
        verdict = "within 2x" if self.factor <= 2 else "NOT within 2x"
        text = (
            f"{self.name}: {self.base:,.1f} -> {self.grown:,.1f}, "
            f"{self.factor:.2f}x worse, {verdict}"
        )
        if self.ceiling is not None:
            label, base, grown = self.ceiling
            text += (
                f" (ceiling, {label}: {base:,.1f} -> {grown:,.1f}; "
                f"ratio to it {self.base / base:.2f} -> {self.grown / grown:.2f})"
            )
        return text


def p99_ms(values: list[float]) -> float:
    return percentile(values, 0.99) * 1e3


def growth_report(kind: str, base: DriverFigures, grown: DriverFigures) -> None:
    """Each figure at both sizes; "within 2x" means the 10x state costs at most twice as much
    (half the rate, or twice the latency or memory). The ceilings are printed beside so that
    a shift in the machine's load between the two runs can be told from a cost of the state."""
    say(f"\n== {kind}: growth, {base.drivers:,} -> {grown.drivers:,} drivers ==")
    rows = (
        Growth(
            "ingest, trip events/s",
            base.ingest.per_second,
            grown.ingest.per_second,
            True,
            ("bare consumer", base.bare.per_second, grown.bare.per_second),
        ),
        Growth(
            "GetDriverRanking calls/s",
            base.ranking.per_second,
            grown.ranking.per_second,
            True,
            ("health check", base.trivial.per_second, grown.trivial.per_second),
        ),
        Growth(
            "GetDriverRanking calls/s, roles split",
            base.split.per_second,
            grown.split.per_second,
            True,
        ),
        Growth(
            "GetDriverRanking p99 ms",
            p99_ms(base.ranking.latencies),
            p99_ms(grown.ranking.latencies),
            False,
            ("health check", p99_ms(base.trivial.latencies), p99_ms(grown.trivial.latencies)),
        ),
        Growth("freshness p99 ms", p99_ms(base.freshness), p99_ms(grown.freshness), False),
        Growth(
            "peak memory of podium serve MiB",
            base.server.peak_memory_mib,
            grown.server.peak_memory_mib,
            False,
        ),
    )
    for row in rows:
        say(row.line())


async def bench_families(
    kind: str, broker: LocalBroker, folder: Path, args: argparse.Namespace
) -> None:
    challenges, registered = (10, 500) if args.quick else (CHALLENGES, REGISTERED)
    say(
        f"\n== {kind}: {challenges} live challenges of {registered:,} registered users, "
        f"{SESSIONS} path sessions of {STEPS} steps with {LEARNERS:,} learners, 1,000 tasks =="
    )
    with empty_database(kind, folder, prefix="bench") as url:
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
        key = Storage(engine).create_key(TENANT, SCOPES, SystemClock().now())
        engine.dispose()
        await bench_small_answers(settings, key, args)


async def bench_small_answers(settings: Settings, key: str, args: argparse.Namespace) -> None:
    calls = (
        ("GetTask", "/podium.v1.TaskService/GetTask", tasks_pb2.GetTaskRequest(task_id="task7")),
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
        (
            "GetChallengeRanking, a page of 100",
            "/podium.v1.ChallengeService/GetChallengeRanking",
            challenges_pb2.GetChallengeRankingRequest(challenge_id="c1", page_size=100),
        ),
        (
            "GetChallengeProgress, a page of 100",
            "/podium.v1.ChallengeService/GetChallengeProgress",
            challenges_pb2.GetChallengeProgressRequest(challenge_id="c1", page_size=100),
        ),
    )
    async with PodiumServe(settings) as server:
        trivial = await load(server.address, HEALTH, b"", "", seconds=args.seconds)
        say(trivial.line("trivial unary (health check), 16 in flight"))
        for name, method, request in calls:
            measured = await load(
                server.address, method, request.SerializeToString(), key, seconds=args.seconds
            )
            say(
                measured.line(f"{name}, 16 in flight")
                + f", ratio to trivial {measured.per_second / trivial.per_second:.2f}"
            )
    assert server.stopped is not None
    report_stopped(server.stopped)


async def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--quick", action="store_true", help="sizes divided by 10")
    parser.add_argument("--growth", action="store_true", help="drivers again at 10x the state")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--drivers", type=int)
    parser.add_argument(
        "--section",
        choices=(
            "all",
            "startup",
            "drivers",
            "boards",
            "families",
            "abuse",
            "replay",
            "scaling",
            "growth",
            "handover",
        ),
        default="all",
    )
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    args.drivers = args.drivers or 100_000 // scale
    args.big_group = min(args.drivers, 10_000 // scale)
    args.trips_per_driver = 3 if args.quick else 10
    args.events = 50_000 if args.quick else 200_000
    args.seconds = 3.0 if args.quick else 8.0
    args.probes = 10 if args.quick else 30
    collect_garbage_less_often()  # the consumer loop runs here as it does in `podium serve`
    if args.section in ("all", "boards"):
        await bench_boards()
    if args.section == "boards":
        return
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as folder:
        for kind in args.databases.split(","):
            if args.section in ("all", "startup"):
                await bench_startup(kind, broker, Path(folder), args)
            if args.section in ("all", "drivers"):
                base = await bench_drivers(kind, broker, Path(folder), args, args.drivers)
                if args.growth:
                    grown = await bench_drivers(kind, broker, Path(folder), args, 10 * args.drivers)
                    growth_report(kind, base, grown)
            if args.section in ("all", "families"):
                await bench_families(kind, broker, Path(folder), args)
            if args.section in ("all", "abuse"):
                await bench_abuse(kind, broker.bootstrap_servers, Path(folder), args)
            if args.section in ("all", "replay"):
                await bench_replay(kind, broker, Path(folder), args)
            if args.section == "growth":
                await bench_growth(kind, broker, Path(folder), args)
            if args.section == "scaling" and kind == "postgresql":
                await bench_scaling(kind, broker, Path(folder), args)
            if args.section in ("all", "handover"):
                await bench_handover(kind, broker, Path(folder), args)


if __name__ == "__main__":
    asyncio.run(main())
