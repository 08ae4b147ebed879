"""The relay of results: from the outbox (`service.app.results`) to `<prefix>results`, keyed
by tenant, in outbox order, each result marked sent only once the broker acknowledged it.

Exactly once, by event id: a result is sent under the id its window derives, so a send that
is retried, or repeated by a relay that died between the broker's acknowledgement and its
mark, carries the same id. Before sending, the relay reads the topic back from when the
oldest result to send froze (`PublishedIndex`, each record once) and marks the results it
finds there instead of sending them: a crash in that gap, or a database rebuilt from the
topics that records old windows again, writes nothing twice. One relay sends at a time across
instances (`RelayLease`); the producer is idempotent (a retried batch is written once) when
the broker grants it a producer id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from podium.events.v1 import results_pb2

from consumers.connection import kafka_options
from consumers.topics import creation_configs
from service.app.ports import ResultsWork
from service.app.results import mark_sent, unsent_results
from service.clock import Clock
from service.config import Settings
from service.logs import describe
from service.result_events import record_value

log = logging.getLogger(__name__)

RESULTS = "results"
BATCH = 100
"""Results sent before their marks are written, at most."""
IDLE_SECONDS = 1.0
"""How long an idle relay waits before looking at the outbox again (a new result wakes it)."""
MAX_BACKOFF_SECONDS = 30.0
FETCH_MS = 1000
END_FETCH_MS = 300
"""How long a fetch at what may be the log's end waits for more records."""
CLOCK_SKEW = timedelta(minutes=5)
"""How much earlier than a result's window froze the topic is read for it: the instance that
sent it (or the producers whose arrival times froze it) may have had a clock behind ours."""


class RelayLease(Protocol):
    """Who sends: one relay at a time across the instances sharing a database."""

    def acquire(self) -> bool:
        """Whether this relay holds the lease now (kept until `release`)."""

    def release(self) -> None: ...


async def ensure_results_topic(settings: Settings) -> None:
    """Create `<prefix>results` when it is missing, as durable as the topics Podium reads."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        name = settings.topic(RESULTS)
        if name in await admin.list_topics():
            return
        topic = NewTopic(
            name,
            settings.topic_partitions,
            settings.topic_replication_factor,
            topic_configs=creation_configs(settings),
        )
        with contextlib.suppress(TopicAlreadyExistsError):  # another instance was first
            await admin.create_topics([topic])
        log.info("created topic %s", name)
    finally:
        await admin.close()


class ResultRelay:
    def __init__(
        self,
        settings: Settings,
        work: Callable[[], ResultsWork],
        lease: RelayLease,
        clock: Clock,
        on_sent: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._settings = settings
        self._work = work
        self._lease = lease
        self._clock = clock
        self._on_sent = on_sent
        self._topic = settings.topic(RESULTS)
        self.wake = asyncio.Event()
        """Set when a result may be waiting (one was just recorded)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; failures are logged and retried with a back-off."""
        backoff = IDLE_SECONDS
        while not stop.is_set():
            try:
                await self._relay(stop)
                return
            except Exception as error:  # the broker or the database: retried, never fatal
                log.warning("relaying results failed (%s); again in %g s", describe(error), backoff)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _relay(self, stop: asyncio.Event) -> None:
        producer = await _producer(self._settings)
        index = PublishedIndex(self._settings)
        try:
            held = False
            while not stop.is_set():
                if not held:
                    held = await asyncio.to_thread(self._lease.acquire)
                    if not held:
                        await _wait(stop, IDLE_SECONDS)
                        continue
                if not await self._send_some(producer, index):
                    self.wake.clear()
                    await _wait(stop, IDLE_SECONDS, self.wake)
        finally:
            await producer.stop()
            await asyncio.to_thread(self._lease.release)

    async def _send_some(self, producer: AIOKafkaProducer, index: PublishedIndex) -> int:
        """Send the oldest unsent results, but mark those the topic holds already (a relay
        died after the broker acknowledged them, before its marks; or the database was
        rebuilt from the topics and recorded old windows again); returns how many."""
        pending = await asyncio.to_thread(unsent_results, self._work, BATCH)
        if not pending:
            return 0
        # No result goes out before its window froze, nor before it was recorded.
        since = min(min(e.occurred_at, e.recorded_at or e.occurred_at) for e in pending)
        published = await index.since(since - CLOCK_SKEW)
        there = [e for e in pending if e.event_id in published]
        if there:
            log.info("%d unsent result(s) were already in %s: marked sent", len(there), self._topic)
        sending = [e for e in pending if e.event_id not in published]
        acks = []
        for entry in sending:
            value, headers = record_value(entry.payload, self._settings.results_format)
            acks.append(
                await producer.send(
                    self._topic, value, key=entry.tenant_id.encode(), headers=headers
                )
            )
        await asyncio.gather(*acks)  # every record acknowledged before any mark
        await asyncio.to_thread(mark_sent, self._work, [e.id for e in pending], self._clock.now())
        if sending:
            self._on_sent(len(sending))
            log.info("sent %d result(s) to %s", len(sending), self._topic)
        return len(pending)


class PublishedIndex:
    """The event ids in `<prefix>results`, read as far back as asked, each record read once
    over the relay's life: every partition's range read so far is kept, and only what lies
    outside it (older records asked for, newer records written since) is read."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topic = settings.topic(RESULTS)
        self._read: dict[TopicPartition, tuple[int, int]] = {}
        self._ids: set[str] = set()

    async def since(self, moment: datetime) -> set[str]:
        """The ids of the results written from `moment` on (and perhaps earlier ones)."""
        consumer = AIOKafkaConsumer(**kafka_options(self._settings), enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()  # the metadata of every topic, ours included
            numbers = sorted(consumer.partitions_for_topic(self._topic) or ())
            partitions = [TopicPartition(self._topic, p) for p in numbers]
            if not partitions:
                return self._ids
            ends = await consumer.end_offsets(partitions)
            stamp = int(moment.timestamp() * 1000)
            starts = await consumer.offsets_for_times({tp: stamp for tp in partitions})
            consumer.assign(partitions)
            for tp in partitions:
                found = starts.get(tp)  # none written since (the local broker: timestamp -1)
                start = ends[tp] if found is None or found.timestamp < 0 else found.offset
                low, high = self._read.get(tp, (start, start))
                if start < low:
                    await self._read_range(consumer, tp, start, low)
                # To the log's end as fetching finds it: a broker may report an end that
                # falls short of it (the local broker's ends one past a batch's first record).
                end = await self._read_range(consumer, tp, high, ends[tp], to_the_end=True)
                self._read[tp] = (min(start, low), max(high, end))
            return self._ids
        finally:
            await consumer.stop()

    async def _read_range(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        first: int,
        last: int,
        *,
        to_the_end: bool = False,
    ) -> int:
        """Read the records from `first` up to `last`, or with `to_the_end` at least up to
        `last` and on until a fetch finds nothing more; returns the offset reached."""
        consumer.seek(tp, first)
        while True:
            wait = END_FETCH_MS if to_the_end else FETCH_MS
            records = (await consumer.getmany(tp, timeout_ms=wait)).get(tp, [])
            position = await consumer.position(tp)
            if not records and position >= last:
                return int(position)  # nothing more (the last offsets may hold no record)
            for record in records:
                if record.offset >= last and not to_the_end:
                    return int(record.offset)
                self._ids.update(_event_id(record.value, record.headers))


async def _producer(settings: Settings) -> AIOKafkaProducer:
    """An idempotent producer; one without idempotence when the broker cannot grant a
    producer id (the local broker): then a send the client retries after a lost
    acknowledgement may be written twice, under its one event id."""
    options: dict[str, Any] = {**kafka_options(settings), "acks": "all", "linger_ms": 5}
    producer = AIOKafkaProducer(**options, enable_idempotence=True)
    try:
        await producer.start()
        return producer
    except KafkaError as error:
        await producer.stop()
        log.warning(
            "the broker granted no idempotent producer (%s): results are relayed without "
            "idempotence, each under its one event id",
            describe(error),
        )
    plain = AIOKafkaProducer(**options)
    await plain.start()
    return plain


def _event_id(value: bytes | None, headers: Iterable[tuple[str, bytes]] | None) -> list[str]:
    event = results_pb2.ResultEvent()
    try:
        if any(name == "content-type" for name, _ in headers or ()):
            json_format.Parse(value or b"{}", event, ignore_unknown_fields=True)
        else:
            event.ParseFromString(value or b"")
    except (DecodeError, json_format.ParseError):
        return []
    return [event.event_id] if event.event_id else []


async def _wait(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
