"""Producers as other teams run them, through the real broker, folded and answered on both
databases: Confluent's serializers (confluent-kafka's `ProtobufSerializer` and
`JSONSerializer`, which frame each value in the Schema Registry wire format; their registry is
one in memory, since Podium never calls a registry) through librdkafka with lz4 and zstd
batches, and a producer that added a field to its JSON before Podium knew it and sends it
without the content-type header."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import json_format
from google.protobuf.message import Message
from podium.events.v1 import catalog_pb2, trips_pb2
from podium.v1 import driver_ranking_pb2, driver_ranking_pb2_grpc

from service.app.dead_letters import list_letters
from service.app.ports import LetterFilter
from tests.builders import trip_envelope, user_envelope
from tests.e2e.conftest import Running
from tests.e2e.test_compressed_producers import Headers, produce_records_with_librdkafka
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

TRIP_SCHEMA = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "TripEvent",
        "type": "object",
        "required": ["eventId", "tenantId", "occurredAt"],
    }
)
UNKNOWN = "podium_unknown_fields_total"


def framed(
    serializer: Any, topic: str, messages: Sequence[Message]
) -> list[tuple[bytes, bytes, Headers]]:
    """Each envelope as the serializer writes it: (key, value, no headers)."""
    context = SerializationContext(topic, MessageField.VALUE)
    return [(b"ann", serializer(message, context), []) for message in messages]


async def test_confluent_serializers_and_a_newer_producers_json_are_folded_and_answered(
    running: Running,
) -> None:
    tenant, topic = running.tenant, running.settings.topic
    registry = SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4().hex}"})
    profile = user_envelope("ann", "north", firstname="Ann", tenant=tenant)
    trips = [trip_envelope(f"sr-{n}", "ann", km=5.0, safety=8.0, tenant=tenant) for n in range(7)]
    protobuf_trips = framed(
        ProtobufSerializer(trips_pb2.TripEvent, registry), topic("trips"), trips[:3]
    )
    assert protobuf_trips[0][1][:1] == b"\x00"  # magic byte, then the schema id
    json_trips = framed(
        JSONSerializer(
            TRIP_SCHEMA, registry, to_dict=lambda message, _: json_format.MessageToDict(message)
        ),
        topic("trips"),
        trips[3:6],
    )
    newer = json.loads(json_format.MessageToJson(trips[6]))
    newer["tripCompleted"]["vehicleId"] = "van-7"
    newer["schemaVersion"] = 4
    scores = framed(  # a serializer of another message than the envelope: refused
        ProtobufSerializer(trips_pb2.TripScores, registry),
        topic("trips"),
        [trips_pb2.TripScores(safety=1.0)],
    )
    unknown_before = running.podium.metrics.registry.get_sample_value(
        UNKNOWN, {"topic": topic("trips")}
    )

    await produce_records_with_librdkafka(
        running.servers,
        topic("catalog"),
        framed(ProtobufSerializer(catalog_pb2.CatalogEvent, registry), topic("catalog"), [profile]),
        codec="lz4",
    )
    await produce_records_with_librdkafka(
        running.servers, topic("trips"), [*protobuf_trips, *scores], codec="lz4"
    )
    await produce_records_with_librdkafka(
        running.servers,
        topic("trips"),
        [*json_trips, (b"ann", json.dumps(newer).encode(), [])],
        codec="zstd",
    )

    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(running.channel)
    request = driver_ranking_pb2.GetDriverRankingRequest(type="RANKING_TYPE_SAFETY")

    async def ranking() -> driver_ranking_pb2.GetDriverRankingResponse:
        return await stub.GetDriverRanking(request, metadata=running.auth, timeout=5)

    def drivers(answer: driver_ranking_pb2.GetDriverRankingResponse) -> list[tuple[Any, ...]]:
        return [
            (d.userId, d.firstname, d.tripNumber, d.distance)
            for d in answer.currentMonth.driverRanked
        ]

    answer = await eventually(ranking, lambda a: drivers(a) == [("ann", "Ann", 7, 35.0)], within=30)
    assert drivers(answer) == [("ann", "Ann", 7, 35.0)]
    assert answer.currentMonth.driverRanked[0].score == 8.0

    with running.podium.storage.read() as read:
        letters = list_letters(read, LetterFilter(topic=topic("trips"), reason="message indexes"))
    assert [letter.reason for letter in letters] == [
        "undecodable TripEvent: Schema Registry framing (schema id "
        f"{int.from_bytes(scores[0][1][1:5], 'big')}): the message indexes [2] name another "
        "message than the topic's envelope TripEvent ([0] in podium/events/v1/trips.proto)"
    ]
    unknown_after = running.podium.metrics.registry.get_sample_value(
        UNKNOWN, {"topic": topic("trips")}
    )
    assert (unknown_after or 0) - (unknown_before or 0) == 2
