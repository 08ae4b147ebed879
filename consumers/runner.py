"""The one consumer loop for every topic: getmany -> decode -> apply -> commit.

The state and the offsets commit in one transaction, so the database, not Kafka, says where
each partition stands (`consumers.positions`). Around that the loop keeps three promises:

- **Nothing is lost.** A run of records is applied only if it was fetched since the partition
  was last sought (`Positions.is_current`); a partition never stored starts at the log's
  start; an offset outside the log stops its partition with an alarm instead of skipping.
- **Nothing stalls silently.** A batch that fails because of the database (`StorageUnavailable`)
  is retried as it is, with a capped exponential back-off, while the group membership is kept
  alive; a batch that fails because of its records has them found (`consumers.poison`) and
  dead-lettered, and the rest is folded. Every stall shows in the log, the metrics and the
  report the composition root turns into health.
- **Nothing escapes decoding**: a record that cannot be decoded becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.protocol.group import LeaveGroupRequest
from aiokafka.structs import ConsumerRecord
from opentelemetry.trace import Tracer

from consumers.decode import decode_noting_unknown_fields
from consumers.poison import Unresolvable, find_poison
from consumers.positions import Positions, Status
from consumers.rebalance import TrackAssignments
from consumers.unknown_field_log import UnknownFieldLog
from service.app.ingest import Applied, Batch
from service.app.ports import OffsetMoved, StorageUnavailable
from service.app.records import DeadLetter, Received, Record, Rejected
from service.logs import Throttle, describe
from service.metrics import Metrics
from service.tracing import batch_span

log = logging.getLogger(__name__)
T = TypeVar("T")

POLL_MS = 200
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
RECHECK_SECONDS = 5.0
"""How often the stored offsets of owned partitions are read again: an operator may have moved
one (a stalled partition, or a replay from the start)."""
UNREADABLE_PAUSE_SECONDS = 1.0
LEAVE_TIMEOUT_SECONDS = 2.0
"""Stopping does not wait longer than this for the group's coordinator to take our leave."""
SILENT_DATABASE_SECONDS = 30.0
"""A batch the database has not answered for this long is reported as a back-off until it is
answered: a server or a link that stops answering without failing (hung storage, a middlebox
that swallows traffic) raises nothing, and ingest would stall while health says SERVING. Twice
PostgreSQL's lock timeout, so a batch queued behind another instance's is not reported."""
PROGRESS_SECONDS = 5.0
"""How often the first catch-up's progress is logged."""


class Consumer(Protocol):
    """The part of aiokafka's `AIOKafkaConsumer` the loop uses (a fake stands in for tests)."""

    def subscribe(self, topics: list[str], *, listener: Any) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def pause(self, *partitions: TopicPartition) -> None: ...
    def resume(self, *partitions: TopicPartition) -> None: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...
    async def position(self, partition: TopicPartition) -> int: ...
    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]: ...
    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...
    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


ApplyBatch = Callable[[Batch, bool], Applied]
"""Fold a batch in one transaction, `True` for a dry run that is rolled back. Raises
`OffsetMoved` when fenced out, `StorageUnavailable` when the database fails; anything else is
the batch's own fault."""

LoadOffsets = Callable[[list[TopicPartition]], dict[TopicPartition, int]]
"""The stored next offsets of these partitions (absent: never stored)."""


@dataclass(frozen=True, slots=True)
class IngestReport:
    caught_up: bool
    """The first catch-up is done: the state reflects the log as it was at the first
    assignment (stalled partitions aside: they are reported on their own)."""
    backing_off: str | None
    """Why the database is being retried, while it is."""
    stalled: Mapping[TopicPartition, str] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.caught_up and self.backing_off is None and not self.stalled


def to_record(message: ConsumerRecord[bytes, bytes]) -> Record:
    headers = tuple(
        (name, None if value is None else bytes(value)) for name, value in message.headers or ()
    )
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=message.timestamp,
        key=message.key,
        value=message.value or b"",
        headers=headers,
    )


def decode_record(record: Record, family_of: Mapping[str, str]) -> Received | DeadLetter:
    decoded, unknown_fields = decode_noting_unknown_fields(
        family_of.get(record.topic, ""), record.value, record.headers, record.timestamp_ms
    )
    if isinstance(decoded, Rejected):
        return DeadLetter(record, decoded)
    return Received(decoded, record, unknown_fields)


def split(
    records: Sequence[Record], family_of: Mapping[str, str]
) -> tuple[list[Received], list[DeadLetter]]:
    """Decode each record: the ones that become events, and the ones that become dead letters."""
    received: list[Received] = []
    dead: list[DeadLetter] = []
    for record in records:
        outcome = decode_record(record, family_of)
        if isinstance(outcome, DeadLetter):
            dead.append(outcome)
        else:
            received.append(outcome)
    return received, dead


async def stop_consumer(consumer: Consumer) -> None:
    """Stop the consumer (leaving its group), whatever its fetcher was doing.

    aiokafka 0.14's `Fetcher.close` cancels its pending fetches and awaits them; one that is
    sleeping in its retry back-off after a failed fetch re-raises the CancelledError, and
    `stop()` then skips closing the client. Only a cancellation of our own task is passed on.
    """
    try:
        await leave_first_generation(consumer)
        await consumer.stop()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        log.warning("a failed fetch was retrying as the consumer stopped; closing its client")
        await consumer._client.close()  # type: ignore[attr-defined]  # what stop() does next


async def leave_first_generation(consumer: Consumer) -> None:
    """Leave the group from generation 0 too.

    aiokafka sends LeaveGroup on stop only from generation 1 on, Kafka's first; Tansu
    numbers generations from 0. A member stopped in its first generation therefore stayed in
    the group until its session expired, and the next start waited for it: its join named the
    departed member leader, the sync failed when that session ended, and it joined again
    (about 13 s more before SERVING, measured). The coordinator is closed first (no heartbeat
    or rejoin runs meanwhile), the leave is sent as aiokafka sends its own, best effort.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or coordinator.generation != 0:
        return
    group, member = coordinator.group_id, coordinator.member_id
    await coordinator.close()
    try:
        async with asyncio.timeout(LEAVE_TIMEOUT_SECONDS):
            await coordinator._send_req(LeaveGroupRequest(group, member))
    except (kafka_errors.KafkaError, TimeoutError) as error:
        log.warning(
            "could not leave consumer group %s (%s): a restart waits for its session to expire",
            group,
            describe(error),
        )


@dataclass(frozen=True, slots=True)
class Run:
    """A partition's fetched records, decoded, with the epoch they were fetched in."""

    partition: TopicPartition
    epoch: int
    next_offset: int
    received: list[Received]
    dead: list[DeadLetter]


@dataclass(frozen=True, slots=True)
class Fetched:
    partition: TopicPartition
    epoch: int
    messages: list[ConsumerRecord[bytes, bytes]]


def decode_runs(fetched: Sequence[Fetched], family_of: Mapping[str, str]) -> list[Run]:
    runs = []
    for item in fetched:
        received, dead = split([to_record(m) for m in item.messages], family_of)
        next_offset = item.messages[-1].offset + 1
        runs.append(Run(item.partition, item.epoch, next_offset, received, dead))
    return runs


@dataclass(frozen=True, slots=True)
class Retry:
    """A batch the database failed to take: retried as it is, after `delay` seconds."""

    runs: list[Run]
    why: str


class Backoff:
    def __init__(self, first: float = FIRST_BACKOFF_SECONDS, cap: float = MAX_BACKOFF_SECONDS):
        self._first, self._cap = first, cap
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._cap)
        return delay

    def reset(self) -> None:
        self._next = self._first


class ConsumerLoop:
    def __init__(
        self,
        consumer: Consumer,
        family_of: Mapping[str, str],
        apply: ApplyBatch,
        load_offsets: LoadOffsets,
        metrics: Metrics,
        *,
        max_records: int,
        report: Callable[[IngestReport], None] = lambda _: None,
        first_backoff: float = FIRST_BACKOFF_SECONDS,
        recheck_seconds: float = RECHECK_SECONDS,
        silent_seconds: float = SILENT_DATABASE_SECONDS,
        progress_seconds: float = PROGRESS_SECONDS,
        tracer: Tracer | None = None,
    ) -> None:
        self._consumer = consumer
        self._family_of = dict(family_of)
        self._apply_batch = apply
        self._load_offsets = load_offsets
        self._metrics = metrics
        self._max_records = max_records
        self._report = report
        self._lock = asyncio.Lock()
        self.positions = Positions()
        self._listener = TrackAssignments(consumer, self.positions, self._lock)
        self._targets: dict[TopicPartition, int] = {}
        """The first catch-up: each partition's log end (its high watermark) as first seen."""
        self.caught_up = asyncio.Event()
        self._backing_off: str | None = None
        self._resolve_after = 0.0
        self._recheck_at = 0.0
        self._first_backoff = first_backoff
        self._recheck_seconds = recheck_seconds
        self._silent_seconds = silent_seconds
        self._resolve_backoff = Backoff(first_backoff)
        self._last_report: IngestReport | None = None
        self._progress_seconds = progress_seconds
        self._lags: dict[TopicPartition, int] = {}
        self._folded = 0
        """Events folded since the loop started."""
        self._applied = 0
        """Records applied (folded, ignored or dead-lettered) since the loop started."""
        self._dead_letter_lines = Throttle(1.0)
        self._unknown_fields = UnknownFieldLog(metrics.unknown_fields, self._family_of)
        self._tracer = tracer

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is applied before returning."""
        self._consumer.subscribe(list(self._family_of), listener=self._listener)
        await self._consumer.start()
        applying: asyncio.Task[Retry | None] | None = None
        self._publish()
        progress = asyncio.create_task(self._log_progress())
        try:
            while not stop.is_set():
                await self._resolve()
                fetched = await self._fetch()
                # Decoding is pure, so it runs while the previous batch is still being applied
                # (on PostgreSQL that batch mostly waits on the server, with the GIL free).
                decoding = (
                    asyncio.create_task(asyncio.to_thread(decode_runs, fetched, self._family_of))
                    if fetched
                    else None
                )
                if applying is not None:
                    await self._settle(applying, stop)
                    applying = None
                if decoding is not None:
                    applying = asyncio.create_task(self._apply(await decoding))
                self._check_caught_up()
                self._publish()
        finally:
            progress.cancel()
            if applying is not None:
                await self._settle(applying, stop)
            await stop_consumer(self._consumer)

    # --- partitions --------------------------------------------------------------------------

    async def _resolve(self) -> None:
        """Seek newly assigned partitions to their stored offsets, after checking those are
        inside the log; every few seconds, look again at the owned ones whose stored offset
        an operator may have moved (`podium offsets reset`), a stalled one included."""
        now = time.monotonic()
        if now < self._resolve_after:
            return
        unresolved = self.positions.with_status(Status.UNRESOLVED)
        settled: list[TopicPartition] = []
        if now >= self._recheck_at:
            self._recheck_at = now + self._recheck_seconds
            settled = self.positions.with_status(Status.READY)
            settled += self.positions.with_status(Status.STALLED)
        if not unresolved and not settled:
            return
        log.debug("resolving %s and rechecking %s", unresolved, settled)
        try:
            stored = await self._database(
                asyncio.to_thread(self._load_offsets, unresolved + settled)
            )
            moved = [p for p in settled if self._moved_by_operator(p, stored.get(p))]
            todo = unresolved + moved
            starts = await self._consumer.beginning_offsets(todo) if todo else {}
        except (StorageUnavailable, kafka_errors.KafkaError) as error:
            delay = self._resolve_backoff.next()
            log.warning(
                "cannot resolve partitions yet (%s); again in %.1f s", describe(error), delay
            )
            self._resolve_after = now + delay
            return
        self._resolve_backoff.reset()
        for partition in moved:
            log.warning("%s[%d] was moved to %s by an operator", *partition, stored.get(partition))
        for partition in todo:
            self._place(partition, stored.get(partition), starts[partition])

    def _moved_by_operator(self, partition: TopicPartition, stored: int | None) -> bool:
        """The stored offset is not where this loop left it (a batch in hand would find out
        by itself: its commit is fenced)."""
        if partition not in self.positions:
            return False
        position = self.positions[partition]
        if position.status is Status.READY and position.in_hand:
            return False
        return stored != position.stored

    def _place(self, partition: TopicPartition, stored: int | None, start: int) -> None:
        """Seek to the stored offset, unless it is below the log's start (records deleted
        before they were folded). One past the log's end is found by the first fetch, from
        its high watermark (`_measure`): brokers do not all report the end right otherwise."""
        if partition not in self.positions:
            return  # revoked meanwhile
        if stored is not None and stored < start:
            self._stall(
                partition, stored, f"stored offset {stored} is before the log's start {start}"
            )
            return
        fetch_from = start if stored is None else stored
        self._consumer.seek(partition, fetch_from)
        self.positions.resolve(partition, stored, fetch_from)
        self._consumer.resume(partition)
        self._metrics.partition_stalled.labels(partition.topic, str(partition.partition)).set(0)

    def _stall(self, partition: TopicPartition, stored: int | None, why: str) -> None:
        log.error(
            "partition %s[%d] stopped: %s (stored offset %s). Nothing of it is folded until an "
            "operator moves it: podium offsets show / podium offsets reset",
            partition.topic,
            partition.partition,
            why,
            stored,
        )
        self.positions.stall(partition, why)
        self.positions[partition].stored = stored
        self._consumer.pause(partition)

    # --- fetching ----------------------------------------------------------------------------

    async def _fetch(self) -> list[Fetched]:
        try:
            batch = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=self._max_records)
        except kafka_errors.OffsetOutOfRangeError as error:
            await self._out_of_range(list(error.args[0]) if error.args else [])
            return []
        except kafka_errors.NoOffsetForPartitionError:
            return []  # a new partition not sought yet: `_resolve` seeks it
        except kafka_errors.KafkaError as error:
            await self._unreadable(error)
            return []
        fetched = []
        for partition, messages in batch.items():
            if partition not in self.positions or self.positions[partition].status is not (
                Status.READY
            ):
                continue  # revoked, stalled or not resolved since: fetched anew once it is
            position = self.positions[partition]
            fresh = [m for m in messages if m.offset >= position.fetched]
            if fresh:
                fetched.append(Fetched(partition, position.epoch, fresh))
                position.fetched = fresh[-1].offset + 1
        await self._measure(batch)
        return fetched

    async def _measure(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """From each partition's high watermark: the lag, the first catch-up's target, and
        whether the partition stands past the log's end (a log that restarted or was
        re-created: skipping to where new records reach the old offset would lose them). A
        partition whose log moved on without records for us (transaction markers,
        compaction) counts as consumed that far."""
        for partition in self.positions.with_status(Status.READY):
            position = self.positions[partition]
            highwater = self._consumer.highwater(partition)
            if highwater is None:
                continue
            if not position.in_hand and position.fetched > highwater:
                self._stall(
                    partition,
                    position.stored,
                    f"offset {position.fetched} is past the log's end {highwater}",
                )
                continue
            if not self.caught_up.is_set():
                self._targets.setdefault(partition, highwater)
            if not position.in_hand and partition not in batch and highwater > position.consumed:
                position.skipped_to = max(
                    position.skipped_to, await self._consumer.position(partition)
                )
            lag = max(highwater - position.consumed, 0)
            self._lags[partition] = lag
            self._metrics.consumer_lag.labels(partition.topic, str(partition.partition)).set(lag)

    async def _out_of_range(self, partitions: list[TopicPartition]) -> None:
        mine = [p for p in partitions if p in self.positions]
        if not mine:
            return
        try:
            starts = await self._consumer.beginning_offsets(mine)
            ends = await self._consumer.end_offsets(mine)
        except kafka_errors.KafkaError:
            starts, ends = {}, {}
        for partition in mine:
            position = self.positions[partition]
            span = f"[{starts.get(partition, '?')}, {ends.get(partition, '?')}]"
            self._stall(
                partition,
                position.stored,
                f"offset {position.fetched} is no longer in the log {span} "
                "(retention, or a re-created topic)",
            )

    async def _unreadable(self, error: kafka_errors.KafkaError) -> None:
        """A fetch failed on records the client cannot read (corrupt, an unknown codec, too
        large): find the partition by asking each alone, stall it, and fetch the others again
        from where the loop stands (the failed call may have dropped records it had read)."""
        log.warning("fetch failed: %s", describe(error))
        for partition in self.positions.with_status(Status.READY):
            try:
                await self._consumer.getmany(partition, timeout_ms=0)
            except kafka_errors.KafkaError as again:
                self._stall(
                    partition,
                    self.positions[partition].stored,
                    f"records at offset {self.positions[partition].fetched} cannot be read: "
                    f"{describe(again)}",
                )
        for partition in self.positions.with_status(Status.READY):
            self._consumer.seek(partition, self.positions[partition].fetched)
        await asyncio.sleep(UNREADABLE_PAUSE_SECONDS)

    # --- applying ----------------------------------------------------------------------------

    async def _apply(self, runs: list[Run]) -> Retry | None:
        async with self._lock:
            current = [r for r in runs if self.positions.is_current(r.partition, r.epoch)]
            if not current:
                return None
            batch = Batch(
                received=[item for run in current for item in run.received],
                dead=[item for run in current for item in run.dead],
                offsets={
                    (r.partition.topic, r.partition.partition): (
                        self.positions[r.partition].stored,
                        r.next_offset,
                    )
                    for r in current
                },
            )
            started = time.perf_counter()
            try:
                applied = await self._traced_apply(batch)
            except OffsetMoved as moved:
                log.warning("batch discarded, another consumer moved a partition: %s", moved)
                for run in current:
                    self.positions.unresolve(run.partition)
                    self._consumer.pause(run.partition)
                return None
            except StorageUnavailable as error:
                return Retry(current, describe(error.__cause__ or error))
            except Unresolvable as error:
                for run in current:
                    self._stall(run.partition, self.positions[run.partition].stored, str(error))
                return None
            for run in current:
                self.positions.committed(run.partition, run.next_offset)
            self._count(batch, applied, time.perf_counter() - started)
        await self._mirror({r.partition: r.next_offset for r in current})
        return None

    async def _traced_apply(self, batch: Batch) -> Applied:
        if self._tracer is None:
            return await asyncio.to_thread(self._apply_isolating, batch)
        records = [r.record for r in batch.received] + [d.record for d in batch.dead]
        with batch_span(self._tracer, records):
            return await asyncio.to_thread(self._apply_isolating, batch)

    def _apply_isolating(self, batch: Batch) -> Applied:
        """Apply the batch; if its records make it fail, dead-letter those and apply the rest."""
        try:
            return self._apply_batch(batch, False)
        except (OffsetMoved, StorageUnavailable):
            raise
        except Exception as error:
            log.warning("a batch failed to fold (%s); isolating its records", describe(error))
        received = list(batch.received)
        poison = find_poison(received, lambda items: self._dry_run(items))
        poisoned = {index for index, _ in poison}
        dead = [
            DeadLetter(
                received[index].record,
                Rejected(
                    f"cannot be folded: {why}",
                    received[index].event.meta.tenant_id,
                    received[index].event.meta.event_id,
                    kind="unfoldable",
                ),
            )
            for index, why in poison
        ]
        remaining = [item for index, item in enumerate(received) if index not in poisoned]
        try:
            return self._apply_batch(
                replace(batch, received=remaining, dead=[*batch.dead, *dead]), False
            )
        except (OffsetMoved, StorageUnavailable):
            raise
        except Exception as error:
            raise Unresolvable(
                f"the batch fails even without its bad records: {describe(error)}"
            ) from error

    def _dry_run(self, items: Sequence[Received]) -> None:
        self._apply_batch(Batch(received=items), True)

    async def _settle(self, applying: asyncio.Task[Retry | None], stop: asyncio.Event) -> None:
        """Wait for a batch; while the database fails, retry it with a growing back-off, the
        group membership kept alive. On stop, a failing batch is left for the next start."""
        retry = await self._database(applying)
        backoff = Backoff(self._first_backoff)
        while retry is not None and not stop.is_set():
            delay = backoff.next()
            if self._backing_off is None:
                log.error("the database failed a batch (%s); retrying it", retry.why)
            else:
                log.warning("retrying a batch in %.1f s (%s)", delay, retry.why)
            self._backing_off = retry.why
            self._publish()
            await self._keep_alive(delay, stop)
            retry = await self._database(self._apply(retry.runs))
        if self._backing_off is not None and retry is None:
            log.warning("the database took the batch; consuming again")
            self._backing_off = None
            ready = self.positions.with_status(Status.READY)
            if ready:
                self._consumer.resume(*ready)
            self._publish()

    async def _database(self, work: Awaitable[T]) -> T:
        """Await a call on the database; one left unanswered past `silent_seconds` is
        reported as a back-off until it returns (what was reported before comes back)."""
        call = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({call}, timeout=self._silent_seconds)
        except asyncio.CancelledError:
            call.cancel()  # as awaiting it would
            raise
        if done:
            return call.result()
        previous = self._backing_off
        why = f"the database has not answered for {self._silent_seconds:.0f} s"
        log.error("%s; still waiting", why)
        self._backing_off = why
        self._publish()
        try:
            return await call
        finally:
            log.warning("the database answered")
            self._backing_off = previous
            self._publish()

    async def _keep_alive(self, seconds: float, stop: asyncio.Event) -> None:
        """Wait, calling getmany with every partition paused: a consumer that stops polling
        for `max_poll_interval_ms` is put out of its group. Buffered records are dropped by
        aiokafka without moving its position, so nothing is lost."""
        owned = self.positions.owned()
        if owned:
            self._consumer.pause(*owned)
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            try:
                await self._consumer.getmany(timeout_ms=int(min(left, 1.0) * 1000) + 1)
            except kafka_errors.KafkaError:
                await asyncio.sleep(min(left, 0.2))

    def _count(self, batch: Batch, applied: Applied, seconds: float) -> None:
        self._metrics.batch_seconds.observe(seconds)
        self._metrics.batch_records.observe(len(batch.received) + len(batch.dead))
        dead_by_topic: Counter[str] = Counter(d.record.topic for d in applied.dead_lettered)
        dead_by_kind = Counter((d.record.topic, d.rejection.kind) for d in applied.dead_lettered)
        for (topic, kind), count in dead_by_kind.items():
            self._metrics.events_dead_lettered.labels(topic, kind).inc(count)
        by_topic = Counter(
            [r.record.topic for r in batch.received] + [d.record.topic for d in batch.dead]
        )
        for topic, count in by_topic.items():
            self._metrics.events_folded.labels(topic).inc(count - dead_by_topic[topic])
        for ignored in applied.ignored:
            self._metrics.events_ignored.labels(ignored.kind).inc()
        for item in batch.received:
            if item.unknown_fields:
                self._unknown_fields.note(item.record.topic, item.unknown_fields)
        self._folded += applied.folded
        self._applied += len(batch.received) + len(batch.dead)
        for letter in applied.dead_lettered:
            self._log_dead_letter(letter)

    def _log_dead_letter(self, letter: DeadLetter) -> None:
        """One line a second per topic at most, saying how many were left out since."""
        record, rejection = letter.record, letter.rejection
        left_out = self._dead_letter_lines.admit(record.topic)
        if left_out is None:
            return
        log.warning(
            "dead letter %s[%d]@%d of tenant %s (%s): %s%s",
            record.topic,
            record.partition,
            record.offset,
            rejection.tenant_id or "-",
            rejection.kind,
            rejection.reason,
            f" ({left_out} more on this topic since the last line)" if left_out else "",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "tenant": rejection.tenant_id,
                "reason_kind": rejection.kind,
                "reason": rejection.reason,
                "left_out": left_out,
            },
        )

    async def _mirror(self, offsets: dict[TopicPartition, int]) -> None:
        """Mirror the offsets to Kafka so the usual lag tools see them. The database copy is
        the one Podium resumes from, so a failure here loses nothing."""
        try:
            await self._consumer.commit(offsets)
        except Exception as error:  # a rebalance in progress, typically
            log.debug("offsets not mirrored to Kafka: %s", error)

    # --- reporting ---------------------------------------------------------------------------

    async def _log_progress(self) -> None:
        """Until the first catch-up is done, every few seconds: the events folded so far,
        the records still behind, and the time left at the rate so far."""
        started = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(self.caught_up.wait(), self._progress_seconds)
                return
            except TimeoutError:
                pass
            elapsed = time.monotonic() - started
            behind = sum(lag for p, lag in self._lags.items() if p in self.positions)
            rate = self._applied / elapsed if elapsed > 0 else 0.0
            left = behind / rate if rate > 0 else None
            log.info(
                "catching up: %d events folded, %d records behind, %s left",
                self._folded,
                behind,
                "unknown time" if left is None else f"about {left:.0f} s",
                extra={
                    "folded": self._folded,
                    "lag": behind,
                    "records_per_second": round(rate, 1),
                    "eta_seconds": None if left is None else round(left, 1),
                },
            )

    def _check_caught_up(self) -> None:
        if self.caught_up.is_set() or not self._listener.joined.is_set():
            return
        if self.positions.with_status(Status.UNRESOLVED):
            return
        for partition in self.positions.with_status(Status.READY):
            target = self._targets.get(partition)
            if target is None or self.positions[partition].consumed < target:
                return  # not fetched from yet, or behind
        self.caught_up.set()
        self._metrics.caught_up.set(1)
        log.info("caught up with the topics as they were at start")

    def _publish(self) -> None:
        stalled = {
            p: self.positions[p].why_stalled for p in self.positions.with_status(Status.STALLED)
        }
        report = IngestReport(self.caught_up.is_set(), self._backing_off, stalled)
        if report == self._last_report:
            return
        previous = self._last_report.stalled if self._last_report else {}
        for partition in set(previous) | set(stalled):
            flag = 1 if partition in stalled else 0
            self._metrics.partition_stalled.labels(partition.topic, str(partition.partition)).set(
                flag
            )
        self._last_report = report
        self._report(report)
