"""The consumer loop against a fake consumer and an in-memory store: what it applies, what it
dead-letters, when it retries, when it stops a partition, and what it reports."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from google.protobuf import json_format

from consumers.reporter import IngestReport
from consumers.runner import ConsumerLoop
from consumers.unknown_field_log import MAX_LOGGED_PATHS, UnknownFieldLog
from service.app.ingest import Applied, Batch
from service.app.ports import OffsetMoved, StorageUnavailable
from service.app.records import RecordId
from service.metrics import Metrics
from tests.builders import trip_envelope
from tests.fake_kafka import FakeConsumer
from tests.waiting import eventually

TRIPS = "podium.trips"
P0, P1 = TopicPartition(TRIPS, 0), TopicPartition(TRIPS, 1)
NOW_MS = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp() * 1000)
UNKNOWN = "podium_unknown_fields_total"


@dataclass
class FakeStore:
    """Applies batches as the database does: all or nothing, offsets compared and set."""

    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    folded: list[RecordId] = field(default_factory=list)
    dead: dict[RecordId, str] = field(default_factory=dict)
    poison: set[RecordId] = field(default_factory=set)
    """Records whose fold fails (a deterministic error)."""
    unavailable: int = 0
    """The next this many applies fail as a lost database does."""
    gate: threading.Event | None = None
    """When set, an apply waits for it to open (`entered` tells it has begun)."""
    entered: threading.Event = field(default_factory=threading.Event)

    def apply(self, batch: Batch, dry_run: bool) -> Applied:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.unavailable:
            self.unavailable -= 1
            raise StorageUnavailable("connection refused")
        if any(item.record.id in self.poison for item in batch.received):
            raise OverflowError("int too large to convert")
        for partition, (expected, _) in batch.offsets.items():
            if self.offsets.get(partition) != expected:
                raise OffsetMoved(f"{partition} is no longer at {expected}")
        if not dry_run:
            self.offsets.update({tp: after for tp, (_, after) in batch.offsets.items()})
            self.folded += [item.record.id for item in batch.received]
            self.dead.update({d.record.id: d.rejection.reason for d in batch.dead})
        return Applied(len(batch.received), tuple(batch.dead))

    def load(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {
            p: self.offsets[(p.topic, p.partition)]
            for p in partitions
            if (p.topic, p.partition) in self.offsets
        }


def trip(n: int) -> bytes:
    return trip_envelope(f"trip-{n}", f"driver-{n % 3}").SerializeToString()


@dataclass
class Harness:
    consumer: FakeConsumer
    store: FakeStore
    loop: ConsumerLoop
    reports: list[IngestReport]
    metrics: Metrics

    def lag(self, partition: TopicPartition) -> float | None:
        return self.metrics.registry.get_sample_value(
            "podium_consumer_lag", {"topic": partition.topic, "partition": str(partition.partition)}
        )

    def produce(self, partition: TopicPartition, count: int) -> list[int]:
        return [self.consumer.append(partition, trip(n), timestamp_ms=NOW_MS) for n in range(count)]

    def produce_bytes(self, partition: TopicPartition, value: bytes) -> int:
        return self.consumer.append(partition, value, timestamp_ms=NOW_MS)

    def ids(self, partition: TopicPartition, offsets: list[int]) -> list[RecordId]:
        return [(partition.topic, partition.partition, o) for o in offsets]

    @property
    def last(self) -> IngestReport:
        return self.reports[-1]


@asynccontextmanager
async def running(
    store: FakeStore | None = None,
    partitions: tuple[TopicPartition, ...] = (P0, P1),
    max_records: int = 100,
    before: Callable[[Harness], object] = lambda _: None,
    silent_seconds: float = 30.0,
    progress_seconds: float = 5.0,
) -> AsyncIterator[Harness]:
    consumer = FakeConsumer(partitions)
    store = store or FakeStore()
    reports: list[IngestReport] = []
    metrics = Metrics()
    loop = ConsumerLoop(
        consumer,
        {TRIPS: "trips"},
        store.apply,
        store.load,
        metrics,
        max_records=max_records,
        report=reports.append,
        first_backoff=0.01,
        recheck_seconds=0.05,
        silent_seconds=silent_seconds,
        progress_seconds=progress_seconds,
    )
    harness = Harness(consumer, store, loop, reports, metrics)
    before(harness)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        yield harness
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


until = functools.partial(eventually, within=5.0, every=0.005)
"""The loop runs in this test's event loop: it is looked at often, and is quick to settle."""


def settled(h: Harness, *expected: RecordId) -> Callable[[], bool]:
    return lambda: set(expected) <= set(h.store.folded) | set(h.store.dead)


async def test_every_record_is_folded_once_and_the_offsets_follow() -> None:
    async with running() as h:
        first, second = h.produce(P0, 250), h.produce(P1, 40)
        await until(settled(h, *h.ids(P0, first), *h.ids(P1, second)))
        await until(lambda: h.loop.caught_up.is_set())
    assert sorted(h.store.folded) == sorted(h.ids(P0, first) + h.ids(P1, second))
    assert h.store.offsets == {(TRIPS, 0): 250, (TRIPS, 1): 40}
    assert h.consumer.committed[P0] == 250


async def test_an_empty_log_is_caught_up_at_once_and_reported_healthy() -> None:
    async with running() as h:
        await until(lambda: h.loop.caught_up.is_set())
        await until(lambda: bool(h.reports) and h.last.healthy)


async def test_a_log_already_folded_is_caught_up_without_a_record_to_fold() -> None:
    store = FakeStore(offsets={(TRIPS, 0): 40, (TRIPS, 1): 0})
    async with running(store, before=lambda h: h.produce(P0, 40)) as h:
        await until(lambda: h.loop.caught_up.is_set())
    assert h.store.folded == []


async def test_records_to_fold_keep_the_log_from_being_caught_up_until_they_are_folded() -> None:
    gate = threading.Event()
    folded_when_caught_up: list[int] = []

    async def watch(h: Harness) -> None:
        await h.loop.caught_up.wait()
        folded_when_caught_up.append(len(h.store.folded))

    async with running(FakeStore(gate=gate), before=lambda h: h.produce(P0, 30)) as h:
        watcher = asyncio.create_task(watch(h))
        # The loop checks whether it caught up right after handing the batch over, before the
        # batch can begin: once it has begun, that check was made with the batch in hand.
        await until(h.store.entered.is_set)
        assert not h.loop.caught_up.is_set()
        gate.set()
        await asyncio.wait_for(watcher, 5)
    assert folded_when_caught_up == [30]


async def test_a_partition_never_stored_starts_at_the_log_start_not_where_kafka_says() -> None:
    def retained(h: Harness) -> None:
        h.produce(P0, 10)
        h.consumer.retain_from(P0, 4)

    async with running(before=retained) as h:
        await until(settled(h, *h.ids(P0, list(range(4, 10)))))
    assert sorted(h.store.folded) == h.ids(P0, list(range(4, 10)))


async def test_a_failing_first_batch_loses_nothing_of_the_batches_fetched_behind_it() -> None:
    """Batches of 100 from a partition never stored, a record of the first batch unfoldable:
    it is dead-lettered, and the 299 others are folded (none skipped by a later batch)."""
    store = FakeStore(poison={(TRIPS, 0, 50)})
    async with running(store, max_records=100) as h:
        offsets = h.produce(P0, 300)
        await until(settled(h, *h.ids(P0, offsets)))
    assert sorted(h.store.folded) == [i for i in h.ids(P0, offsets) if i != (TRIPS, 0, 50)]
    assert list(h.store.dead) == [(TRIPS, 0, 50)]
    assert "OverflowError" in h.store.dead[(TRIPS, 0, 50)]
    assert h.store.offsets[(TRIPS, 0)] == 300


async def test_a_database_outage_retries_the_same_batch_and_reports_it_meanwhile() -> None:
    store = FakeStore(unavailable=3)
    async with running(store) as h:
        offsets = h.produce(P0, 20)
        await until(settled(h, *h.ids(P0, offsets)))
        await until(lambda: h.last.healthy)
    assert any("connection refused" in (r.backing_off or "") for r in h.reports)
    assert not h.store.dead
    assert sorted(h.store.folded) == h.ids(P0, offsets)


async def test_records_that_break_the_fold_are_dead_lettered_and_the_rest_folded() -> None:
    bad = {(TRIPS, 0, 3), (TRIPS, 1, 7), (TRIPS, 0, 4)}
    store = FakeStore(poison=bad)
    async with running(store) as h:
        first, second = h.produce(P0, 10), h.produce(P1, 10)
        everything = h.ids(P0, first) + h.ids(P1, second)
        await until(settled(h, *everything))
    assert set(h.store.dead) == bad
    assert sorted(h.store.folded) == sorted(set(everything) - bad)


async def test_a_batch_that_fails_whatever_its_records_stops_its_partitions() -> None:
    """Every record failing says the fault is not the data's: nothing is dead-lettered."""
    store = FakeStore()
    async with running(store) as h:
        offsets = h.produce(P0, 5)
        store.poison = set(h.ids(P0, offsets))
        await until(lambda: bool(h.reports) and P0 in h.last.stalled)
        assert "every record" in h.last.stalled[P0]
        assert not h.store.dead
        assert not h.store.folded
        assert not h.last.healthy


async def test_an_undecodable_record_is_dead_lettered_and_consumption_goes_on() -> None:
    async with running() as h:
        before = h.produce(P0, 3)
        junk = h.produce_bytes(P0, b"\xff\x00 not a protobuf")
        after = h.produce(P0, 3)
        await until(settled(h, *h.ids(P0, [*before, junk, *after])))
    assert list(h.store.dead) == [(TRIPS, 0, junk)]
    assert len(h.store.folded) == 6


async def test_a_stored_offset_beyond_the_log_stops_the_partition_until_it_is_reset() -> None:
    """A broker that lost its log (or a re-created topic): skipping would lose the new records
    silently, so the partition stops with the alarm, and resumes once an operator moves it."""
    store = FakeStore(offsets={(TRIPS, 0): 500})
    async with running(store) as h:
        offsets = h.produce(P0, 6)
        other = h.produce(P1, 2)
        await until(lambda: bool(h.reports) and P0 in h.last.stalled)
        assert "past the log's end 6" in h.last.stalled[P0]
        await until(settled(h, *h.ids(P1, other)))
        assert not h.last.healthy
        store.offsets[(TRIPS, 0)] = 0  # podium offsets reset --to earliest
        await until(settled(h, *h.ids(P0, offsets)))
        await until(lambda: h.last.healthy)
    assert sorted(h.store.folded) == sorted(h.ids(P0, offsets) + h.ids(P1, other))


async def test_a_position_retention_overtook_stops_the_partition() -> None:
    async with running() as h:
        first = h.produce(P0, 5)
        await until(settled(h, *h.ids(P0, first)))
        h.produce(P0, 5)
        h.consumer.retain_from(P0, 8)  # before the loop fetched 5..9: those are gone
        await until(lambda: bool(h.reports) and P0 in h.last.stalled)
        assert "no longer in the log [8, 10]" in h.last.stalled[P0]
        assert h.store.offsets[(TRIPS, 0)] == 5


async def test_unreadable_records_stop_their_partition_only() -> None:
    async with running() as h:
        h.consumer.broken[P0] = kafka_errors.UnsupportedCodecError("lz4 is not available")
        other = h.produce(P1, 4)
        h.produce(P0, 4)
        await until(lambda: bool(h.reports) and P0 in h.last.stalled)
        assert "cannot be read" in h.last.stalled[P0]
        await until(settled(h, *h.ids(P1, other)))
    assert all(p == 1 for _, p, _ in h.store.folded)


async def test_a_batch_fenced_out_by_another_consumer_writes_nothing_and_resumes_from_there() -> (
    None
):
    """Another instance committed the partition meanwhile: our batch is stale; we re-read
    the stored offset and go on from there, applying nothing twice."""
    async with running() as h:
        first = h.produce(P0, 5)
        await until(settled(h, *h.ids(P0, first)))
        later = h.produce(P0, 5)
        h.store.offsets[(TRIPS, 0)] = 8  # the other instance folded 5..7
        await until(lambda: h.store.offsets[(TRIPS, 0)] == 10)
    assert h.store.folded == h.ids(P0, first) + h.ids(P0, later[3:])


async def test_a_revocation_waits_for_the_batch_in_hand_and_a_reassignment_resumes() -> None:
    gate = threading.Event()
    store = FakeStore(gate=gate)
    async with running(store) as h:
        first = h.produce(P0, 5)
        await asyncio.to_thread(store.entered.wait, 10)  # the batch is being applied
        revoking = asyncio.create_task(h.consumer.rebalance(revoke=[P0]))
        for _ in range(20):
            await asyncio.sleep(0)  # let the revocation run as far as it can
        assert not revoking.done()
        gate.set()
        await revoking
        assert store.folded == h.ids(P0, first)
        assert P0 not in h.loop.positions
        later = h.produce(P0, 5)
        polled = h.consumer.polls
        await until(lambda: h.consumer.polls >= polled + 3)
        assert store.folded == h.ids(P0, first)
        await h.consumer.rebalance(assign=[P0])
        await until(settled(h, *h.ids(P0, later)))
    assert h.store.folded == h.ids(P0, first) + h.ids(P0, later)


async def test_automatic_collection_is_off_while_a_batch_is_in_hand_and_on_once_none_is() -> None:
    assert gc.isenabled()
    gate = threading.Event()
    store = FakeStore(gate=gate)
    async with running(store) as h:
        first = h.produce(P0, 5)
        await asyncio.to_thread(store.entered.wait, 10)  # the batch is being applied
        assert not gc.isenabled()
        gate.set()
        await until(settled(h, *h.ids(P0, first)))
        await until(gc.isenabled)
        store.gate, store.entered = None, threading.Event()
        later = h.produce(P0, 5)
        await until(settled(h, *h.ids(P0, later)))
        await until(gc.isenabled)
    assert gc.isenabled()


async def test_automatic_collection_is_on_while_a_batch_waits_for_the_database() -> None:
    store = FakeStore(unavailable=1_000_000)
    async with running(store) as h:
        offsets = h.produce(P0, 5)
        await until(lambda: bool(h.reports) and h.last.backing_off is not None)
        assert gc.isenabled()
        store.unavailable = 0
        await until(settled(h, *h.ids(P0, offsets)))
        await until(gc.isenabled)


async def test_records_fetched_before_a_rewind_are_never_applied() -> None:
    """A run decoded while the batch before it was fenced out belongs to the old position:
    after the rewind only what is fetched anew is applied."""
    store = FakeStore()
    async with running(store, max_records=3) as h:
        offsets = h.produce(P0, 9)
        store.offsets[(TRIPS, 0)] = 0  # stored by "someone else" before our first commit
        await until(lambda: store.offsets.get((TRIPS, 0)) == 9)
    assert store.folded == h.ids(P0, offsets)


async def test_the_lag_is_what_the_log_holds_beyond_the_stored_offset() -> None:
    store = FakeStore(unavailable=10**6)
    async with running(store) as h:
        offsets = h.produce(P0, 20)
        await until(lambda: h.lag(P0) == 20)
        assert h.lag(P1) == 0
        store.unavailable = 0
        await until(settled(h, *h.ids(P0, offsets)))
        await until(lambda: h.lag(P0) == 0)


@dataclass
class SilentStore(FakeStore):
    """A database that stops answering without failing (a hung server, a link that swallows
    traffic): the calls named in `silent` wait until `answering` is set."""

    silent: frozenset[str] = frozenset({"apply"})
    answering: threading.Event = field(default_factory=threading.Event)

    def apply(self, batch: Batch, dry_run: bool) -> Applied:
        if "apply" in self.silent:
            self.answering.wait(10)
        return super().apply(batch, dry_run)

    def load(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        if "load" in self.silent:
            self.answering.wait(10)
        return super().load(partitions)


def unanswered(h: Harness) -> bool:
    return bool(h.reports) and "not answered" in (h.last.backing_off or "")


async def test_a_batch_the_database_leaves_unanswered_is_reported_until_it_is_answered() -> None:
    """Nothing fails, so only the wait tells: health must not say SERVING meanwhile."""
    store = SilentStore()
    async with running(store, silent_seconds=0.05) as h:
        offsets = h.produce(P0, 5)
        await until(lambda: unanswered(h))
        assert not h.last.healthy
        assert not h.store.folded
        store.answering.set()
        await until(settled(h, *h.ids(P0, offsets)))
        await until(lambda: h.last.healthy)
    assert h.store.folded == h.ids(P0, offsets)


async def test_stored_offsets_the_database_leaves_unread_are_reported_until_they_are_read() -> None:
    store = SilentStore(silent=frozenset({"load"}))
    async with running(store, silent_seconds=0.05) as h:
        offsets = h.produce(P0, 5)
        await until(lambda: unanswered(h))
        store.answering.set()
        await until(settled(h, *h.ids(P0, offsets)))
        await until(lambda: h.last.healthy)
    assert h.store.folded == h.ids(P0, offsets)


@dataclass
class FirstBatchOnly(FakeStore):
    """Folds the first batch, then holds every other until `hold` is set."""

    hold: threading.Event = field(default_factory=threading.Event)

    def apply(self, batch: Batch, dry_run: bool) -> Applied:
        if self.folded:
            self.hold.wait(timeout=10)
        return super().apply(batch, dry_run)


def logged(caplog: pytest.LogCaptureFixture, start: str) -> list[Any]:
    return [r for r in caplog.records if r.getMessage().startswith(start)]


async def test_the_first_catch_up_logs_events_folded_lag_and_time_left_until_done(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="consumers")
    store = FirstBatchOnly()

    def backlog(h: Harness) -> None:
        h.produce(P0, 300)

    async with running(store, (P0,), max_records=100, before=backlog, progress_seconds=0.02) as h:

        def progress_after_one_batch() -> bool:
            return any(
                (r.folded, r.lag) == (100, 200) for r in logged(caplog, "catching up: 100 events")
            )

        try:
            await until(progress_after_one_batch)
        finally:
            store.hold.set()
        [line, *_] = [r for r in logged(caplog, "catching up") if (r.folded, r.lag) == (100, 200)]
        assert line.records_per_second > 0
        assert line.eta_seconds == pytest.approx(200 / line.records_per_second, abs=0.1)
        assert "200 records behind, about" in line.getMessage()
        await until(lambda: h.loop.caught_up.is_set())
        await until(lambda: bool(logged(caplog, "caught up with the topics")))
    assert h.metrics.registry.get_sample_value("podium_ingest_caught_up") == 1


def newer_trip(n: int, **additions: object) -> bytes:
    """A trip's JSON, without the content-type header, with members Podium does not know."""
    document = json.loads(json_format.MessageToJson(trip_envelope(f"newer-{n}", "ann")))
    for path, value in additions.items():
        *parents, last = path.split("__")
        target = document
        for name in parents:
            target = target[name]
        target[last] = value
    return json.dumps(document).encode()


async def test_unknown_fields_are_counted_each_and_logged_once_per_topic_and_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="consumers.unknown_field_log")
    async with running() as h:
        assert h.metrics.registry.get_sample_value(UNKNOWN, {"topic": TRIPS}) == 0
        offsets = [
            h.produce_bytes(P0, newer_trip(1, tripCompleted__vehicleId="v1")),
            h.produce_bytes(P0, newer_trip(2, tripCompleted__vehicleId="v2", schemaVersion=2)),
            h.produce_bytes(P1, newer_trip(3, tripCompleted__scores__braking=7)),
            *h.produce(P1, 2),
        ]
        await until(settled(h, *h.ids(P0, offsets[:2]), *h.ids(P1, offsets[2:])))
        await until(lambda: h.metrics.registry.get_sample_value(UNKNOWN, {"topic": TRIPS}) == 4)
    assert not h.store.dead
    lines = logged(caplog, f"{TRIPS}: records carry")
    assert sorted(line.field for line in lines) == [
        "schemaVersion",
        "tripCompleted.scores.braking",
        "tripCompleted.vehicleId",
    ]
    assert {(line.levelno, line.topic) for line in lines} == {(logging.WARNING, TRIPS)}


def test_the_paths_logged_per_topic_are_bounded_and_the_rest_only_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="consumers.unknown_field_log")
    metrics = Metrics()
    fields = UnknownFieldLog(metrics.unknown_fields, [TRIPS])
    for n in range(MAX_LOGGED_PATHS + 5):
        fields.note(TRIPS, (f"field{n}",))
    fields.note("podium.catalog", ("field0", "field0"))
    assert len(logged(caplog, f"{TRIPS}: records carry")) == MAX_LOGGED_PATHS
    assert len(logged(caplog, f"{TRIPS}: 1000 unknown fields logged")) == 1
    assert len(logged(caplog, "podium.catalog: records carry")) == 1
    counted = metrics.registry.get_sample_value(UNKNOWN, {"topic": TRIPS})
    assert counted == MAX_LOGGED_PATHS + 5
    assert metrics.registry.get_sample_value(UNKNOWN, {"topic": "podium.catalog"}) == 2


async def test_dead_letters_are_logged_with_where_and_why_at_most_once_a_second_per_topic(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="consumers")
    async with running() as h:
        good = h.produce(P0, 2)
        junk = [h.produce_bytes(P0, b"\xff\x00 not a protobuf") for _ in range(5)]
        await until(settled(h, *h.ids(P0, [*good, *junk])))
    [line] = logged(caplog, "dead letter")
    assert line.levelno == logging.WARNING
    assert (line.topic, line.partition, line.offset) == (TRIPS, 0, junk[0])
    assert (line.tenant, line.reason_kind) == (None, "undecodable")
    assert line.reason.startswith("undecodable TripEvent")
    counted = h.metrics.registry.get_sample_value(
        "podium_events_dead_lettered_total", {"topic": TRIPS, "reason": "undecodable"}
    )
    assert counted == 5
    assert h.metrics.registry.get_sample_value("podium_batch_records_sum") == 7
