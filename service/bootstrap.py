"""The composition root: the one place that builds adapters (the database and what stands on
it, the Kafka consumer and its loop, the gRPC server) from Settings and wires them to the use
cases. `podium serve`, the operator commands, the bench and the tests all start here."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from aiokafka import TopicPartition
from grpc_health.v1 import health as grpc_health
from opentelemetry.trace import Tracer
from prometheus_client import start_http_server
from sqlalchemy import Engine

import migrations
from consumers.assignment import (
    WITH_ROUND_ROBIN,
    check_co_partitioned,
)
from consumers.handover import group_member, join
from consumers.rebalance import Member
from consumers.reporter import IngestReport
from consumers.results_relay import ResultRelay, ensure_results_topic
from consumers.runner import ConsumerLoop
from consumers.topics import check_durability
from service.adapters.database import (
    create_database_engine,
    create_writer_engine,
    database_description,
    storage_failures_as_unavailable,
)
from service.adapters.keys import SqlKeyStore
from service.adapters.read_model import read_model
from service.adapters.statistics import Analyzed, TableStatistics
from service.adapters.stores.results import AdvisoryLease, SqlResultStore
from service.adapters.stores.service_state import agreed_lock_buckets, mark_caught_up
from service.adapters.unit_of_work import SqlUnitOfWork
from service.app import keys
from service.app.ingest import Applied, Batch, apply_batch
from service.app.key_store import KeyStore
from service.app.offsets import forget_new_logs
from service.app.ports import OutboxEntry, ReadModel, ResultsWork, UnitOfWork
from service.app.records import FAMILIES
from service.app.results import due_results, record_all_results
from service.app.shards import Buckets
from service.app.state_versions import keys_key
from service.clock import Clock, SystemClock
from service.config import ROLES, Settings, SettingsError
from service.domain.exact import exact
from service.domain.rules import Rules
from service.domain.standings import Thresholds
from service.grpc import API_HEALTH, INGEST_HEALTH
from service.grpc.auth import STALE_VERSIONS_SECONDS, KeyCache, KeyUses, TokenBuckets
from service.grpc.cache import AnswerCache
from service.grpc.connections import connection_options
from service.grpc.health_check import dialable
from service.grpc.server import (
    QUERY_SERVICES,
    Guard,
    create_health_server,
    create_server,
    set_health,
)
from service.grpc.servicers import QueryDeps
from service.grpc.state_versions import StateVersions
from service.grpc.watchers import Watchers
from service.metrics import Metrics
from service.result_events import encode
from service.tracing import tracer_of, tracer_provider

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)
T = TypeVar("T")

GC_THRESHOLDS = (50_000, 2, 200)
"""Allocations between two collections of the youngest generation (CPython's default: 700);
young collections between two of the middle one (default 10); middle ones between two full
ones (default 10, and CPython also waits until a quarter of the old objects are new)."""
MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024
API_WORKERS = 4
"""Threads building answers (and reading state versions) for the API: its own, so a flood of
calls queues there and never in front of ingest, which folds on asyncio's default workers."""
KEY_WORKERS = 2
"""Threads looking keys up and recording their use: apart from the answers' workers, so a
flood of unknown keys waits behind itself, not in front of other tenants' answers."""
STATISTICS_CHECK_SECONDS = 1.0
"""After batches, whether a table grew enough to be analyzed is looked at most this often."""
RESULTS_CHECK_SECONDS = 5.0
"""How often the clock is asked whether a window froze when no batch comes (docs/rules.md
#results-out); after batches, at most once every RESULTS_AFTER_BATCH_SECONDS."""
RESULTS_AFTER_BATCH_SECONDS = 1.0
RELAY_STOP_SECONDS = 10.0
"""On stop, how long the relay may take to finish the send in hand and close its producer."""


def collect_garbage_less_often() -> None:
    """Collect cyclic garbage in larger, rarer steps, and never over the startup heap.

    A batch of events and a big answer each allocate tens of thousands of objects that live
    until the batch or the answer is done. At CPython's default the collector runs every 700
    allocations and carries those survivors into older generations, where it traverses them
    again and again: that was half of ranking a big month (bench/RESULTS.md, "Figures once
    in docstrings"). Cycles are still collected, only less often; `freeze` keeps the modules,
    tables and compiled queries loaded at startup out of every collection.

    The middle generation is collected every second young collection: every object that
    reaches it is traversed there once whatever the threshold, but a collection holds every
    thread for as long as it runs, and a month's board (three tracked objects per driver,
    rebuilt up to twice a second under ingest) made those of 20 young collections hold
    `podium serve` far longer than these do (bench/RESULTS.md). Full collections stay as rare
    as before (2 x 200 = 20 x 20 young collections)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class LongLived:
    """Keeps what lives long out of the collector's sight: the boards an API instance keeps
    hold hundreds of thousands of objects that a full collection would traverse every time,
    holding every thread while it runs (bench/RESULTS.md, issue 23: calls whose p99 was the
    length of one such pause). Told that a big value was kept, it
    collects the young generations (cheap) and freezes everything that survived; boards hold
    no cycles, so they are still freed, by reference counting, when let go. Every
    `renew_seconds` everything is unfrozen and collected in full first, so that a cycle
    frozen while it was alive and that became garbage since is collected in the end."""

    def __init__(self, renew_seconds: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self._renew = renew_seconds
        self._clock = clock
        self._renewed = clock()

    def __call__(self) -> None:
        now = self._clock()
        if now - self._renewed >= self._renew:
            gc.unfreeze()
            gc.collect()  # the one long pause, every `renew_seconds`
            self._renewed = now
        else:
            gc.collect(1)
        gc.freeze()


def lock_buckets(settings: Settings, partitions: int | None = None) -> Buckets:
    """The lock buckets this instance proposes (`Storage.lock_buckets`): as many as the
    topics' partitions (None: as many as it would create), by the producers' partitioner."""
    return Buckets(partitions or settings.topic_partitions, settings.lock_partitioner)


def rules_from(settings: Settings) -> Rules:
    return Rules(
        driver_thresholds=Thresholds(settings.min_trips, exact(settings.min_distance_km)),
        late_event_grace=settings.late_event_grace,
    )


@dataclass(frozen=True)
class Storage:
    """The database and the ports built over it. `writer`: the ingest's own engine, if it has
    one (`create_writer_engine`); units of work use it, everything else `engine`.
    `statistics`: what the units of work add to each table is counted there, for ANALYZE."""

    engine: Engine
    writer: Engine | None = None
    statistics: TableStatistics | None = None

    @classmethod
    def of(cls, database_url: str) -> Storage:
        """The database at `database_url` as an instance uses it: queries and the ingest on
        engines of their own, the planner's statistics kept (not for an in-memory SQLite
        database, which has no writer of its own: ANALYZE would share its one connection
        with the batch in hand)."""
        engine = create_database_engine(database_url)
        writer = create_writer_engine(database_url)
        return cls(engine, writer, None if writer is None else TableStatistics(engine))

    def unit_of_work(self) -> UnitOfWork:
        return SqlUnitOfWork(self.writer or self.engine, self.statistics)

    def results_work(self) -> ResultsWork:
        """A transaction that notices freezes and writes their results (the ingest's)."""
        return SqlUnitOfWork(self.writer or self.engine, self.statistics)

    def list_results(
        self, tenant_id: str | None, unsent_only: bool, limit: int | None
    ) -> list[OutboxEntry]:
        with self.engine.connect() as connection:
            return SqlResultStore(connection).listed(tenant_id, unsent_only, limit)

    def relay_lease(self) -> AdvisoryLease:
        return AdvisoryLease(self.engine)

    def read(self, *, statement_timeout: float | None = None) -> AbstractContextManager[ReadModel]:
        return read_model(self.engine, statement_timeout)

    def lock_buckets(self, proposed: Buckets) -> Buckets:
        """The lock buckets the writers share: `proposed` if none were agreed yet
        (`agreed_lock_buckets`)."""
        with self.engine.begin() as connection:
            return agreed_lock_buckets(connection, proposed)

    def mark_caught_up(self, group: str, now: datetime) -> None:
        with self.engine.begin() as connection:
            mark_caught_up(connection, group, now)

    def keys(self) -> KeyStore:
        return SqlKeyStore(self.engine)

    def create_key(
        self, tenant_id: str, scopes: str, now: datetime, expires_in: timedelta | None = None
    ) -> str:
        return keys.create_key(self.keys(), tenant_id, scopes, now, expires_in)

    def close(self) -> None:
        self.engine.dispose()
        if self.writer is not None:
            self.writer.dispose()


def open_storage(database_url: str, *, migrate: bool = False) -> Storage:
    """The database at `database_url`: migrated first (`podium migrate`, `podium serve`), or
    checked to be current (every other command refuses a schema that is behind)."""
    engine = create_database_engine(database_url)
    try:
        if migrate:
            migrations.upgrade(engine)
        else:
            migrations.check_current(engine)
    except BaseException:
        engine.dispose()
        raise
    return Storage(engine)


@contextlib.contextmanager
def storage(database_url: str, *, migrate: bool = False) -> Any:
    opened = open_storage(database_url, migrate=migrate)
    try:
        yield opened
    finally:
        opened.close()


def consumer_loop(
    settings: Settings,
    store: Storage,
    clock: Clock,
    metrics: Metrics,
    report: Callable[[IngestReport], None] = lambda _: None,
    tracer: Tracer | None = None,
    committed: Callable[[], None] = lambda: None,
    member: Member | None = None,
) -> ConsumerLoop:
    """The consumer loop over the real broker and database. `committed` is called (on the
    ingest's thread) after each batch that committed; `member`: the group member, if it
    joined already (`consumers.handover.join`), else one offering every assignor."""
    rules = rules_from(settings)
    buckets: list[Buckets] = []

    def apply(batch: Batch, dry_run: bool) -> Applied:
        with storage_failures_as_unavailable():
            if not buckets:  # agreed at start (`fold_when_ready`): read once
                buckets.append(store.lock_buckets(lock_buckets(settings)))
            applied = apply_batch(
                store.unit_of_work,
                batch,
                rules=rules,
                consumer_group=settings.consumer_group,
                now=clock.now(),
                buckets=buckets[0],
                dry_run=dry_run,
            )
        if not dry_run:
            committed()
        return applied

    def load_offsets(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        wanted = {(p.topic, p.partition) for p in partitions}
        with storage_failures_as_unavailable(), store.read() as read:
            stored = read.stored_offsets(settings.consumer_group)
        return {TopicPartition(*tp): offset for tp, offset in stored.items() if tp in wanted}

    return ConsumerLoop(
        group_member(settings, WITH_ROUND_ROBIN) if member is None else member.consumer,
        {settings.topic(f): f for f in FAMILIES},
        apply,
        load_offsets,
        metrics,
        max_records=settings.batch_max_records,
        report=report,
        tracer=tracer,
        member=member,
    )


class PlannerStatistics:
    """The planner's statistics kept by Podium: every table analyzed after the first catch-up,
    and the tables that grew by more than their share, after batches (on PostgreSQL from the
    first batch on)."""

    def __init__(self, statistics: Callable[[], TableStatistics | None], metrics: Metrics) -> None:
        self._statistics = statistics
        """The storage's statistics as they are when asked (a test may swap the storage)."""
        self._metrics = metrics
        self.committed = asyncio.Event()
        """A batch committed since the statistics were last looked at."""

    async def keep(self, analyzed_all: asyncio.Event) -> None:
        """After batches, at most once every STATISTICS_CHECK_SECONDS, analyze the tables that
        grew by more than their share since their last ANALYZE: from the first batch on where
        the statistics say so (`TableStatistics.during_catch_up`), else once every table was
        analyzed after the first catch-up (`analyzed_all`)."""
        statistics = self._statistics()
        if statistics is None or not statistics.during_catch_up:
            await analyzed_all.wait()
        while True:
            await self.committed.wait()
            self.committed.clear()
            await self.analyze(TableStatistics.analyze_grown)
            await asyncio.sleep(STATISTICS_CHECK_SECONDS)

    async def analyze(self, which: Callable[[TableStatistics], list[Analyzed]]) -> None:
        """Run ANALYZE on a worker thread, counting each table's outcome; a failure is logged
        and never fatal (the first catch-up is served without fresh statistics then)."""
        statistics = self._statistics()
        if statistics is None:
            return
        try:
            outcomes = await asyncio.to_thread(which, statistics)
        except Exception:
            log.error("the planner's statistics were not refreshed", exc_info=True)
            return
        for outcome in outcomes:
            result = "done" if outcome.failure is None else "failed"
            self._metrics.table_analyzes.labels(outcome.table, result).inc()


class ResultsOut:
    """Results out, once the state has caught up (a window's result is built from the state:
    before the first catch-up, it could miss events that arrived before its freeze): frozen
    windows looked for after batches and by the clock, their results recorded in the outbox
    and relayed (docs/rules.md#results-out)."""

    def __init__(
        self, settings: Settings, storage: Storage, rules: Rules, clock: Clock, metrics: Metrics
    ) -> None:
        self._storage = storage
        self._rules = rules
        self._clock = clock
        self._metrics = metrics
        self.committed = asyncio.Event()
        """A batch committed since frozen windows were last looked for."""
        self.relay = ResultRelay(
            settings,
            storage.results_work,
            storage.relay_lease(),
            clock,
            on_sent=metrics.results_sent.inc,
        )
        self._relay_task: asyncio.Task[None] | None = None

    @classmethod
    def started(cls, podium: Podium) -> ResultsOut:
        """Results out of `podium`'s storage, running until it stops consuming."""
        out = cls(podium.settings, podium.storage, podium.rules, podium.clock, podium.metrics)
        out._relay_task = asyncio.create_task(
            out.relay.run(podium._stop_consuming), name="results-relay"
        )
        podium._spawn(out._relay_task_done())
        podium._spawn(out._record_results())
        return out

    async def _relay_task_done(self) -> None:
        if self._relay_task is not None:
            await self._relay_task

    async def stopped(self) -> None:
        """The relay stops by itself (its producer closed): a send in hand ends first."""
        if self._relay_task is not None:
            # Waited for, never awaited: a relay already cancelled or failed (reported by its
            # own task) must not fail the stop.
            await asyncio.wait({self._relay_task}, timeout=RELAY_STOP_SECONDS)

    def _record_due(self, known: set[str]) -> int:
        """Record the results of the windows frozen by now; `known`: the ones known to be
        recorded already, so that most rounds read and write nothing."""
        now = self._clock.now()
        with self._storage.read() as read:
            due = due_results(read, self._rules, now)
        if due <= known:
            return 0
        recorded = record_all_results(self._storage.results_work, self._rules, now, encode)
        known.update(due)  # every window frozen by `now` is recorded now
        return recorded

    async def _record_results(self) -> None:
        """Write the results of the windows that froze: after batches (their arrival times
        may freeze a window) and every RESULTS_CHECK_SECONDS (the clock may)."""
        known: set[str] = set()
        while True:
            self.committed.clear()
            try:
                recorded = await asyncio.to_thread(self._record_due, known)
            except Exception:
                log.error("frozen windows were not looked for; again soon", exc_info=True)
                recorded = 0
            if recorded:
                log.info("recorded the results of %d frozen window(s)", recorded)
                self._metrics.results_recorded.inc(recorded)
                self.relay.wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.committed.wait(), RESULTS_CHECK_SECONDS)
            await asyncio.sleep(RESULTS_AFTER_BATCH_SECONDS)


async def fold_when_ready(
    settings: Settings,
    storage: Storage,
    metrics: Metrics,
    member: Member | None,
    ready: asyncio.Event,
) -> None:
    """What must be done before a batch is folded, while the member joins: the schema
    migrated (`migrations.upgrade`: nothing, and no Alembic import, when it is current);
    with a member, the topics checked (durable, co-partitioned: refused otherwise, before
    anything is folded), the results topic made, the offsets stored for topics just created
    forgotten, the lock buckets agreed (as many as the topics' partitions if no writer agreed
    on them before), and the engines' first connections opened (the stored offsets read
    once), so that the first batch does not wait for them. `ready` is set then."""

    def work() -> None:
        migrations.upgrade(storage.engine)
        if member is None:
            return
        if member.created:
            forget_offsets(storage, settings, list(member.created))
        with storage.read() as read:
            read.stored_offsets(settings.consumer_group)
        if storage.writer is not None:
            with storage.writer.connect() as connection:
                connection.exec_driver_sql("SELECT 1")

    if member is None:
        await asyncio.to_thread(work)
    else:
        *_, partitions = await asyncio.gather(
            asyncio.to_thread(work),
            ensure_results_topic(settings),
            check_durability(settings, metrics),
            check_co_partitioned(settings),
        )
        await asyncio.to_thread(storage.lock_buckets, lock_buckets(settings, partitions))
    ready.set()


async def start_servers(
    settings: Settings, queries: tuple[QueryDeps, Guard] | None, metrics: Metrics
) -> tuple[grpc.aio.Server, int, grpc_health.aio.HealthServicer, grpc.aio.Server | None]:
    """The metrics' listener (`PODIUM_METRICS_ADDRESS`), the gRPC server (the API with
    `queries`, health always) and, when `PODIUM_HEALTH_ADDRESS` is set, the plaintext health
    listener, started."""
    if settings.metrics_address:
        host, _, listened = settings.metrics_address.rpartition(":")
        start_http_server(int(listened), host, registry=metrics.registry)
    server, port, health = create_server(
        settings.grpc_address,
        queries,
        server_credentials(settings),
        connection_options(settings.max_connection_age_seconds, settings.shutdown_grace_seconds),
    )
    await server.start()
    health_server = None
    if settings.health_address:
        health_server, health_port = create_health_server(settings.health_address, health)
        await health_server.start()
        log.info("health alone, plaintext, on %s (port %d)", settings.health_address, health_port)
    return server, port, health, health_server


def forget_offsets(storage: Storage, settings: Settings, topics: list[str]) -> None:
    """Topics just created start from their beginning, whatever was stored of an older log."""
    stale = forget_new_logs(storage.unit_of_work, settings.consumer_group, topics)
    if stale:
        log.warning(
            "created topics %s, which had stored offsets from an older log; "
            "reading the new ones from their start",
            ", ".join(stale),
        )


async def watch_group_caught_up(storage: Storage, settings: Settings, event: asyncio.Event) -> None:
    """Set `event` once some consumer of the group has caught up once (what API-only instances
    wait for to be ready)."""
    group = settings.consumer_group

    def has_caught_up() -> bool:
        with storage.read() as read:
            return read.has_caught_up(group)

    while not event.is_set():
        if await asyncio.to_thread(has_caught_up):
            event.set()
        else:
            await asyncio.sleep(0.5)


async def supervise(
    run: Coroutine[Any, Any, None], stopping: asyncio.Event, failed: asyncio.Event
) -> None:
    """Run the consumer loop; set `failed` if it fails or ends before `stopping` is set."""
    try:
        await run
    except Exception:
        log.critical("the consumer loop failed; stopping Podium", exc_info=True)
        failed.set()
        return
    if not stopping.is_set():
        log.critical("the consumer loop ended on its own; stopping Podium")
        failed.set()


class Podium:
    """One running instance: the API, the consumers, or both. Every role serves health."""

    def __init__(
        self,
        settings: Settings,
        role: str = "all",
        clock: Clock | None = None,
        tracing: TracerProvider | None = None,
        member: Member | None = None,
    ) -> None:
        """`tracing`: where spans go (default: OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is
        set, else no tracing at all); `member`: the group member, if it joined already."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if role != "api" and not settings.kafka_bootstrap_servers:
            raise SettingsError("KAFKA_BOOTSTRAP_SERVERS is not set")
        self.settings = settings
        self.role = role
        self._serves_api = role in ("all", "api")
        self._consumes = role in ("all", "consumers")
        self._api_health = ("", API_HEALTH, *QUERY_SERVICES) if self._serves_api else ()
        self._ingest_health = (INGEST_HEALTH,) if self._serves_api else ("", INGEST_HEALTH)
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.tracing = tracing or tracer_provider(settings)
        self._tracer = tracer_of(self.tracing)
        self.storage = Storage.of(settings.database_url)
        self.rules = rules_from(settings)
        self.port = 0
        self.ready = asyncio.Event()
        """Queries answer: the state has caught up once (here, or in another instance)."""
        self.failed = asyncio.Event()
        """The consumer loop died: the process must stop (never a zombie API)."""
        self.loop: ConsumerLoop | None = None
        self._member = member
        self._state_complete = asyncio.Event()
        """The first catch-up is done and the planner's statistics were refreshed after it."""
        self._ingest_report: IngestReport | None = None
        self._statistics = PlannerStatistics(lambda: self.storage.statistics, self.metrics)
        self._results: ResultsOut | None = None
        self._stop_consuming = asyncio.Event()
        self._consumer_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._health: grpc_health.aio.HealthServicer | None = None
        self._draining = False
        self._versions: StateVersions | None = None
        self._api_workers: ThreadPoolExecutor | None = None
        self._key_workers: ThreadPoolExecutor | None = None
        self.key_uses: KeyUses | None = None

    async def start(self) -> None:
        """A consuming instance joins its group first (`consumers.handover.join`, unless it
        joined before): the broker holds a join for seconds (half the session on the local
        one), in which the rest is done (`fold_when_ready`) and the servers start."""
        if self._consumes and self._member is None:
            self._member = await join(self.settings)
        ready = asyncio.Event()
        schema = asyncio.create_task(
            fold_when_ready(self.settings, self.storage, self.metrics, self._member, ready)
        )
        if self._consumes:
            self._start_consumers(ready)
        if self._serves_api:
            await asyncio.shield(schema)
        queries = await self._query_deps() if self._serves_api else None
        self._server, self.port, self._health, self._health_server = await start_servers(
            self.settings, queries, self.metrics
        )
        ingest = self._ingest_health if self._consumes else ()
        await self._set_health((*self._api_health, *ingest), False)
        if self._ingest_report is not None:  # the loop reported before health was served
            self._ingest_changed(self._ingest_report)
        await asyncio.shield(schema)
        if self._serves_api and self.loop is None:
            group_caught_up = asyncio.Event()
            self._spawn(watch_group_caught_up(self.storage, self.settings, group_caught_up))
            self._spawn(self._when_caught_up(group_caught_up))

    async def _query_deps(self) -> tuple[QueryDeps, Guard]:
        settings = self.settings
        self._api_workers = ThreadPoolExecutor(API_WORKERS, thread_name_prefix="podium-api")
        self._key_workers = ThreadPoolExecutor(KEY_WORKERS, thread_name_prefix="podium-keys")
        versions = StateVersions(
            lambda: self._read(lambda read: read.state_versions()), self._api_workers
        )
        await versions.start()
        self._versions = versions
        deps = QueryDeps(
            answers=AnswerCache(
                self.storage.read,
                versions.state,
                while_rebuilding=settings.max_staleness_seconds,
                budget_bytes=settings.board_cache_mb * 2**20,
                on_big_value=LongLived(),
                executor=self._api_workers,
                statement_timeout=settings.statement_timeout_seconds,
                on_hit=lambda kind: self.metrics.answer_cache_hits.labels(kind).inc(),
                on_build=lambda kind: self.metrics.answer_builds.labels(kind).inc(),
            ),
            versions=versions,
            clock=self.clock,
            rules=self.rules,
            is_ready=self.ready.is_set,
            watchers=Watchers(settings.max_watchers),
        )
        store = self.storage.keys()
        loop = asyncio.get_running_loop()
        workers = self._key_workers

        async def on_key_workers(work: Callable[[], T]) -> T:
            return await loop.run_in_executor(workers, work)

        def keys_version() -> int | None:
            fresh = versions.age() < STALE_VERSIONS_SECONDS
            return versions.version(keys_key()) if fresh else None

        self.key_uses = KeyUses(store.record_use, run=on_key_workers)
        self._spawn(self.key_uses.run())
        guard = Guard(
            keys=KeyCache(lambda key: keys.find_key(store, key), keys_version, run=on_key_workers),
            clock=self.clock,
            max_request_bytes=settings.max_request_bytes,
            max_concurrent_calls=settings.max_concurrent_calls,
            rates=TokenBuckets(settings.rate_limit_per_key),
            uses=self.key_uses,
            metrics=self.metrics,
            tracer=self._tracer,
        )
        return deps, guard

    def _start_consumers(self, ready: asyncio.Event) -> None:
        running = asyncio.get_running_loop()

        def committed() -> None:
            running.call_soon_threadsafe(self._statistics.committed.set)
            if self._results is not None:
                running.call_soon_threadsafe(self._results.committed.set)

        self.loop = consumer_loop(
            self.settings,
            self.storage,
            self.clock,
            self.metrics,
            self._ingest_changed,
            self._tracer,
            committed,
            self._member,
        )
        stop = self._stop_consuming
        self._consumer_task = asyncio.create_task(
            supervise(self.loop.run(stop, ready), stop, self.failed),
            name="consumer-loop",
        )
        self._spawn(self._record_caught_up(self.loop.caught_up))
        self._spawn(self._statistics.keep(self._state_complete))

    def _ingest_changed(self, report: IngestReport) -> None:
        """Ingest is healthy once its first catch-up is done and analyzed, while it folds."""
        self._ingest_report = report
        healthy = report.healthy and self._state_complete.is_set()
        self._spawn(self._set_health(self._ingest_health, healthy))

    async def _set_health(self, names: tuple[str, ...], serving: bool) -> None:
        """Once draining, every service stays NOT_SERVING whatever the state does."""
        if self._health is not None:
            await set_health(self._health, names, serving and not self._draining)

    async def _when_caught_up(self, caught_up: asyncio.Event) -> None:
        await caught_up.wait()
        self.ready.set()
        self.metrics.caught_up.set(1)
        await self._set_health(self._api_health, True)
        log.info("state caught up; serving")

    async def _record_caught_up(self, caught_up: asyncio.Event) -> None:
        """Once the first catch-up is done: every table analyzed (a rebuilt database never
        was: docs/operations.md#the-planners-statistics), then the API answers and ingest says
        it is healthy, and API-only instances of the group are told the state is complete
        (growing tables are analyzed again as `PlannerStatistics.keep` says)."""
        await caught_up.wait()
        await self._statistics.analyze(TableStatistics.analyze_all)
        self._state_complete.set()
        if self._serves_api:
            await self._when_caught_up(self._state_complete)
        if self._ingest_report is not None:
            self._ingest_changed(self._ingest_report)
        await asyncio.to_thread(
            self.storage.mark_caught_up, self.settings.consumer_group, self.clock.now()
        )
        self._results = ResultsOut.started(self)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _read(self, query: Callable[[ReadModel], T]) -> T:
        with self.storage.read() as read:
            return query(read)

    async def drain(self, cut_short: asyncio.Event | None = None) -> None:
        """Say NOT_SERVING on every health service and keep answering for
        `PODIUM_DRAIN_SECONDS`, so that load balancers stop sending calls here before the
        listener closes; `cut_short` (a second signal) ends the wait sooner. A `--role
        consumers` instance takes no calls a balancer sends: it does not wait, so its
        partitions move to its replacement at once."""
        self._draining = True
        await self._set_health((*self._api_health, *self._ingest_health), False)
        seconds = self.settings.drain_seconds
        if seconds > 0 and self._serves_api:
            log.info(
                "draining: NOT_SERVING, answering calls for %g s more (PODIUM_DRAIN_SECONDS; "
                "a second signal stops now)",
                seconds,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for((cut_short or asyncio.Event()).wait(), seconds)

    async def stop(self) -> None:
        """Let the batch in hand commit and leave the group first (its partitions move to
        another member at once), stop taking calls, let those in flight finish within
        `PODIUM_SHUTDOWN_GRACE_SECONDS`, then close everything."""
        self._draining = True
        await self._set_health((*self._api_health, *self._ingest_health), False)
        self._stop_consuming.set()
        if self._consumer_task is not None:
            await self._consumer_task
        if self._member is not None:  # left by the loop, unless it never ran
            await self._member.leave()
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace_seconds)
        if self._health_server is not None:
            await self._health_server.stop(None)
        if self._versions is not None:
            await self._versions.stop()
        if self._results is not None:
            await self._results.stopped()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for workers in (self._api_workers, self._key_workers):
            if workers is not None:
                workers.shutdown(wait=True)
        if self.tracing is not None:
            self.tracing.shutdown()
        self.storage.close()


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS for the API when its certificate and key are set; with a client CA, mutual TLS
    (a client must present a certificate that CA signed)."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    cert = _read_setting_file("PODIUM_TLS_CERT_FILE", settings.tls_cert_file)
    key = _read_setting_file("PODIUM_TLS_KEY_FILE", settings.tls_key_file)
    ca = (
        None
        if settings.tls_client_ca_file is None
        else _read_setting_file("PODIUM_TLS_CLIENT_CA_FILE", settings.tls_client_ca_file)
    )
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


def health_target(settings: Settings) -> tuple[str, grpc.ChannelCredentials | None]:
    """Where `podium health` asks, and how: the plaintext health listener when there is one
    (`PODIUM_HEALTH_ADDRESS`), else the API as its own settings serve it. Over TLS it
    trusts `PODIUM_HEALTH_TLS_CA_FILE` (else the API's certificate file, enough when that
    holds the chain up to its root); under mutual TLS it presents
    `PODIUM_HEALTH_TLS_CERT_FILE` and its key (else the API's own certificate and key,
    enough when the client CA signed them for client use too)."""
    if settings.health_address:
        return dialable(settings.health_address), None
    address = dialable(settings.grpc_address)
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return address, None
    if settings.health_tls_ca_file:
        roots = _read_setting_file("PODIUM_HEALTH_TLS_CA_FILE", settings.health_tls_ca_file)
    else:
        roots = _read_setting_file("PODIUM_TLS_CERT_FILE", settings.tls_cert_file)
    if settings.tls_client_ca_file is None:
        return address, grpc.ssl_channel_credentials(roots)
    if settings.health_tls_cert_file and settings.health_tls_key_file:
        cert = _read_setting_file("PODIUM_HEALTH_TLS_CERT_FILE", settings.health_tls_cert_file)
        key = _read_setting_file("PODIUM_HEALTH_TLS_KEY_FILE", settings.health_tls_key_file)
    else:
        cert = _read_setting_file("PODIUM_TLS_CERT_FILE", settings.tls_cert_file)
        key = _read_setting_file("PODIUM_TLS_KEY_FILE", settings.tls_key_file)
    return address, grpc.ssl_channel_credentials(roots, key, cert)


def _read_setting_file(name: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise SettingsError(f"{name}={path!r} cannot be read: {error.strerror}") from None


async def serve(
    settings: Settings,
    role: str,
    stop: asyncio.Event,
    hurry: asyncio.Event | None = None,
    member: Member | None = None,
) -> int:
    """Run until `stop` is set (drain, then stop: 0) or the consumer loop dies (1, after a
    clean gRPC stop). `hurry` cuts the drain short; `member`: the group member, if the
    process joined before it loaded this module (`service.cli`)."""
    log_database_choice(settings, role)
    podium = Podium(settings, role, member=member)
    try:
        await podium.start()
        collect_garbage_less_often()
        if podium.port:
            log.info("gRPC on %s (port %d)", settings.grpc_address, podium.port)
        stopping = asyncio.ensure_future(stop.wait())
        failing = asyncio.ensure_future(podium.failed.wait())
        await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (stopping, failing):
            waiter.cancel()
        if not podium.failed.is_set():
            await podium.drain(hurry)
    finally:
        await podium.stop()
    return 1 if podium.failed.is_set() else 0


def log_database_choice(settings: Settings, role: str) -> None:
    """Say which database the state is kept in (never its password), and warn when it is a
    local SQLite file while the events come from a Kafka elsewhere: an instance started
    without `DATABASE_URL` would keep state on its own disk, lost with it and shared with
    no other instance."""
    where = database_description(settings.database_url)
    log.info("state in %s", where)
    if (
        role != "api"
        and where.startswith("sqlite")
        and settings.kafka_bootstrap_servers
        and not _all_local(settings.kafka_bootstrap_servers)
    ):
        log.warning(
            "state is kept in a local SQLite file (%s) while events come from %s: set "
            "DATABASE_URL to the PostgreSQL the instances share, or the state is lost with "
            "this disk",
            where,
            settings.kafka_bootstrap_servers,
        )


def _all_local(servers: str) -> bool:
    hosts = (server.strip().rpartition(":")[0].strip("[]") for server in servers.split(","))
    return all(host in ("localhost", "127.0.0.1", "::1") for host in hosts)
