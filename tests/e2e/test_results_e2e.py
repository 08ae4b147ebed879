"""Results out, end to end (docs/rules.md#results-out): `podium serve` over the real broker
publishes one result per frozen window to `<prefix>results`, and still exactly one through a
kill -9 and through a replay of every topic from offset 0."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from google.protobuf import json_format
from podium.events.v1 import results_pb2

from consumers.local_broker import LocalBroker
from service import cli
from service.app.records import FAMILIES
from service.bootstrap import storage
from service.config import Settings
from service.domain.ranking import Month
from tests.builders import (
    TENANT,
    challenge_envelope,
    produce,
    registration_envelope,
    trip_envelope,
    user_envelope,
)
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import ServeProcess
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e]

GRACE_SECONDS = 2
FROZEN_WINDOWS = 9
"""Two past months with trips (four ranking types each) and one challenge."""
QUIET_SECONDS = 8.0
"""Longer than a round of looking for frozen windows and relaying what they gave."""


async def published(settings: Settings) -> list[results_pb2.ResultEvent]:
    """Every record of `<prefix>results`, decoded as its content type says, with its key
    checked to be its tenant."""
    topic = settings.topic("results")
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_servers)
    await consumer.start()
    try:
        await consumer.topics()  # the metadata of every topic, the results' included
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return []
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        events: list[results_pb2.ResultEvent] = []
        left = {tp for tp in partitions if ends[tp] > 0}
        while left:
            for tp, records in (await consumer.getmany(*left, timeout_ms=1000)).items():
                for record in records:
                    event = results_pb2.ResultEvent()
                    if dict(record.headers).get("content-type") == b"application/json":
                        json_format.Parse(record.value or b"", event)
                    else:
                        event.ParseFromString(record.value or b"")
                    assert record.key == event.tenant_id.encode()
                    events.append(event)
                    if record.offset + 1 >= ends[tp]:
                        left.discard(tp)
        return events
    finally:
        await consumer.stop()


async def until_published(settings: Settings, count: int, podium: ServeProcess) -> None:
    try:
        await eventually(
            lambda: published(settings),
            lambda events: len(events) >= count,
            within=120,
            every=0.5,
            unless=podium.why_gone,
            what=f"{count} results published",
        )
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{podium.tail()}") from None


async def until_recorded(database_url: str) -> None:
    """Until the outbox holds a result (it may or may not have been sent yet)."""

    def recorded() -> int:
        with storage(database_url) as store:
            return len(store.list_results(None, False, None))

    await eventually(
        lambda: asyncio.to_thread(recorded), within=120, every=0.05, what="a result recorded"
    )


async def until_all_sent(database_url: str, count: int, podium: ServeProcess) -> None:
    def sent() -> int:
        with storage(database_url) as store:
            return sum(e.sent_at is not None for e in store.list_results(None, False, None))

    try:
        await eventually(
            lambda: asyncio.to_thread(sent),
            lambda done: done >= count,
            within=120,
            every=0.2,
            what=f"{count} results sent",
        )
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{podium.tail()}") from None


def once_each(events: list[results_pb2.ResultEvent]) -> dict[str, results_pb2.ResultEvent]:
    """The results by event id, asserting that each window's went out once."""
    ids = Counter(e.event_id for e in events)
    assert all(n == 1 for n in ids.values()), ids
    windows = Counter(_window(e) for e in events)
    assert all(n == 1 for n in windows.values()), windows
    return {e.event_id: e for e in events}


def _window(event: results_pb2.ResultEvent) -> tuple[str, ...]:
    if event.WhichOneof("event") == "month_frozen":
        month = event.month_frozen
        return (
            event.tenant_id,
            str(month.month.year),
            str(month.month.month_number),
            str(month.type),
        )
    return (event.tenant_id, event.challenge_frozen.challenge_id)


async def history(settings: Settings, now: datetime) -> None:
    """Two past months of trips, each arriving when it ended (a backfill), and a challenge
    that ends in a few seconds, with nobody sending anything after it: the clock freezes it."""
    servers = settings.kafka_servers
    older, last = Month.of(now).previous().previous(), Month.of(now).previous()
    long_ago = older.starts_at
    catalog = [
        (b"ann", user_envelope("ann", "west", at=long_ago)),
        (b"bob", user_envelope("bob", "east", at=long_ago)),
    ]
    await produce(servers, settings.topic("catalog"), catalog, arrived_at=long_ago)
    for month in (older, last):
        ended = month.starts_at + timedelta(days=3)
        trips = [
            (user.encode(), trip_envelope(f"{user}-{month.number}-{n}", user, km=5, ended_at=ended))
            for user in ("ann", "bob")
            for n in range(5 if user == "ann" else 1)
        ]
        await produce(servers, settings.topic("trips"), trips, arrived_at=ended)
    start, end = now - timedelta(hours=1), now + timedelta(seconds=6)
    challenge = challenge_envelope("sprint", start=start, end=end, pre_min_trips=0)
    await produce(servers, settings.topic("catalog"), [(b"sprint", challenge)])
    registration = registration_envelope("sprint", "ann", registered_at=start)
    await produce(servers, settings.topic("enrollments"), [(b"ann", registration)])
    during = trip_envelope("sprint-1", "ann", km=12, ended_at=now - timedelta(minutes=10))
    await produce(servers, settings.topic("trips"), [(b"ann", during)])


@pytest.mark.parametrize(
    ("kind", "results_format"), [("sqlite", "json"), ("postgresql", "protobuf")]
)
async def test_each_frozen_window_is_published_once_through_a_kill_and_a_replay(
    broker: LocalBroker, tmp_path: Path, kind: str, results_format: str
) -> None:
    with empty_database(kind, tmp_path) as url:
        settings = isolated_settings(
            broker,
            url,
            PODIUM_LATE_EVENT_GRACE_SECONDS=str(GRACE_SECONDS),
            PODIUM_RESULTS_FORMAT=results_format,
        )
        podium = ServeProcess(settings, tmp_path / "serve.log")
        try:
            podium.start()
            await podium.serving()
            await history(settings, datetime.now(UTC))

            # Killed as soon as a result is in the outbox: sent or not, acknowledged and
            # marked or not, whatever the relay was doing.
            await until_recorded(url)
            await podium.kill()
            podium.start()
            await podium.serving()
            await until_published(settings, FROZEN_WINDOWS, podium)
            await asyncio.sleep(QUIET_SECONDS)
            first = once_each(await published(settings))
            assert len(first) == FROZEN_WINDOWS

            # Every topic replayed from offset 0 over the same database.
            assert await podium.terminate() == 0, podium.tail()
            for family in FAMILIES:
                reset = ["offsets", "reset", "--topic", family, "--to", "earliest"]
                assert await asyncio.to_thread(cli.main, reset, settings.to_env()) == 0
            podium.start()
            await podium.serving()
            await asyncio.sleep(QUIET_SECONDS)
            assert once_each(await published(settings)) == first
        finally:
            await podium.close()

        # A database rebuilt from the topics (docs/operations.md) records every frozen
        # window again, finds each result in the topic already, and sends none.
        with empty_database(kind, tmp_path) as rebuilt_url:
            group = f"{settings.consumer_group}-rebuilt"
            rebuilt = replace(settings, database_url=rebuilt_url, consumer_group=group)
            rebuilding = ServeProcess(rebuilt, tmp_path / "rebuilt.log")
            try:
                rebuilding.start()
                await rebuilding.serving()
                await until_all_sent(rebuilt_url, FROZEN_WINDOWS, rebuilding)
                assert once_each(await published(settings)) == first
                with storage(rebuilt_url) as store:
                    outbox = store.list_results(None, False, None)
                again = {e.event_id: results_pb2.ResultEvent.FromString(e.payload) for e in outbox}
                assert again == first  # the same results, to the byte, under the same ids
            finally:
                await rebuilding.close()

    months = [e.month_frozen for e in first.values() if e.WhichOneof("event") == "month_frozen"]
    assert {m.month.month_number for m in months} == {
        Month.of(datetime.now(UTC)).previous().number,
        Month.of(datetime.now(UTC)).previous().previous().number,
    }
    for month in months:
        if month.type == 1:  # SAFETY: ann ranked (five trips, 25 km), bob not (one trip)
            assert [(d.user_id, d.rank, list(d.groups)) for d in month.ranked] == [
                ("ann", 1, ["west"])
            ]
            assert [(d.user_id, d.trips) for d in month.not_ranked] == [("bob", 1)]
    [sprint] = [e for e in first.values() if e.WhichOneof("event") == "challenge_frozen"]
    assert sprint.tenant_id == TENANT
    assert [(u.user_id, u.distance_km) for u in sprint.challenge_frozen.ranked] == [("ann", 12.0)]
    assert sprint.challenge_frozen.registered_users == 1


async def test_two_instances_on_one_database_publish_each_frozen_window_once(
    broker: LocalBroker, tmp_path: Path
) -> None:
    with empty_database("postgresql", tmp_path) as url:
        settings = isolated_settings(
            broker, url, PODIUM_LATE_EVENT_GRACE_SECONDS=str(GRACE_SECONDS)
        )
        first = ServeProcess(settings, tmp_path / "first.log")
        second = ServeProcess(settings, tmp_path / "second.log")
        try:
            first.start()
            second.start()
            await first.serving()
            await second.serving()
            await history(settings, datetime.now(UTC))
            await until_published(settings, FROZEN_WINDOWS, first)
            await until_all_sent(url, FROZEN_WINDOWS, first)
            await asyncio.sleep(QUIET_SECONDS)
            assert len(once_each(await published(settings))) == FROZEN_WINDOWS
            # One relay sent them all; the other waited for the lease.
            senders = [p for p in (first, second) if p.count_in_log('"message": "sent ')]
            assert len(senders) == 1, (first.tail(), second.tail())
        finally:
            await first.close()
            await second.close()
