"""Start-up: how long a real `podium serve` process takes to report SERVING, beside how long a
bare aiokafka consumer takes to join a consumer group on the same broker in the same run (the
part of the wait no code of Podium shortens: the local broker holds a join open for half the
session timeout, 3 s at the default 6 s) and how long a Python process takes to import Podium."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench.harness import produce_trips
from bench.ingest import bench_settings
from bench.server import PodiumServe
from consumers.handover import member_options
from consumers.local_broker import LocalBroker
from consumers.topics import ensure_topics
from service.app.records import FAMILIES
from service.config import Settings
from tests.databases import empty_database


def say(text: str) -> None:
    print(text, flush=True)


async def join_seconds(servers: str, topics: list[str]) -> float:
    """From a bare consumer's start to its first assignment, in a group of its own."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=servers,
        group_id=f"join-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        **member_options(Settings()),  # Podium's session, which sets the broker's join delay
    )
    started = time.perf_counter()
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def import_seconds(tries: int = 3) -> float:
    """The fastest of a few `python -c "import service.cli"`: what a process pays before
    Podium's own start-up begins."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", "import service.cli")
        await process.wait()
        best = min(best, time.perf_counter() - started)
    return best


async def bench_startup(
    kind: str, broker: LocalBroker, folder: Path, args: argparse.Namespace
) -> None:
    """SERVING on an empty state, after a restart on it, with a backlog to fold, and after a
    restart with that backlog folded; each beside the bare join and the imports."""
    events = args.events // 4
    say(f"\n== {kind}: start-up, to SERVING on grpc.health.v1 ==")
    with empty_database(kind, folder, prefix="bench") as url:
        settings = bench_settings(broker.bootstrap_servers, url, f"s{uuid.uuid4().hex[:6]}.")
        await ensure_topics(settings)
        join = await join_seconds(broker.bootstrap_servers, [settings.topic(f) for f in FAMILIES])
        imports = await import_seconds()
        # Each start follows the previous stop at once, as an operator's restart does: a
        # member that did not leave its group would make the next join wait for its session.
        timings = []
        async with PodiumServe(settings) as server:
            timings.append(("empty state", server.ready_seconds))
        async with PodiumServe(settings) as server:
            timings.append(("restarted on that state", server.ready_seconds))
        await produce_trips(broker.bootstrap_servers, settings.topic("trips"), events, 1_000)
        async with PodiumServe(settings) as server:
            timings.append((f"restarted with {events:,} trip events to fold", server.ready_seconds))
        async with PodiumServe(settings) as server:
            timings.append(("restarted with those folded", server.ready_seconds))
    say(
        f"a bare aiokafka consumer joins a group in {join:.1f} s; "
        f"a Python process imports Podium in {imports:.1f} s"
    )
    for label, seconds in timings:
        say(
            f"podium serve SERVING {seconds:.1f} s after start, {label}: "
            f"{seconds - join:+.1f} s beside the bare join, "
            f"{seconds - join - imports:+.1f} s beside the join and the imports"
        )
