"""The query shapes beyond the seeds, against a running `podium serve` holding the drivers
section's state: one driver's place in the whole tenant's month, a page beside the whole list,
a live month's board beside a frozen one's, and the way from a produced event to watchers.
Each figure is printed beside a ceiling measured in the same run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from aiokafka import AIOKafkaProducer
from podium.v1 import common_pb2, driver_ranking_pb2, driver_ranking_pb2_grpc

from bench.harness import GROUPS, percentile, summary, trip_message
from bench.queries import HEALTH, Load, load

SAFETY = common_pb2.RANKING_TYPE_SAFETY
SERVICE = "/podium.v1.DriverRankingService/"
WATCHERS = 100
WATCH_SPACING_SECONDS = 1.5
"""Between two probe trips: a watcher gets at most a message a second, and the figure is the
way of one event, not that spacing."""
DISTINCT_DRIVERS = 500
"""GetDriverRank asks for these many drivers in turn, spread over the whole month."""


def say(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class ShapeFigures:
    rank: Load
    trivial: Load
    page: Load
    whole: Load


async def bench_shapes(
    address: str, key: str, drivers: int, big_group: str, ranking_request: bytes, seconds: float
) -> ShapeFigures:
    """At rest (no ingest): every answer comes from a board already read, as under a steady
    state; the cold reads are printed apart."""
    ranks = [
        driver_ranking_pb2.GetDriverRankRequest(
            type=SAFETY, user_id=f"d{n * 7919 % drivers}", neighbors=5
        ).SerializeToString()
        for n in range(DISTINCT_DRIVERS)
    ]
    rank_method = SERVICE + "GetDriverRank"
    cold = await load(address, rank_method, ranks[0], key, concurrency=1, calls=1)
    say(
        f"GetDriverRank in the whole tenant's month of {drivers:,} drivers, first call (its "
        f"board read cold): {percentile(cold.latencies, 0.5) * 1e3:.0f} ms, errors {cold.errors}"
    )
    trivial = await load(address, HEALTH, b"", "", seconds=seconds)
    rank = await load(
        address, rank_method, ranks[0], key, seconds=seconds, more_requests=tuple(ranks[1:])
    )
    say(trivial.line("trivial unary (health check), 16 in flight"))
    say(
        rank.line(
            f"GetDriverRank, {DISTINCT_DRIVERS} drivers in turn of a {drivers:,}-driver month, "
            "5 neighbours, 16 in flight"
        )
    )
    say(
        f"  ratio to the trivial ceiling: calls/s {rank.per_second / trivial.per_second:.2f}, "
        f"p99 {percentile(rank.latencies, 0.99) / percentile(trivial.latencies, 0.99):.2f}x"
    )
    trivial_one = await load(address, HEALTH, b"", "", concurrency=1, seconds=seconds)
    rank_one = await load(
        address,
        rank_method,
        ranks[0],
        key,
        concurrency=1,
        seconds=seconds,
        more_requests=tuple(ranks[1:]),
    )
    say(trivial_one.line("trivial unary (health check), one at a time"))
    say(rank_one.line("GetDriverRank, one at a time"))
    say(
        "  p99 ratio to the trivial ceiling: "
        f"{percentile(rank_one.latencies, 0.99) / percentile(trivial_one.latencies, 0.99):.2f}x"
    )
    page_request = driver_ranking_pb2.ListMonthRankingRequest(
        type=SAFETY, group_label=big_group, page_size=100
    ).SerializeToString()
    page = await load(address, SERVICE + "ListMonthRanking", page_request, key, seconds=seconds)
    whole = await load(address, SERVICE + "GetDriverRanking", ranking_request, key, seconds=seconds)
    say(page.line(f"ListMonthRanking, a page of 100 of {big_group}, 16 in flight"))
    say(whole.line(f"GetDriverRanking, the whole of {big_group} (two months), 16 in flight"))
    say(
        f"  page / whole list: calls/s {page.per_second / whole.per_second:.2f}x, "
        f"p99 {percentile(page.latencies, 0.99) / percentile(whole.latencies, 0.99):.2f}x"
    )
    await live_and_frozen_boards(address, key)
    return ShapeFigures(rank, trivial, page, whole)


async def live_and_frozen_boards(address: str, key: str) -> None:
    """A board read cold, of this month (today's members) and of the previous, frozen month
    (its members as of its freeze), one group after the other: what reading the membership
    as of a moment costs beside reading today's."""
    live: list[float] = []
    frozen: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
        metadata = (("x-api-key", key),)
        current = await stub.ListMonthRanking(
            driver_ranking_pb2.ListMonthRankingRequest(type=SAFETY, group_label="group-1"),
            metadata=metadata,
        )
        previous = common_pb2.YearMonth(
            year=current.year - (current.monthNumber == 1),
            month_number=(current.monthNumber - 2) % 12 + 1,
        )
        for group in range(2, GROUPS):
            for month, into in ((None, live), (previous, frozen)):
                request = driver_ranking_pb2.ListMonthRankingRequest(
                    type=SAFETY, group_label=f"group-{group}", page_size=1, month=month
                )
                started = time.perf_counter()
                await stub.ListMonthRanking(request, metadata=metadata)
                into.append(time.perf_counter() - started)
    say(f"a group's board read cold, this month (live): {summary(live)}")
    say(f"the same groups' previous month (frozen, members as of its freeze): {summary(frozen)}")
    say(
        "  frozen / live: p50 "
        f"{percentile(frozen, 0.5) / percentile(live, 0.5):.2f}x, "
        f"p99 {percentile(frozen, 0.99) / percentile(live, 0.99):.2f}x"
    )


async def watcher_latency(
    address: str, key: str, servers: str, topic: str, probe_driver: str, group: str, probes: int
) -> list[float]:
    """`WATCHERS` watchers of the probe driver's group (the probe driver alone in it); for
    each probe trip produced, the time until each watcher has the message showing it. Run
    after the freshness probes: their trips rank the probe driver, whom the top then shows."""
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
        request = driver_ranking_pb2.WatchDriverRankingRequest(
            type=SAFETY, group_label=group, top=1
        )
        streams = [
            stub.WatchDriverRanking(request, metadata=(("x-api-key", key),))
            for _ in range(WATCHERS)
        ]
        queues: list[asyncio.Queue[tuple[float, int]]] = [asyncio.Queue() for _ in streams]
        readers = [asyncio.ensure_future(_read(s, q)) for s, q in zip(streams, queues, strict=True)]
        try:
            firsts = [await _next(q, at_least(0)) for q in queues]
            trips = max(count for _, count in firsts)
            if trips == 0:
                say("WARNING: the probe driver is not ranked; the watchers will see nothing")
            for n in range(probes):
                await asyncio.sleep(WATCH_SPACING_SECONDS)
                trips += 1
                _, value = trip_message(30_000_000 + n, 1, driver=probe_driver)
                started = time.perf_counter()
                await producer.send_and_wait(topic, value, key=probe_driver.encode())
                try:
                    for q in queues:
                        received, _ = await _next(q, at_least(trips))
                        latencies.append(received - started)
                except TimeoutError:
                    say(f"WARNING: probe trip {n} not seen by every watcher within 60 s")
                    return latencies
        finally:
            for stream in streams:
                stream.cancel()
            for reader in readers:
                reader.cancel()
            await producer.stop()
    return latencies


async def _read(stream: object, into: asyncio.Queue[tuple[float, int]]) -> None:
    try:
        async for message in stream:  # type: ignore[attr-defined]
            top = message.driverRanked
            into.put_nowait((time.perf_counter(), top[0].tripNumber if top else 0))
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            say(f"WARNING: a watcher's stream ended: {error.code().name} {error.details()}")


def at_least(trips: int) -> Callable[[int], bool]:
    return lambda count: count >= trips


async def _next(
    queue: asyncio.Queue[tuple[float, int]], wanted: Callable[[int], bool]
) -> tuple[float, int]:
    """The first message whose trip count is `wanted` (older ones skipped): when it
    arrived, and the count."""
    while True:
        received, trips = await asyncio.wait_for(queue.get(), 60)
        if wanted(trips):
            return received, trips
