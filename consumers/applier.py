"""Applying decoded runs: one transaction for the state and the offsets, retried while the
database fails.

- A run is applied only if it was fetched since the partition was last sought
  (`Positions.is_current`).
- **Nothing stalls silently.** A batch that fails because of the database
  (`StorageUnavailable`) is retried as it is, with a capped exponential back-off, while the
  group membership is kept alive; a batch that fails because of its records has them found and
  dead-lettered (`service.app.ingest.apply_isolating`), and the rest is folded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from opentelemetry.trace import Tracer

from consumers.backoff import Backoff, DatabaseWatch
from consumers.collector import BatchCollector
from consumers.consumer import Consumer
from consumers.fetcher import Fetcher
from consumers.positions import Positions, Status
from consumers.reporter import Reporter
from consumers.runs import Run
from service.app.ingest import Applied, ApplyBatch, Batch, Unresolvable, apply_isolating
from service.app.ports import OffsetMoved, StorageUnavailable
from service.logs import describe
from service.tracing import batch_span

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Retry:
    """A batch the database failed to take: retried as it is."""

    runs: list[Run]
    why: str


class Applier:
    def __init__(
        self,
        consumer: Consumer,
        positions: Positions,
        lock: asyncio.Lock,
        apply: ApplyBatch,
        fetcher: Fetcher,
        reporter: Reporter,
        database: DatabaseWatch,
        collector: BatchCollector,
        *,
        first_backoff: float,
        tracer: Tracer | None = None,
    ) -> None:
        self._consumer = consumer
        self._positions = positions
        self._lock = lock
        """Held while a batch is applied: a revocation waits for it."""
        self._apply_batch = apply
        self._fetcher = fetcher
        self._reporter = reporter
        self._database = database
        self._collector = collector
        """Back on while a batch waits for the database: an outage may last hours."""
        self._first_backoff = first_backoff
        self._tracer = tracer

    async def apply(self, runs: list[Run]) -> Retry | None:
        """Apply the runs still current in one batch; a `Retry` when the database failed."""
        async with self._lock:
            current = [r for r in runs if self._positions.is_current(r.partition, r.epoch)]
            if not current:
                return None
            batch = Batch(
                received=[item for run in current for item in run.received],
                dead=[item for run in current for item in run.dead],
                offsets={
                    (r.partition.topic, r.partition.partition): (
                        self._positions[r.partition].stored,
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
                    self._positions.unresolve(run.partition)
                    self._consumer.pause(run.partition)
                return None
            except StorageUnavailable as error:
                return Retry(current, describe(error.__cause__ or error))
            except Unresolvable as error:
                for run in current:
                    stored = self._positions[run.partition].stored
                    self._fetcher.stall(run.partition, stored, str(error))
                return None
            for run in current:
                self._positions.committed(run.partition, run.next_offset)
            self._reporter.applied(current, applied, time.perf_counter() - started)
        await self._mirror({r.partition: r.next_offset for r in current})
        return None

    async def _traced_apply(self, batch: Batch) -> Applied:
        if self._tracer is None:
            return await asyncio.to_thread(apply_isolating, self._apply_batch, batch, describe)
        records = [r.record for r in batch.received] + [d.record for d in batch.dead]
        with batch_span(self._tracer, records):
            return await asyncio.to_thread(apply_isolating, self._apply_batch, batch, describe)

    async def settle(self, applying: asyncio.Task[Retry | None], stop: asyncio.Event) -> None:
        """Wait for a batch; while the database fails, retry it with a growing back-off, the
        group membership kept alive. On stop, a failing batch is left for the next start."""
        retry = await self._database(applying)
        backoff = Backoff(self._first_backoff)
        while retry is not None and not stop.is_set():
            delay = backoff.next()
            if self._reporter.backing_off is None:
                log.error("the database failed a batch (%s); retrying it", retry.why)
            else:
                log.warning("retrying a batch in %.1f s (%s)", delay, retry.why)
            self._reporter.back_off(retry.why)
            self._collector.resume()
            await self._keep_alive(delay, stop)
            retry = await self._database(self.apply(retry.runs))
        if self._reporter.backing_off is not None and retry is None:
            log.warning("the database took the batch; consuming again")
            ready = self._positions.with_status(Status.READY)
            if ready:
                self._consumer.resume(*ready)
            self._reporter.back_off(None)

    async def _keep_alive(self, seconds: float, stop: asyncio.Event) -> None:
        """Wait, calling getmany with every partition paused: a consumer that stops polling
        for `max_poll_interval_ms` is put out of its group. Buffered records are dropped by
        aiokafka without moving its position, so nothing is lost."""
        owned = self._positions.owned()
        if owned:
            self._consumer.pause(*owned)
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            try:
                await self._consumer.getmany(timeout_ms=int(min(left, 1.0) * 1000) + 1)
            except kafka_errors.KafkaError:
                await asyncio.sleep(min(left, 0.2))

    async def _mirror(self, offsets: dict[TopicPartition, int]) -> None:
        """Mirror the offsets to Kafka so the usual lag tools see them. The database copy is
        the one Podium resumes from, so a failure here loses nothing."""
        try:
            await self._consumer.commit(offsets)
        except Exception as error:  # a rebalance in progress, typically
            log.debug("offsets not mirrored to Kafka: %s", error)
