"""Abuse: clients flooding the API with random keys while a second tenant queries and ingest
runs, against the same load without the flood (before and after it) in the same run.

    python -m bench --section abuse [--quick] [--databases sqlite]

Prints the server's memory before, after and at its peak, the second tenant's p99 beside its
quiet figure (target: within 1.5x), and the ingest rate beside its quiet figure (target: at
least 0.8x). The flood is `python -m bench.abuse ADDRESS SECONDS CLIENTS`: CLIENTS channels,
each sending GetTask with a new random well-formed key as soon as the last call returned
(every call a key the cache has never seen: a database look-up)."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
from podium.v1 import tasks_pb2

from bench.families import seed_tasks
from bench.harness import (
    analyze,
    engine_for,
    percentile,
    produce_quickly,
    trip_message,
)
from bench.ingest import bench_settings
from bench.process import cpu_seconds, folded, memory_mib
from bench.queries import Load, load
from bench.server import PodiumServe, free_port
from consumers.topics import ensure_topics
from service.bootstrap import Storage
from service.clock import SystemClock
from service.config import Settings
from tests.databases import empty_database

SECOND_TENANT = "second"
GET_TASK = "/podium.v1.TaskService/GetTask"
TASKS = 1_000
SECOND_TENANT_RATE = 200.0
"""The second tenant's calls a second (an open loop over its 1,000 tasks, 8 in flight at most
when the server keeps up): below the default per-key rate, so only the flood can hurt it."""
CLIENTS = 50
P99_TARGET, INGEST_TARGET = 1.5, 0.8


def say(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class Phase:
    name: str
    second: Load
    ingest_per_second: float
    flood: dict[str, int]
    memory: list[float]
    """The server's resident MiB every 5 s of the phase."""
    cpu: float
    """The server's CPU time a second (1.0: one core all the time)."""


async def bench_abuse(
    kind: str, broker_servers: str, folder: Path, args: argparse.Namespace
) -> None:
    quiet, flood = (5.0, 10.0) if args.quick else (10.0, 30.0)
    backlog = 500_000 if args.quick else 1_200_000
    say(
        f"\n== {kind}: abuse: {CLIENTS} clients with random keys for {flood:.0f} s, while "
        f"tenant {SECOND_TENANT!r} queries at {SECOND_TENANT_RATE:.0f} calls/s and ingest "
        f"folds a backlog of {backlog:,} trip events; quiet phases of {quiet:.0f} s before "
        "and after =="
    )
    with empty_database(kind, folder, prefix="bench") as url:
        engine = engine_for(url)
        seed_tasks(engine, datetime.now(UTC), TASKS, tenant=SECOND_TENANT)
        analyze(engine)
        key = Storage(engine).create_key(SECOND_TENANT, "tasks", SystemClock().now())
        engine.dispose()
        settings = bench_settings(broker_servers, url, f"a{uuid.uuid4().hex[:6]}.")
        metrics = f"127.0.0.1:{free_port()}"
        # The limits as an operator gets them (the other sections lift the per-key rate).
        defaults = Settings()
        settings = replace(
            settings,
            metrics_address=metrics,
            rate_limit_per_key=defaults.rate_limit_per_key,
            max_concurrent_calls=defaults.max_concurrent_calls,
        )
        await ensure_topics(settings)
        messages = [trip_message(n, 10_000) for n in range(backlog)]  # before the server runs
        async with PodiumServe(settings) as server:
            topic = settings.topic("trips")
            producing = time.perf_counter()
            await asyncio.to_thread(produce_quickly, broker_servers, topic, messages)
            messages.clear()  # a million objects this process's collector need not walk
            say(
                f"produced {backlog:,} trip events in {time.perf_counter() - producing:.1f} s "
                f"(librdkafka), {folded(metrics, settings):,} folded meanwhile"
            )
            before_memory = memory_mib(server.pid)
            phases = [
                await phase(
                    "quiet, before", server.address, key, metrics, settings, quiet, server.pid
                )
            ]
            phases.append(
                await phase(
                    "flood", server.address, key, metrics, settings, flood, server.pid, CLIENTS
                )
            )
            after_memory = memory_mib(server.pid)
            phases.append(
                await phase(
                    "quiet, after", server.address, key, metrics, settings, quiet, server.pid
                )
            )
            at_end = memory_mib(server.pid)
            left = backlog - folded(metrics, settings)
        assert server.stopped is not None
    report(phases, (before_memory, after_memory, at_end), server.stopped.peak_memory_mib, left)


async def phase(
    name: str,
    address: str,
    key: str,
    metrics: str,
    settings: Settings,
    seconds: float,
    pid: int | None,
    clients: int = 0,
) -> Phase:
    requests = [
        tasks_pb2.GetTaskRequest(task_id=f"task{t}").SerializeToString() for t in range(TASKS)
    ]
    flood = None
    if clients:
        flood = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.abuse", address, str(seconds), str(clients),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(1.0)  # the flood under way before the measurement starts
    start_count, started = folded(metrics, settings), time.perf_counter()
    cpu_before = cpu_seconds(pid)
    memory: list[float] = []
    sampling = asyncio.ensure_future(sample_memory(pid, memory))
    second = await load(
        address, GET_TASK, requests[0], key, concurrency=8, seconds=seconds - 2 if clients else
        seconds, rate=SECOND_TENANT_RATE, more_requests=tuple(requests[1:]),
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    ingest = (folded(metrics, settings) - start_count) / elapsed
    cpu = (cpu_seconds(pid) - cpu_before) / elapsed
    sampling.cancel()
    await asyncio.gather(sampling, return_exceptions=True)
    codes: dict[str, int] = {}
    if flood is not None:
        output, _ = await flood.communicate()
        codes = json.loads(output)
    return Phase(name, second, ingest, codes, memory, cpu)


async def sample_memory(pid: int | None, samples: list[float]) -> None:
    while True:
        samples.append(memory_mib(pid))
        await asyncio.sleep(5)


def report(phases: list[Phase], memory: tuple[float, float, float], peak: float, left: int) -> None:
    """`memory`: resident MiB before the flood, after it, and after the last quiet phase."""
    for p in phases:
        say(
            p.second.line(f"{p.name}: tenant {SECOND_TENANT!r} GetTask")
            + f"; ingest {p.ingest_per_second:,.0f} trip events/s"
        )
        say(
            f"  server CPU {p.cpu:.2f} cores; memory every 5 s (MiB): "
            + ", ".join(f"{m:,.0f}" for m in p.memory)
        )
        if p.flood:
            total = sum(p.flood.values())
            shown = ", ".join(f"{code} {count:,}" for code, count in sorted(p.flood.items()))
            say(f"  the flood: {total:,} calls ({shown})")
    quiet = [p for p in phases if p.name.startswith("quiet")]
    flood = next(p for p in phases if p.name == "flood")
    quiet_p99 = sum(percentile(p.second.latencies, 0.99) for p in quiet) / len(quiet)
    flood_p99 = percentile(flood.second.latencies, 0.99)
    quiet_ingest = sum(p.ingest_per_second for p in quiet) / len(quiet)
    p99_ratio, ingest_ratio = flood_p99 / quiet_p99, flood.ingest_per_second / quiet_ingest
    say(
        f"tenant {SECOND_TENANT!r} p99 under the flood {flood_p99 * 1e3:.1f} ms, quiet "
        f"{quiet_p99 * 1e3:.1f} ms (mean of before and after): {p99_ratio:.2f}x "
        f"({'within' if p99_ratio <= P99_TARGET else 'NOT within'} {P99_TARGET}x)"
    )
    say(
        f"ingest under the flood {flood.ingest_per_second:,.0f} trip events/s, quiet "
        f"{quiet_ingest:,.0f}/s: {ingest_ratio:.2f}x "
        f"({'at least' if ingest_ratio >= INGEST_TARGET else 'NOT at least'} {INGEST_TARGET}x)"
    )
    before, after, at_end = memory
    say(
        f"memory of podium serve (VmRSS): {before:,.0f} MiB before the flood, {after:,.0f} MiB "
        f"after it, {at_end:,.0f} MiB after the last quiet phase; peak {peak:,.0f} MiB (VmHWM)"
    )
    if left <= 0:
        say("WARNING: the ingest backlog ran out during the phases: the ingest rates are low")


async def flood(address: str, seconds: float, clients: int) -> dict[str, int]:
    """`clients` channels sending GetTask with random well-formed keys, closed loop."""
    codes: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds
    request = tasks_pb2.GetTaskRequest(task_id="task1").SerializeToString()

    async def client() -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(GET_TASK)
            while time.perf_counter() < deadline:
                key = f"pod_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
                try:
                    await call(request, metadata=(("x-api-key", key),), timeout=10)
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as error:
                    codes[error.code().name] += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return dict(codes)


def main() -> None:
    address, seconds, clients = sys.argv[1:4]
    print(json.dumps(asyncio.run(flood(address, float(seconds), int(clients)))))


if __name__ == "__main__":
    main()
