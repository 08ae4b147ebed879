"""Events written to Podium's topics as producers write them (docs/rules.md#events, README "Event
contracts"): the topic by the envelope's event, the Kafka key the rules name, the value the
binary envelope or, with the header `content-type: application/json`, its proto3 JSON form.
Each record is first read back with the consumer's own decoder, so what goes out is what
Podium folds. `podium produce` and `podium demo` both send through here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from google.protobuf import json_format
from google.protobuf.message import Message

from consumers.connection import kafka_options
from consumers.decode import ENVELOPES, JSON, decode
from consumers.topics import ensure_topics
from service.app.records import Rejected, Stamp, timestamp_ms_of
from service.config import Settings
from service.domain import events as ev

JSON_HEADERS = (("content-type", JSON),)

EVENT_FAMILIES: dict[str, str] = {
    name: family
    for family, envelope in ENVELOPES.items()
    for field in envelope.DESCRIPTOR.oneofs_by_name["event"].fields
    for name in (field.name, field.json_name)
}
"""Each event's field in its envelope's `oneof event`, by its proto and its JSON name, to the
topic family of that envelope: no two envelopes share an event name."""

_FAMILY_OF_ENVELOPE = {envelope.DESCRIPTOR.full_name: f for f, envelope in ENVELOPES.items()}

_KEY_FIELDS: dict[type, str] = {
    ev.UserUpserted: "user_id",
    ev.ChallengePublished: "challenge_id",
    ev.PathSessionPublished: "session_id",
    ev.TripCompleted: "user_id",
    ev.TripDeleted: "user_id",
    ev.ChallengeRegistered: "user_id",
    ev.PathEnrolled: "user_id",
    ev.PathUnenrolled: "user_id",
    ev.StepAttempted: "user_id",
    ev.StepCorrected: "user_id",
    ev.TaskCreated: "task_id",
    ev.TaskStarted: "task_id",
    ev.TaskProgressed: "task_id",
    ev.TaskCompleted: "task_id",
    ev.TaskFailed: "task_id",
}
"""The field that keys each event's record; a push-service pause is keyed by its tenant."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record ready to send, checked by the consumer's decoder."""

    family: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int | None
    """The record's Kafka timestamp: the event's arrival time for Podium. None: the producer
    client stamps the record as it sends it (Kafka's CreateTime: now)."""


def key_of(event: ev.Event) -> str:
    """The record key (docs/rules.md#events): the entity for the catalog, the user for trips and
    enrollments, the task for tasks, the tenant for a pause."""
    field = _KEY_FIELDS.get(type(event.payload))
    return event.meta.tenant_id if field is None else str(getattr(event.payload, field))


def checked(
    family: str,
    value: bytes,
    headers: tuple[tuple[str, bytes], ...],
    timestamp_ms: int,
    stamp: Stamp | None = None,
) -> Outgoing | Rejected:
    """The record as it will be sent, or why the consumer would dead-letter it. Its timestamp
    is `timestamp_ms`, or what `stamp` says: left to the client (checked as arriving at
    `timestamp_ms`), or the envelope's `occurredAt` (checked again with it, as the consumer
    will read it)."""
    decoded = decode(family, value, headers, timestamp_ms)
    if isinstance(decoded, Rejected):
        return decoded
    if stamp is Stamp.OCCURRED_AT:
        return checked(family, value, headers, timestamp_ms_of(decoded.meta.occurred_at))
    sent_ms = None if stamp is Stamp.CLIENT else timestamp_ms
    return Outgoing(family, key_of(decoded).encode(), value, headers, sent_ms)


def from_envelope(envelope: Message, timestamp_ms: int, *, as_json: bool = False) -> Outgoing:
    """A record for an envelope built in code; one the decoder refuses is a bug there."""
    family = _FAMILY_OF_ENVELOPE[envelope.DESCRIPTOR.full_name]
    headers: tuple[tuple[str, bytes], ...]
    if as_json:
        value, headers = json_format.MessageToJson(envelope).encode(), JSON_HEADERS
    else:
        value, headers = envelope.SerializeToString(), ()
    outgoing = checked(family, value, headers, timestamp_ms)
    if isinstance(outgoing, Rejected):
        raise ValueError(f"{family} event {outgoing.event_id}: {outgoing.reason}")
    return outgoing


def from_json_line(line: str, now_ms: int, stamp: Stamp = Stamp.CLIENT) -> Outgoing | Rejected:
    """A record for one line of JSON Lines: an envelope in its proto3 JSON form, sent as it is
    with the JSON content type, to the topic of the one event it holds, stamped as `stamp`
    says (checked as arriving at `now_ms` when left to the client)."""
    try:
        document = json.loads(line)
    except json.JSONDecodeError as error:
        return Rejected(f"not JSON: {error}")
    if not isinstance(document, dict):
        return Rejected("not a JSON object")
    events = [name for name in document if name in EVENT_FAMILIES]
    if len(events) != 1:
        found = f"found {', '.join(events)}" if events else "found none"
        return Rejected(
            f"a line holds exactly one event (user_upserted, trip_completed, ...): {found}"
        )
    return checked(EVENT_FAMILIES[events[0]], line.encode(), JSON_HEADERS, now_ms, stamp)


def from_json_lines(
    lines: Iterable[str], now_ms: int, stamp: Stamp = Stamp.CLIENT
) -> tuple[list[Outgoing], list[tuple[int, str]]]:
    """The records of JSON Lines, and the lines refused (their number from 1, and why);
    blank lines are skipped."""
    records: list[Outgoing] = []
    refused: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        outgoing = from_json_line(line.strip(), now_ms, stamp)
        if isinstance(outgoing, Rejected):
            refused.append((number, outgoing.reason))
        else:
            records.append(outgoing)
    return records, refused


class KafkaUnreachable(RuntimeError):
    """No Kafka took the records."""


async def publish(settings: Settings, records: Sequence[Outgoing]) -> dict[tuple[str, int], int]:
    """Send to `settings.kafka_servers`, creating Podium's topics first if they are missing
    (as `podium serve` does: a topic a producer creates by writing to it gets the broker's
    partition count, not Podium's). The connection is the consumer's (`kafka_options`: TLS
    and SASL as the settings say)."""
    servers = settings.kafka_servers
    connected = replace(settings, kafka_bootstrap_servers=servers)
    try:
        await ensure_topics(connected)
        return await send(kafka_options(connected), settings.topic, records)
    except KafkaError as error:
        raise KafkaUnreachable(
            f"cannot send to Kafka at {servers} ({error}): is Podium running "
            "(`make run`), or KAFKA_BOOTSTRAP_SERVERS set to the Kafka to use?"
        ) from None


async def send(
    connection: Mapping[str, Any], topic_of: Callable[[str], str], records: Sequence[Outgoing]
) -> dict[tuple[str, int], int]:
    """Send the records in order and wait until the broker has them all; returns each
    partition written to with the offset after its last record there. `connection`:
    aiokafka's connection arguments (`kafka_options`)."""
    producer = AIOKafkaProducer(**connection, linger_ms=10, acks="all")
    await producer.start()
    try:
        sending = [
            await producer.send(
                topic_of(r.family),
                r.value,
                key=r.key,
                headers=list(r.headers),
                timestamp_ms=r.timestamp_ms,
            )
            for r in records
        ]
        written = await asyncio.gather(*sending)
    finally:
        await producer.stop()
    ends: dict[tuple[str, int], int] = {}
    for metadata in written:
        where = (metadata.topic, metadata.partition)
        ends[where] = max(ends.get(where, 0), metadata.offset + 1)
    return ends
