"""Decoding and folding trips in one process, no Kafka: CPU microseconds per trip.

    python -m bench.fold_cpu [--trips N] [--batch B] [--rounds R] [--databases sqlite,postgresql]

Each round builds N trip records of the replay section's shape (consumed records, as aiokafka
hands them over), decodes them as the consumer loop does (`consumers.runs.decode_runs`) and
applies them in batches of B through `apply_batch` into a fresh empty database, the cyclic
collector driven as the loop drives it (`consumers.collector`: off while a batch is in hand,
collected every few seconds); the process's CPU time (PostgreSQL's backends apart) is split
into decoding and folding. The encodings and databases take turns within a round, so the
machine's load falls on all of them alike; the median of R rounds is printed. Unlike the
replay section's rates, these figures move little with the machine's other load: they are
what a change to the hot path is judged by.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from bench.replay import BINARY, JSON_ENVELOPES, Encoding, trip_records
from consumers.collector import BatchCollector
from consumers.runs import Fetched, decode_runs
from service.app.ingest import Batch, apply_batch
from service.bootstrap import Storage, collect_garbage_less_often, rules_from
from service.config import Settings
from tests.databases import empty_database

TOPIC = "trips"
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def consumed(count: int, drivers: int, encoding: Encoding) -> list[ConsumerRecord[bytes, bytes]]:
    """The trips as the consumer receives them, on one partition."""
    arrived_ms = int(NOW.timestamp() * 1000)
    return [
        ConsumerRecord(
            TOPIC,
            0,
            offset,
            arrived_ms + offset,
            0,
            key,
            value,
            None,
            len(key),
            len(value),
            list(encoding.headers),
        )
        for offset, (key, value) in enumerate(trip_records(count, drivers, NOW, encoding))
    ]


def decode_and_fold(
    messages: Sequence[ConsumerRecord[bytes, bytes]], url: str, batch: int
) -> tuple[float, float]:
    """CPU seconds spent decoding and folding `messages` into the empty database at `url`."""
    settings = Settings()
    store = Storage.of(url)
    try:
        from migrations import upgrade

        upgrade(store.engine)
        decode_cpu = fold_cpu = 0.0
        stored: int | None = None
        collector = BatchCollector()  # as the consumer loop collects
        for start in range(0, len(messages), batch):
            part = list(messages[start : start + batch])
            began = time.process_time()
            collector.pause()
            (run,) = decode_runs([Fetched(TopicPartition(TOPIC, 0), 0, part)], {TOPIC: "trips"})
            decoded = time.process_time()
            apply_batch(
                store.unit_of_work,
                Batch(run.received, run.dead, {(TOPIC, 0): (stored, run.next_offset)}),
                rules=rules_from(settings),
                consumer_group="bench",
                now=NOW,
            )
            stored = run.next_offset
            del run
            collector.batch_done()
            fold_cpu += time.process_time() - decoded
            decode_cpu += decoded - began
        return decode_cpu, fold_cpu
    finally:
        collector.resume()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=40_000)
    parser.add_argument("--drivers", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    cases = [
        (kind, encoding)
        for kind in args.databases.split(",")
        for encoding in (JSON_ENVELOPES, BINARY)
    ]
    records = {e.name: consumed(args.trips, args.drivers, e) for e in (JSON_ENVELOPES, BINARY)}
    collect_garbage_less_often()  # as `podium serve` starts; the records kept out of sight
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for kind, encoding in cases:
                with empty_database(kind, Path(folder), prefix="fold_cpu") as url:
                    spent = decode_and_fold(records[encoding.name], url, args.batch)
                figures.setdefault((kind, encoding.name), []).append(spent)
    print(
        f"{args.trips:,} trips of {args.drivers:,} drivers, batches of {args.batch:,}, "
        f"median of {args.rounds} rounds; CPU microseconds per trip"
    )
    print("| database | encoding | decode | fold | total |")
    print("| --- | --- | --- | --- | --- |")
    for (kind, name), rounds in figures.items():
        decode = statistics.median(d for d, _ in rounds) / args.trips * 1e6
        fold = statistics.median(f for _, f in rounds) / args.trips * 1e6
        total = statistics.median(d + f for d, f in rounds) / args.trips * 1e6
        print(f"| {kind} | {name} | {decode:.1f} | {fold:.1f} | {total:.1f} |")


if __name__ == "__main__":
    main()
