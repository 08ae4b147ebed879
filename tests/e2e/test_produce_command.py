"""`podium produce` through the real broker: good lines reach their topics as producers would
write them, bad lines are reported by number and reason and never sent."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from consumers.local_broker import LocalBroker
from tests.builders import consumed

pytestmark = [pytest.mark.e2e]

PODIUM = str(Path(sys.executable).parent / "podium")


def line(event: str, payload: dict[str, object], event_id: str) -> str:
    envelope = {"eventId": event_id, "tenantId": "acme", "occurredAt": "2026-11-20T08:00:00Z"}
    return json.dumps({**envelope, event: payload})


Seen = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]
"""A record read back: its topic, key, value and headers."""


async def records_of(servers: str, topics: list[str], expected: int) -> list[Seen]:
    return [
        (r.topic, r.key, r.value, list(r.headers))
        for r in await read_from_the_start(servers, topics, expected)
    ]


async def read_from_the_start(
    servers: str, topics: list[str], expected: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of the topics, read from their start: at least `expected`, and then until
    a poll finds nothing more (everything was sent before the command exited)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, number)
            for topic in topics
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return await consumed(consumer, expected, then_quiet=True)
    finally:
        await consumer.stop()


async def test_good_lines_reach_their_topics_and_bad_ones_are_reported_and_not_sent(
    broker: LocalBroker,
) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}."
    ann = line("userUpserted", {"userId": "ann", "groups": ["north"]}, "e1")
    trip = line(
        "tripCompleted",
        {
            "tripId": "t1",
            "userId": "ann",
            "startedAt": "2026-11-20T07:00:00Z",
            "endedAt": "2026-11-20T08:00:00Z",
            "distanceKm": 12.5,
            "scores": {"safety": 8.5},
        },
        "e2",
    )
    out_of_range = trip.replace('"safety": 8.5', '"safety": 11').replace('"e2"', '"e3"')
    pause = line("pushServicePaused", {"type": "TASK_TYPE_PUSH_FAILED_CRASHES"}, "e4")
    stdin = "\n".join([ann, "", out_of_range, trip, "not json", pause]).encode()
    process = await asyncio.create_subprocess_exec(
        PODIUM,
        "produce",
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "PODIUM_TOPIC_PREFIX": prefix,
            "PODIUM_TOPIC_PARTITIONS": "2",
        },
        stdin=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, error = await process.communicate(stdin)
    report = error.decode().splitlines()
    assert process.returncode == 1
    assert "line 3: scores.safety 11.0 is out of range [0, 10]" in report
    assert any(text.startswith("line 5: not JSON") for text in report)
    assert report[-1].startswith("podium produce: 3 event(s) sent to ")

    topics = [f"{prefix}{family}" for family in ("catalog", "trips", "tasks")]
    json_header = [("content-type", b"application/json")]
    assert sorted(await records_of(broker.bootstrap_servers, topics, 3)) == sorted(
        [
            (f"{prefix}catalog", b"ann", ann.encode(), json_header),
            (f"{prefix}trips", b"ann", trip.encode(), json_header),
            (f"{prefix}tasks", b"acme", pause.encode(), json_header),
        ]
    )


async def test_a_backfill_dates_each_record_by_its_occurred_at_a_live_send_by_the_client(
    broker: LocalBroker,
) -> None:
    """`--timestamps occurred-at`: each record arrives, for Podium, when its event happened;
    by default the producer client stamps it as it sends (Kafka's CreateTime)."""
    prefix = f"p{uuid.uuid4().hex[:8]}."
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "PODIUM_TOPIC_PREFIX": prefix,
        "PODIUM_TOPIC_PARTITIONS": "1",
    }
    history = {
        "e1": "2026-09-03T07:15:42.123Z",
        "e2": "2026-10-30T23:59:59.999Z",
    }
    lines = [
        line("userUpserted", {"userId": f"u-{event_id}"}, event_id).replace(
            "2026-11-20T08:00:00Z", occurred
        )
        for event_id, occurred in history.items()
    ]
    today = line("userUpserted", {"userId": "u-e3"}, "e3")

    async def produce(text: str, *options: str) -> None:
        process = await asyncio.create_subprocess_exec(
            PODIUM, "produce", *options, env=env, stdin=asyncio.subprocess.PIPE
        )
        await process.communicate(text.encode())
        assert process.returncode == 0

    await produce("\n".join(lines), "--timestamps", "occurred-at")
    before = int(time.time() * 1000)
    await produce(today)
    after = int(time.time() * 1000)
    stamps = {
        json.loads(r.value)["eventId"]: r.timestamp
        for r in await read_from_the_start(broker.bootstrap_servers, [f"{prefix}catalog"], 3)
    }
    assert {k: stamps[k] for k in history} == {
        k: int(datetime.fromisoformat(v).timestamp() * 1000) for k, v in history.items()
    }
    assert before <= stamps["e3"] <= after
