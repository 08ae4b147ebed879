"""The one consumer loop for every topic: getmany -> decode -> apply -> commit.

The state and the offsets commit in one transaction, so the database, not Kafka, says where
each partition stands. Each concern has one owner, and the loop only passes work between them:

- `consumers.positions`: where each owned partition stands (the rebalance listener adds and
  drops partitions there);
- `consumers.fetcher`: seeking, fetching, and stopping a partition the log cannot be followed
  in (nothing is lost);
- `consumers.runs`: decoding (nothing escapes it: a record that cannot be decoded becomes a
  dead letter);
- `consumers.applier`: applying in one transaction, retried while the database fails, the
  records at fault isolated by `service.app.ingest` (nothing stalls silently);
- `consumers.reporter`: metrics, the first catch-up's progress, caught-up, and health;
- `consumers.collector`: the cyclic garbage collector, every few seconds while batches come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from opentelemetry.trace import Tracer

from consumers.applier import Applier, Retry
from consumers.backoff import FIRST_BACKOFF_SECONDS, SILENT_DATABASE_SECONDS, DatabaseWatch
from consumers.collector import BatchCollector
from consumers.consumer import Consumer
from consumers.fetcher import RECHECK_SECONDS, Fetcher, LoadOffsets
from consumers.rebalance import Member
from consumers.reporter import PROGRESS_SECONDS, IngestReport, Reporter
from consumers.runs import decode_runs
from service.app.ingest import ApplyBatch
from service.metrics import Metrics


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
        member: Member | None = None,
    ) -> None:
        """`member`: the group member `consumer` is, if it joined already."""
        self._consumer = consumer
        self._family_of = dict(family_of)
        self._member = member or Member(consumer)
        self.positions = self._member.positions
        lock = self._member.lock
        self._reporter = Reporter(
            self.positions,
            self._member.listener.joined,
            metrics,
            self._family_of,
            report,
            progress_seconds,
        )
        database = DatabaseWatch(self._reporter, silent_seconds)
        self._collector = BatchCollector()
        self._fetcher = Fetcher(
            consumer,
            self.positions,
            load_offsets,
            self._reporter,
            database,
            max_records=max_records,
            first_backoff=first_backoff,
            recheck_seconds=recheck_seconds,
        )
        self._applier = Applier(
            consumer,
            self.positions,
            lock,
            apply,
            self._fetcher,
            self._reporter,
            database,
            self._collector,
            first_backoff=first_backoff,
            tracer=tracer,
        )

    @property
    def caught_up(self) -> asyncio.Event:
        """Set once the first catch-up is done."""
        return self._reporter.caught_up

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Consume until `stop` is set; the batch in hand is applied before returning.
        `ready`: the loop joins its group at once but folds nothing before it is set (the
        schema migrated meanwhile: the broker holds a join for seconds, bench/RESULTS.md);
        partitions assigned until then wait, paused."""
        self._member.join(list(self._family_of))
        await self._member.started()
        applying: asyncio.Task[Retry | None] | None = None
        collector = self._collector
        self._reporter.publish()
        progress = asyncio.create_task(self._reporter.log_progress())
        try:
            if ready is not None:
                await _either(ready, stop)
            while not stop.is_set():
                await self._fetcher.resolve()
                fetched = await self._fetcher.fetch()
                if fetched:
                    collector.pause()
                # Decoding is pure, so it runs while the previous batch is still being applied
                # (on PostgreSQL that batch mostly waits on the server, with the GIL free).
                decoding = (
                    asyncio.create_task(asyncio.to_thread(decode_runs, fetched, self._family_of))
                    if fetched
                    else None
                )
                if applying is not None:
                    await self._applier.settle(applying, stop)
                    applying = None
                    collector.batch_done()
                if decoding is not None:
                    applying = asyncio.create_task(self._applier.apply(await decoding))
                else:
                    collector.resume()
                self._reporter.check_caught_up()
                self._reporter.publish()
        finally:
            progress.cancel()
            if applying is not None:
                await self._applier.settle(applying, stop)
            collector.resume()
            await self._member.leave()


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    """Return once either event is set."""
    waiters = {asyncio.create_task(first.wait()), asyncio.create_task(second.wait())}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
