"""The relay of results: from the outbox (`service.app.results`) to `<prefix>results`, keyed
by tenant, in outbox order, each result marked sent only once the broker acknowledged it.

Exactly once, by event id: a result is sent under the id its window derives, so a send that
is retried, or repeated by a relay that died between the broker's acknowledgement and its
mark, carries the same id. Before sending results left unsent, a relay that starts (or takes
over) reads the topic from when they were recorded and marks those it finds there, so a
crash in that gap does not write them twice either. One relay sends at a time across
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
CLOCK_SKEW = timedelta(minutes=5)
"""How much earlier than a result was recorded the topic is read for it: another instance,
whose clock may be behind, may have sent it."""


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
        try:
            held = False
            while not stop.is_set():
                if not held:
                    held = await asyncio.to_thread(self._lease.acquire)
                    if not held:
                        await _wait(stop, IDLE_SECONDS)
                        continue
                    await self._mark_already_sent()
                if not await self._send_some(producer):
                    self.wake.clear()
                    await _wait(stop, IDLE_SECONDS, self.wake)
        finally:
            await producer.stop()
            await asyncio.to_thread(self._lease.release)

    async def _send_some(self, producer: AIOKafkaProducer) -> int:
        pending = await asyncio.to_thread(unsent_results, self._work, BATCH)
        if not pending:
            return 0
        acks = []
        for entry in pending:
            value, headers = record_value(entry.payload, self._settings.results_format)
            acks.append(
                await producer.send(
                    self._topic, value, key=entry.tenant_id.encode(), headers=headers
                )
            )
        await asyncio.gather(*acks)  # every record acknowledged before any mark
        await asyncio.to_thread(mark_sent, self._work, [e.id for e in pending], self._clock.now())
        self._on_sent(len(pending))
        log.info("sent %d result(s) to %s", len(pending), self._topic)
        return len(pending)

    async def _mark_already_sent(self) -> None:
        """Results left unsent that the topic already holds (a relay died after the broker
        acknowledged them, before its mark) are marked, not sent again."""
        pending = await asyncio.to_thread(unsent_results, self._work, 1_000_000)
        recorded = [e.recorded_at for e in pending if e.recorded_at is not None]
        if not recorded:
            return
        found = await published_event_ids(self._settings, min(recorded) - CLOCK_SKEW)
        there = [e.id for e in pending if e.event_id in found]
        if there:
            await asyncio.to_thread(mark_sent, self._work, there, self._clock.now())
            log.info("%d unsent result(s) were already in %s: marked sent", len(there), self._topic)


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


async def published_event_ids(settings: Settings, since: datetime) -> set[str]:
    """The event ids of the results in `<prefix>results` written from `since` on."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        topic = settings.topic(RESULTS)
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            await consumer.topics()  # metadata of every topic, ours included
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        if not partitions:
            return set()
        ends = await consumer.end_offsets(partitions)
        stamp = int(since.timestamp() * 1000)
        starts = await consumer.offsets_for_times({tp: stamp for tp in partitions})
        consumer.assign(partitions)
        left = {}
        for tp in partitions:
            at = starts.get(tp)
            if at is not None and at.offset < ends[tp]:
                consumer.seek(tp, at.offset)
                left[tp] = ends[tp]
        found: set[str] = set()
        while left:
            batches = await consumer.getmany(*left, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    found.update(_event_id(record.value, record.headers))
                    if record.offset + 1 >= left.get(tp, 0):
                        left.pop(tp, None)
        return found
    finally:
        await consumer.stop()


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
