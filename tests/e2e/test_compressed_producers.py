"""Batches compressed by other teams' producers, librdkafka's and aiokafka's, with every codec
Kafka has: each is folded whole (aiokafka decodes snappy, lz4 and zstd only through cramjam)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from confluent_kafka import KafkaError, Message, Producer
from google.protobuf.message import Message as Envelope
from podium.v1 import driver_ranking_pb2, driver_ranking_pb2_grpc

from tests.builders import envelope_value, produce, trip_envelope, user_envelope
from tests.e2e.conftest import Running
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

CODECS = ["gzip", "snappy", "lz4", "zstd"]
CLIENTS = ["librdkafka", "aiokafka"]
KMS = [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # six trips, 33 km: enough to be ranked
PRODUCE_SECONDS = 30.0
Headers = list[tuple[str, str | bytes | None]]


async def produce_with_librdkafka(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes, Envelope]],
    *,
    codec: str,
    as_json: bool,
) -> None:
    """Write envelopes as a confluent-kafka (librdkafka) producer does."""
    records: list[tuple[bytes, bytes, Headers]] = []
    for key, envelope in messages:
        value, headers = envelope_value(envelope, as_json=as_json)
        records.append((key, value, list(headers)))
    await produce_records_with_librdkafka(bootstrap, topic, records, codec=codec)


async def produce_records_with_librdkafka(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes, Headers]], *, codec: str
) -> None:
    """Write records (key, value, headers) as a confluent-kafka (librdkafka) producer does,
    every record delivered or the reason raised. Its calls block, so they run off the event
    loop Podium shares."""
    failures: list[KafkaError] = []
    delivered: list[Message] = []

    def report(error: KafkaError | None, message: Message) -> None:
        if error is None:
            delivered.append(message)
        else:
            failures.append(error)

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.codec": codec,
            "linger.ms": 20,  # one batch per partition, so the batch is what gets compressed
            "message.timeout.ms": 10_000,  # a record never delivered fails instead of waiting
            "log_level": 3,  # errors only: no notice of the broker closing idle connections
        }
    )
    try:
        for key, value, headers in records:
            producer.produce(topic, value, key=key, headers=headers, on_delivery=report)
        left = await asyncio.to_thread(producer.flush, PRODUCE_SECONDS / 2)
    finally:
        await asyncio.to_thread(producer.close)
    assert (left, failures, len(delivered)) == (0, [], len(records))


async def produce_compressed(
    client: str,
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes, Envelope]],
    *,
    codec: str,
    as_json: bool,
) -> None:
    async with asyncio.timeout(PRODUCE_SECONDS):
        if client == "librdkafka":
            await produce_with_librdkafka(bootstrap, topic, messages, codec=codec, as_json=as_json)
        else:
            await produce(bootstrap, topic, messages, as_json=as_json, compression_type=codec)


@pytest.mark.parametrize("as_json", [False, True], ids=["binary", "json"])
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("codec", CODECS)
async def test_every_trip_of_a_compressed_batch_is_folded(
    running: Running, codec: str, client: str, as_json: bool
) -> None:
    topic = running.settings.topic
    profile = user_envelope("ann", "north", firstname="Ann", tenant=running.tenant)
    trips = [
        trip_envelope(f"{codec}-{i}", "ann", km=km, safety=8.0, tenant=running.tenant)
        for i, km in enumerate(KMS)
    ]
    await produce_compressed(
        client, running.servers, topic("catalog"), [(b"ann", profile)], codec=codec, as_json=as_json
    )
    await produce_compressed(
        client,
        running.servers,
        topic("trips"),
        [(b"ann", t) for t in trips],
        codec=codec,
        as_json=as_json,
    )
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)
    request = driver_ranking_pb2.GetDriverRankingRequest(type="RANKING_TYPE_SAFETY")

    async def ranking() -> driver_ranking_pb2.GetDriverRankingResponse:
        return await stub.GetDriverRanking(request, metadata=running.auth, timeout=5)

    def drivers(
        answer: driver_ranking_pb2.GetDriverRankingResponse,
    ) -> list[tuple[str, str, int, float]]:
        month = answer.currentMonth
        return [(d.userId, d.firstname, d.tripNumber, d.distance) for d in month.driverRanked] + [
            (d.userId, d.firstname, d.tripNumber, d.distance) for d in month.driverNotRanked
        ]

    expected = [("ann", "Ann", len(KMS), sum(KMS))]
    answer = await eventually(ranking, lambda a: drivers(a) == expected, within=20)
    assert drivers(answer) == expected
    assert answer.currentMonth.driverRankedNumber == 1
