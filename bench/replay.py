"""Replay: what an operator waits for when state is rebuilt from the topics. Trip events of
10,000 drivers (ended over the current and the last month, with scores) are produced with
librdkafka to a fresh 4-partition trips topic; one real `podium serve` (environment only, an
empty database, its own consumer group) folds them from offset 0, timed by its folded-events
counter from the first folded event to the last (the group join left out), beside a bare
aiokafka consumer of the same topic (the ceiling) and, for the JSON envelopes, beside the
peer, Quix Streams, folding the same records (`bench/peer.py`). Then the time to rebuild a
million trips, two `--role consumers` processes against one (PostgreSQL), and with
`--growth` the fold rate at 10x the drivers and the events."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf import json_format
from podium.events.v1 import trips_pb2

from bench.fold import Fold, peer_fold, serve_fold
from bench.harness import produce_quickly, trip_envelope
from bench.ingest import bare_consumer_rate, bench_settings
from consumers.decode import JSON
from consumers.local_broker import LocalBroker
from consumers.topics import ensure_topics
from service.config import Settings
from service.domain.ranking import Month

DRIVERS = 10_000
PARTITIONS = 4
GROWTH = 10
GROWTH_TARGET = 1.5
HUNDRED_MILLION = 100_000_000
PEERS = (
    ("exactly-once", "dedupe", "exactly-once with a per-trip dedupe key"),
    ("at-least-once", "dedupe", "at-least-once with the same dedupe state"),
    ("at-least-once", "aggregate", "plain per-driver aggregate, at-least-once"),
)
"""The peer's guarantee, its fold (`bench/peer.py`) and how the report names it."""


def say(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class Encoding:
    name: str
    headers: tuple[tuple[str, bytes], ...]

    def encode(self, envelope: trips_pb2.TripEvent) -> bytes:
        """As producers send it: the binary envelope, or `json_format`'s proto3 JSON
        (camelCase names, RFC 3339 timestamps) as `podium produce` writes it."""
        if self.headers:
            return json_format.MessageToJson(envelope).encode()
        return envelope.SerializeToString()


BINARY = Encoding("binary", ())
JSON_ENVELOPES = Encoding("JSON", (("content-type", JSON),))


def replay_trips(count: int, drivers: int, now: datetime) -> Iterator[trips_pb2.TripEvent]:
    """`count` trips of `drivers` drivers: every other one ended in this month so far, the
    others in the last month, each spread over its span."""
    this_month = Month.of(now)
    spans = (
        (this_month.starts_at, now - this_month.starts_at),
        (this_month.previous().starts_at, this_month.starts_at - this_month.previous().starts_at),
    )
    for n in range(count):
        start, span = spans[n % 2]
        yield trip_envelope(n, drivers, ended=start + span * ((n * 7919) % 1000 / 1000))


async def new_topic(servers: str) -> Settings:
    """Settings naming a new, empty trips topic of PARTITIONS partitions."""
    settings = bench_settings(servers, "sqlite://", f"r{uuid.uuid4().hex[:6]}.", PARTITIONS)
    await ensure_topics(settings)
    return settings


def trip_records(
    count: int, drivers: int, now: datetime, encoding: Encoding, tenant: str | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """The replayed trips as Kafka keys and values, built as they are asked for; of `tenant`
    rather than the bench's usual one if named."""
    for envelope in replay_trips(count, drivers, now):
        if tenant is not None:
            envelope.tenant_id = tenant
        yield envelope.trip_completed.user_id.encode(), encoding.encode(envelope)


async def produce(
    settings: Settings,
    records: Iterable[tuple[bytes, bytes]],
    what: str,
    encoding: Encoding,
    partitioner: str = "consistent_random",
) -> None:
    """Sends the records to the settings' trips topic with librdkafka (its `partitioner`);
    `what` they are is printed with the time it took."""
    servers, topic = settings.kafka_bootstrap_servers or "", settings.topic("trips")
    started = time.perf_counter()
    await asyncio.to_thread(produce_quickly, servers, topic, records, encoding.headers, partitioner)
    say(f"produced {what} to {topic} in {time.perf_counter() - started:.1f} s (librdkafka)")


async def produced(
    servers: str, count: int, drivers: int, now: datetime, encoding: Encoding
) -> Settings:
    """A new trips topic holding the trips; the settings name it."""
    settings = await new_topic(servers)
    what = f"{count:,} trip events ({encoding.name}, {drivers:,} drivers, built as they went)"
    await produce(settings, trip_records(count, drivers, now, encoding), what, encoding)
    return settings


async def beside_bare(
    kind: str, folder: Path, settings: Settings, count: int, encoding: Encoding
) -> Fold:
    """One `podium serve` folding the topic, beside the bare consumer's rate on it."""
    bare = await bare_consumer_rate(
        settings.kafka_bootstrap_servers or "", settings.topic("trips"), count
    )
    fold = await serve_fold(settings, kind, folder, count)
    say(
        f"podium serve folds {fold.per_second:,.0f} trip events/s ({encoding.name}) — bare "
        f"consumer {bare.per_second:,.0f}/s, ratio {fold.per_second / bare.per_second:.3f}; "
        f"CPU per event {fold.cpu_per_event:,.1f} us{database_cpu(kind, fold)}; peak memory "
        f"{fold.peak_memory_mib:,.0f} MiB (VmHWM)"
    )
    if fold.whole is not None:
        say(
            f"  every batch (from the first records fetched, {fold.whole.first_to_last:,.1f} s): "
            f"{fold.whole.per_second:,.0f} trip events/s, CPU per event "
            f"{fold.whole.cpu_per_event:,.1f} us{database_cpu(kind, fold.whole)}"
        )
    return fold


def database_cpu(kind: str, fold: Fold) -> str:
    if kind == "sqlite":
        return " (SQLite in its process)"
    return f", PostgreSQL's {fold.database_cpu_per_event:,.1f} us (all its backends)"


async def beside_peer(settings: Settings, count: int, podium: Fold) -> None:
    """The peer folding the same JSON records, each way, beside Podium's JSON rate."""
    servers, topic = settings.kafka_bootstrap_servers or "", settings.topic("trips")
    for guarantee, fold, label in PEERS:
        peer = await peer_fold(servers, topic, count, guarantee, fold)
        name = f"peer, Quix Streams {peer.version} {label}".replace("  ", " ")
        if peer.rate is None:
            say(f"{name}: FAILED against the local broker (Tansu): {peer.error}")
            continue
        peer_cpu = peer.cpu_seconds / peer.rate.records * 1e6
        cpu_ratio = peer_cpu / podium.cpu_per_event if podium.cpu_per_event else float("nan")
        say(
            f"{name}: {peer.rate.per_second:,.0f} trip events/s (same JSON records, offsets "
            f"committed for {peer.committed:,} of {count:,}); podium serve / peer: "
            f"{podium.per_second / peer.rate.per_second:.2f}; CPU per event {peer_cpu:,.1f} us, "
            f"peer / podium serve's process {cpu_ratio:.2f}"
        )


async def rebuild(kind: str, folder: Path, servers: str, count: int, now: datetime) -> Fold:
    settings = await produced(servers, count, DRIVERS, now, BINARY)
    fold = await serve_fold(settings, kind, folder, count)
    hours = HUNDRED_MILLION / fold.per_second / 3600
    say(
        f"rebuild of {count:,} trip events (binary) from offset 0 into an empty database by one "
        f"podium serve: {fold.start_to_done:,.1f} s from process start to all folded, "
        f"{fold.first_to_last:,.1f} s from the first folded to the last "
        f"({fold.per_second:,.0f}/s: 100 million trips in {hours:.1f} h)"
    )
    return fold


SCALING_PARTITIONERS = (
    ("murmur2_random", "murmur2", "keyed by Kafka's default partitioner (murmur2)"),
    ("consistent_random", "murmur2", "keyed by librdkafka's default partitioner (crc32)"),
    (
        "consistent_random",
        "crc32",
        "keyed by librdkafka's default partitioner (crc32), PODIUM_LOCK_PARTITIONER=crc32",
    ),
)
"""How the trips of the scaling-out runs are partitioned, and the partitioner Podium's lock
buckets follow (`service.app.shards`): the second shows what producers partitioning otherwise
than Podium is told cost."""


async def scaling_out(kind: str, folder: Path, servers: str, count: int, now: datetime) -> None:
    """Two `--role consumers` processes in one group against one, on the same records,
    produced once the group has formed (otherwise the second process's join, and the
    rebalance it brings, would fall within the measurement); for each partitioning."""
    # Built before the clock starts; of a tenant of their own: a tenant's lock is the
    # database's, so another run on the same server (another schema) never shares it.
    tenant = f"scaling-{uuid.uuid4().hex[:8]}"
    records = list(trip_records(count, DRIVERS, now, BINARY, tenant))
    for partitioner, locking, keyed in SCALING_PARTITIONERS:
        what = f"{count:,} trip events (binary, built beforehand, {keyed}), the group formed,"
        folds = []
        for processes in (1, 2):
            settings = replace(await new_topic(servers), lock_partitioner=locking)
            fill = functools.partial(produce, settings, records, what, BINARY, partitioner)
            folds.append(
                await serve_fold(settings, kind, folder, count, processes, "consumers", fill, True)
            )
        one, two = folds
        say(
            f"scaling out, {keyed}: two podium serve --role consumers in one group fold "
            f"{two.per_second:,.0f}/s, one {one.per_second:,.0f}/s: "
            f"{two.per_second / one.per_second:.2f}x, on a machine of {os.cpu_count()} cores "
            "(the trips produced once the group had formed)"
        )
        for label, fold in (("one process", one), ("two processes", two)):
            each = " + ".join(f"{t:,.1f}" for t in fold.cpu.processes.values())
            say(
                f"  {label}: CPU seconds while folding ({fold.first_to_last:,.1f} s): podium "
                f"{each}, PostgreSQL {fold.cpu.database:,.1f}; "
                f"{fold.cores_busy:.2f} cores busy"
            )
            say(f"    its PostgreSQL backends: {fold.backends}")


async def bench_scaling(
    kind: str, broker: LocalBroker, folder: Path, args: argparse.Namespace
) -> None:
    """The scaling-out runs alone (`--section scaling`, PostgreSQL)."""
    count = 50_000 if args.quick else 200_000
    say(f"\n== {kind}: scaling out: {count:,} trip events of {DRIVERS:,} drivers ==")
    say(machine_load())
    await scaling_out(kind, folder, broker.bootstrap_servers, count, datetime.now(UTC))
    say(machine_load())


async def growth(
    kind: str, folder: Path, servers: str, count: int, now: datetime, base: Fold
) -> None:
    """The binary fold again at GROWTH times the drivers and the trip events, against the
    base run (the issue's target: within GROWTH_TARGET)."""
    drivers, events = DRIVERS * GROWTH, count * GROWTH
    settings = await produced(servers, events, drivers, now, BINARY)
    grown = await beside_bare(kind, folder, settings, events, BINARY)
    say(
        f"growth x{GROWTH} ({drivers:,} drivers, {events:,} trip events), from the first "
        f"folded event: {growth_line(kind, base, grown)}"
    )
    if base.whole is not None and grown.whole is not None:
        say(
            f"growth x{GROWTH}, every batch (from the first records fetched): "
            f"{growth_line(kind, base.whole, grown.whole)}"
        )


def growth_line(kind: str, base: Fold, grown: Fold) -> str:
    """The rates and CPU per event at both sizes, and whether the rate is within the target."""
    factor = base.per_second / grown.per_second
    verdict = "within" if factor <= GROWTH_TARGET else "NOT within"
    return (
        f"{base.per_second:,.0f} -> {grown.per_second:,.0f} trip events/s, {factor:.2f}x "
        f"slower ({verdict} {GROWTH_TARGET}x); CPU per event {base.cpu_per_event:,.1f} -> "
        f"{grown.cpu_per_event:,.1f} us ({grown.cpu_per_event / base.cpu_per_event:.2f}x)"
        f"{database_growth(kind, base, grown)}"
    )


def database_growth(kind: str, base: Fold, grown: Fold) -> str:
    """PostgreSQL's CPU per event at both sizes (SQLite's is in Podium's process)."""
    if kind == "sqlite":
        return ""
    return (
        f", PostgreSQL's {base.database_cpu_per_event:,.1f} -> "
        f"{grown.database_cpu_per_event:,.1f} us"
    )


async def bench_growth(
    kind: str, broker: LocalBroker, folder: Path, args: argparse.Namespace
) -> None:
    """The replay section's growth run alone (`--section growth`): the binary fold at the
    base size, then at GROWTH times the drivers and the trip events; the JSON envelopes, the
    peer, the rebuild and the scaling-out runs left out, so that the full size fits in
    minutes."""
    count = 50_000 if args.quick else 200_000
    servers, now = broker.bootstrap_servers, datetime.now(UTC)
    say(
        f"\n== {kind}: growth: {count:,} trip events of {DRIVERS:,} drivers, then x{GROWTH}, "
        f"from offset 0 ({PARTITIONS} partitions), one podium serve into an empty database =="
    )
    say(machine_load())
    base = await beside_bare(
        kind, folder, await produced(servers, count, DRIVERS, now, BINARY), count, BINARY
    )
    say(machine_load())
    await growth(kind, folder, servers, count, now, base)
    say(machine_load())


async def bench_replay(
    kind: str, broker: LocalBroker, folder: Path, args: argparse.Namespace
) -> None:
    count, rebuilt = (50_000, 100_000) if args.quick else (200_000, 1_000_000)
    servers, now = broker.bootstrap_servers, datetime.now(UTC)
    say(
        f"\n== {kind}: replay: {count:,} trip events of {DRIVERS:,} drivers from offset 0 "
        f"({PARTITIONS} partitions), one podium serve into an empty database each time =="
    )
    say(machine_load())
    binary_topic = await produced(servers, count, DRIVERS, now, BINARY)
    binary = await beside_bare(kind, folder, binary_topic, count, BINARY)
    json_topic = await produced(servers, count, DRIVERS, now, JSON_ENVELOPES)
    json = await beside_bare(kind, folder, json_topic, count, JSON_ENVELOPES)
    await beside_peer(json_topic, count, json)
    await rebuild(kind, folder, servers, rebuilt, now)
    if kind == "postgresql":
        await scaling_out(kind, folder, servers, count, now)
    if args.growth:
        await growth(kind, folder, servers, count, now, binary)
    say(machine_load())


def machine_load() -> str:
    """The machine is shared: its load tells how far the figures around are from its best."""
    one, five, _ = os.getloadavg()
    return f"machine load average: {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"
