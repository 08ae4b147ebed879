"""The relay of results over the real broker, on both databases (docs/rules.md#results-out):
results go out keyed by tenant and are marked once acknowledged; results a relay had sent
but not marked when it died are found in the topic and marked, not sent twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from podium.events.v1 import results_pb2
from sqlalchemy import Engine

from consumers.local_broker import LocalBroker
from consumers.results_relay import ResultRelay, ensure_results_topic
from service.adapters.database import create_database_engine
from service.adapters.stores.results import AdvisoryLease
from service.app.results import record_all_results, unsent_results
from service.bootstrap import Storage
from service.clock import SystemClock
from service.config import Settings
from service.result_events import encode, record_value
from tests.builders import RULES, apply, trip, user
from tests.databases import empty_database

IN_OCTOBER = datetime(2026, 10, 20, 12, tzinfo=UTC)
OCTOBER_FREEZES = datetime(2026, 11, 2, tzinfo=UTC)


def settings_for(broker: LocalBroker) -> Settings:
    return Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "PODIUM_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.",
            "PODIUM_TOPIC_PARTITIONS": "2",
        }
    )


async def in_topic(settings: Settings) -> list[tuple[bytes | None, results_pb2.ResultEvent]]:
    topic = settings.topic("results")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_servers)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found = []
        left = {tp for tp in partitions if ends[tp]}
        while left:
            for tp, records in (await consumer.getmany(*left, timeout_ms=1000)).items():
                for record in records:
                    found.append(
                        (record.key, results_pb2.ResultEvent.FromString(record.value or b""))
                    )
                    if record.offset + 1 >= ends[tp]:
                        left.discard(tp)
        return found
    finally:
        await consumer.stop()


class AlwaysHeld:
    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


async def relay_until_all_sent(settings: Settings, storage: Storage) -> None:
    relay = ResultRelay(settings, storage.results_work, AlwaysHeld(), SystemClock())
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(300):
            if not await asyncio.to_thread(unsent_results, storage.results_work, 100):
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the relay left results unsent")
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def test_results_a_dead_relay_sent_but_never_marked_are_marked_not_sent_again(
    broker: LocalBroker, storage: Storage
) -> None:
    settings = settings_for(broker)
    await ensure_results_topic(settings)
    apply(storage, user("ann", "west", at=IN_OCTOBER), trip("a1", "ann", ended_at=IN_OCTOBER))
    apply(storage, user("bob", tenant="globex", at=IN_OCTOBER))
    apply(storage, trip("b1", "bob", tenant="globex", ended_at=IN_OCTOBER))
    now = datetime.now(UTC)
    assert record_all_results(storage.results_work, RULES, now, encode) == 8
    # A relay sent the first three, the broker acknowledged them, and it died before its marks.
    sent_before = unsent_results(storage.results_work, 3)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all")
    await producer.start()
    try:
        for entry in sent_before:
            value, headers = record_value(entry.payload, "protobuf")
            await producer.send_and_wait(
                settings.topic("results"), value, key=entry.tenant_id.encode(), headers=headers
            )
    finally:
        await producer.stop()

    await relay_until_all_sent(settings, storage)

    published = await in_topic(settings)
    assert Counter(event.event_id for _, event in published) == Counter(
        {e.event_id: 1 for e in storage.list_results(None, False, None)}
    )
    assert all(key == event.tenant_id.encode() for key, event in published)
    assert {event.tenant_id for _, event in published} == {"acme", "globex"}
    marked = storage.list_results(None, False, None)
    assert all(e.sent_at is not None and e.sent_at >= now - timedelta(minutes=1) for e in marked)


def test_one_relay_holds_the_lease_at_a_time_until_it_lets_go(
    postgresql_engine: Engine, tmp_path: Path
) -> None:
    first, second = AdvisoryLease(postgresql_engine), AdvisoryLease(postgresql_engine)

    assert first.acquire()
    assert first.acquire()  # still held
    assert not second.acquire()
    with empty_database("postgresql", tmp_path) as elsewhere:  # another deployment's schema
        engine = create_database_engine(elsewhere)
        try:
            other = AdvisoryLease(engine)
            assert other.acquire()
            other.release()
        finally:
            engine.dispose()
    first.release()
    assert second.acquire()
    second.release()
