"""Builders for events (domain and protobuf), batches, and rule settings used across tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from google.protobuf import json_format
from google.protobuf.message import Message
from podium.events.v1 import catalog_pb2, trips_pb2
from sqlalchemy import Engine

from consumers.runs import split
from service.app.ingest import Applied, Batch, apply_batch
from service.app.ports import ReadModel, ResultsWork, UnitOfWork
from service.app.queries import MonthRanking, month_ranking, ranking_months
from service.app.records import FAMILIES, Received, Record
from service.app.shards import Buckets
from service.bootstrap import Storage
from service.domain import events as ev
from service.domain.rules import Rules
from service.domain.standings import Thresholds

T = TypeVar("T")
T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
RULES = Rules(Thresholds(min_trips=5, min_km=Decimal(20)), late_event_grace=timedelta(hours=24))
TENANT = "acme"

_ids = itertools.count(1)


def meta(
    tenant: str = TENANT,
    *,
    at: datetime = T0,
    arrived_at: datetime | None = None,
    event_id: str | None = None,
) -> ev.Meta:
    return ev.Meta(tenant, event_id or f"e{next(_ids)}", at, arrived_at or at)


def user(
    user_id: str,
    *groups: str,
    tenant: str = TENANT,
    at: datetime = T0,
    arrived_at: datetime | None = None,
    firstname: str = "",
    email: str = "",
) -> ev.Event:
    """A profile version; it arrives when it occurred (`at`) unless `arrived_at` says (a
    catalog backfilled later)."""
    payload = ev.UserUpserted(
        user_id,
        email or f"{user_id}@example.com",
        firstname or user_id.title(),
        "Doe",
        user_id[:3],
        tuple(sorted(groups)),
    )
    return ev.Event(meta(tenant, at=at, arrived_at=arrived_at), payload)


def trip(
    trip_id: str,
    user_id: str,
    *,
    km: float = 10.0,
    safety: float | None = 8.0,
    eco: float | None = None,
    ended_at: datetime = T0,
    arrived_at: datetime | None = None,
    tenant: str = TENANT,
) -> ev.Event:
    payload = ev.TripCompleted(
        trip_id,
        user_id,
        ended_at - timedelta(minutes=30),
        ended_at,
        km,
        ev.Scores(safety=safety, eco_driving=eco),
    )
    return ev.Event(meta(tenant, at=ended_at, arrived_at=arrived_at or ended_at), payload)


def deletion(
    trip_id: str, user_id: str, *, arrived_at: datetime = T0, tenant: str = TENANT
) -> ev.Event:
    return ev.Event(meta(tenant, at=arrived_at), ev.TripDeleted(trip_id, user_id))


def received(events: Iterable[ev.Event], topic: str = "podium.trips") -> list[Received]:
    return [
        Received(
            e, Record(topic, 0, next(_ids), int(e.meta.arrived_at.timestamp() * 1000), None, b"")
        )
        for e in events
    ]


TOPICS = {f"podium.{family}": family for family in FAMILIES}
"""The topics under the default prefix, by the family each carries."""


def record(
    offset: int,
    value: bytes = b"",
    *,
    topic: str = "podium.trips",
    partition: int = 0,
    key: bytes | None = b"ann",
    timestamp_ms: int = 0,
    headers: Iterable[tuple[str, bytes | None]] = (),
) -> Record:
    """A record as the consumer hands it over; what a test does not name is plain."""
    return Record(topic, partition, offset, timestamp_ms, key, value, tuple(headers))


def consumer_record(
    partition: TopicPartition, offset: int, value: bytes, *, timestamp_ms: int = 0
) -> ConsumerRecord[bytes, bytes]:
    """A record as aiokafka's consumer returns it (for the fake consumer's logs)."""
    return ConsumerRecord(
        partition.topic,
        partition.partition,
        offset,
        timestamp_ms,
        0,
        None,
        value,
        None,
        0,
        len(value),
        (),
    )


async def consumed(
    consumer: AIOKafkaConsumer, count: int, *, within: float = 30.0, then_quiet: bool = False
) -> list[ConsumerRecord[bytes, bytes]]:
    """At least `count` records from `consumer`, within `within` seconds (`TimeoutError`
    otherwise); with `then_quiet`, more until a poll finds nothing, so that a record sent
    beyond those expected shows up too."""
    seen: list[ConsumerRecord[bytes, bytes]] = []
    async with asyncio.timeout(within):
        while len(seen) < count:
            seen += [r for rs in (await consumer.getmany(timeout_ms=200)).values() for r in rs]
        while then_quiet and (batch := await consumer.getmany(timeout_ms=1000)):
            seen += [r for rs in batch.values() for r in rs]
    return seen


class Ports(Protocol):
    """What a test folds events into and reads answers from: the database (`Storage`) or
    memory (`tests.fakes.FakePorts`)."""

    def unit_of_work(self) -> UnitOfWork: ...
    def results_work(self) -> ResultsWork: ...
    def read(self) -> AbstractContextManager[ReadModel]: ...
    def mark_caught_up(self, group: str, now: datetime) -> None: ...


BUCKETS = Buckets(4)
"""The lock buckets the tests' batches share: several, so that every fold's versions and
stamps go to several shards (`service.app.shards`)."""


def apply(ports: Ports, *events: ev.Event, rules: Rules = RULES) -> Applied:
    """Fold `events` as one consumed batch, through the ingest use case."""
    return apply_batch(
        ports.unit_of_work,
        Batch(received=received(events)),
        rules=rules,
        consumer_group="test",
        now=T0,
        buckets=BUCKETS,
    )


def consume(ports: Ports, *records: Record, now: datetime = T0) -> Applied:
    """Records decoded as the consumer decodes them and folded as one batch, the ones that
    do not decode dead-lettered."""
    received, dead = split(list(records), TOPICS)
    return apply_batch(
        ports.unit_of_work,
        Batch(received=received, dead=dead),
        rules=RULES,
        consumer_group="podium",
        now=now,
        buckets=BUCKETS,
    )


def read(ports: Ports) -> AbstractContextManager[ReadModel]:
    """The read model, for one answer."""
    return ports.read()


@dataclass(frozen=True)
class DriverRanking:
    """What GetDriverRanking answers: the month of `now` and the one before."""

    current: MonthRanking
    previous: MonthRanking


def driver_ranking(
    reading: ReadModel, tenant: str, kind: ev.ScoreKind, group: str, now: datetime, rules: Rules
) -> DriverRanking:
    current, previous = ranking_months(now)
    return DriverRanking(
        month_ranking(reading, tenant, kind, group, current, rules, now),
        month_ranking(reading, tenant, kind, group, previous, rules, now),
    )


# --- protobuf envelopes, as producers write them ------------------------------------------


def user_envelope(
    user_id: str,
    *groups: str,
    tenant: str = TENANT,
    firstname: str = "",
    event_id: str | None = None,
    at: datetime | None = None,
) -> catalog_pb2.CatalogEvent:
    envelope = catalog_pb2.CatalogEvent(
        event_id=event_id or f"user-{user_id}-{next(_ids)}",
        tenant_id=tenant,
        user_upserted=catalog_pb2.UserUpserted(
            user_id=user_id,
            email=f"{user_id}@example.com",
            firstname=firstname or user_id.title(),
            lastname="Doe",
            pseudo=user_id[:3],
            groups=list(groups),
        ),
    )
    envelope.occurred_at.FromDatetime(at or datetime.now(UTC))
    return envelope


def trip_envelope(
    trip_id: str,
    user_id: str,
    *,
    km: float = 10.0,
    safety: float = 8.0,
    ended_at: datetime | None = None,
    tenant: str = TENANT,
    event_id: str | None = None,
) -> trips_pb2.TripEvent:
    end = ended_at or datetime.now(UTC)
    envelope = trips_pb2.TripEvent(
        event_id=event_id or f"trip-{trip_id}",
        tenant_id=tenant,
        trip_completed=trips_pb2.TripCompleted(
            trip_id=trip_id,
            user_id=user_id,
            distance_km=km,
            scores=trips_pb2.TripScores(safety=safety),
        ),
    )
    envelope.occurred_at.FromDatetime(end)
    envelope.trip_completed.started_at.FromDatetime(end - timedelta(minutes=20))
    envelope.trip_completed.ended_at.FromDatetime(end)
    return envelope


def deletion_envelope(trip_id: str, user_id: str, *, tenant: str = TENANT) -> trips_pb2.TripEvent:
    envelope = trips_pb2.TripEvent(
        event_id=f"delete-{trip_id}",
        tenant_id=tenant,
        trip_deleted=trips_pb2.TripDeleted(trip_id=trip_id, user_id=user_id),
    )
    envelope.occurred_at.FromDatetime(datetime.now(UTC))
    return envelope


def envelope_value(message: Message, *, as_json: bool) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A record's value and headers as producers write them: the binary envelope, or its
    proto3 JSON form with the `content-type: application/json` header."""
    if as_json:
        return json_format.MessageToJson(message).encode(), [("content-type", b"application/json")]
    return message.SerializeToString(), []


async def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes, Message]],
    *,
    as_json: bool = False,
    compression_type: str | None = None,
    arrived_at: datetime | None = None,
) -> None:
    """Write envelopes as producers do: binary, or proto3 JSON with its content-type header.
    `arrived_at`: the records' timestamp (their arrival time for Podium), else now."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, compression_type=compression_type
    )
    timestamp_ms = None if arrived_at is None else int(arrived_at.timestamp() * 1000)
    await producer.start()
    try:
        for key, message in messages:
            value, headers = envelope_value(message, as_json=as_json)
            await producer.send(topic, value, key=key, headers=headers, timestamp_ms=timestamp_ms)
        await producer.flush()
    finally:
        await producer.stop()


_TEMPLATE: list[Engine] = []


def fresh_memory_engine() -> Engine:
    """An in-memory SQLite database with the schema, copied from one migrated template (a
    property test makes hundreds; running the migrations for each would dominate)."""
    import migrations
    from service.adapters.database import create_database_engine

    if not _TEMPLATE:
        template = create_database_engine("sqlite://")
        migrations.upgrade(template)
        _TEMPLATE.append(template)
    engine = create_database_engine("sqlite://")
    source = _TEMPLATE[0].raw_connection()
    target = engine.raw_connection()
    try:
        source.driver_connection.backup(target.driver_connection)  # type: ignore[union-attr]
    finally:
        source.close()
        target.close()
    return engine


@contextlib.contextmanager
def memory_storage() -> Iterator[Storage]:
    """`Storage` over a fresh in-memory SQLite database (`fresh_memory_engine`)."""
    engine = fresh_memory_engine()
    try:
        yield Storage(engine)
    finally:
        engine.dispose()


def task_envelope(task_id: str, tenant: str = TENANT, **event: Any) -> Message:
    """A TaskEvent with one oneof field set, e.g. task_envelope("k", task_started=...)."""
    from podium.events.v1 import tasks_pb2

    envelope = tasks_pb2.TaskEvent(event_id=f"{task_id}-{next(_ids)}", tenant_id=tenant, **event)
    envelope.occurred_at.FromDatetime(datetime.now(UTC))
    return envelope


def challenge(
    challenge_id: str,
    *,
    start: datetime,
    end: datetime,
    theme: ev.ChallengeTheme = ev.ChallengeTheme.SAFETY,
    groups: tuple[str, ...] = (),
    min_trips: int = 1,
    min_km: float = 0.0,
    pre_period: timedelta | None = None,
    pre_min_trips: int = 10,
    tenant: str = TENANT,
    at: datetime = T0,
    arrived_at: datetime | None = None,
) -> ev.Event:
    payload = ev.ChallengePublished(
        challenge_id,
        f"Challenge {challenge_id}",
        theme,
        start,
        end,
        groups,
        min_trips,
        min_km,
        pre_period,
        pre_min_trips,
    )
    return ev.Event(meta(tenant, at=at, arrived_at=arrived_at), payload)


def registration(
    challenge_id: str,
    user_id: str,
    *,
    registered_at: datetime,
    tenant: str = TENANT,
    arrived_at: datetime | None = None,
) -> ev.Event:
    payload = ev.ChallengeRegistered(challenge_id, user_id, registered_at)
    return ev.Event(meta(tenant, at=registered_at, arrived_at=arrived_at), payload)


def challenge_envelope(
    challenge_id: str,
    *,
    start: datetime,
    end: datetime,
    tenant: str = TENANT,
    theme: str = "CHALLENGE_THEME_SAFETY",
    groups: Sequence[str] = (),
    pre_min_trips: int = 2,
) -> Message:
    envelope = catalog_pb2.CatalogEvent(
        event_id=f"pub-{challenge_id}-{next(_ids)}",
        tenant_id=tenant,
        challenge_published=catalog_pb2.ChallengePublished(
            challenge_id=challenge_id,
            title=challenge_id,
            theme=theme,
            groups=list(groups),
            pre_challenge_min_trips=pre_min_trips,
        ),
    )
    envelope.occurred_at.FromDatetime(datetime.now(UTC))
    envelope.challenge_published.start_at.FromDatetime(start)
    envelope.challenge_published.end_at.FromDatetime(end)
    return envelope


def registration_envelope(
    challenge_id: str, user_id: str, *, registered_at: datetime, tenant: str = TENANT
) -> Message:
    from podium.events.v1 import enrollments_pb2

    envelope = enrollments_pb2.EnrollmentEvent(
        event_id=f"reg-{challenge_id}-{user_id}-{next(_ids)}",
        tenant_id=tenant,
        challenge_registered=enrollments_pb2.ChallengeRegistered(
            challenge_id=challenge_id, user_id=user_id
        ),
    )
    envelope.occurred_at.FromDatetime(datetime.now(UTC))
    envelope.challenge_registered.registered_at.FromDatetime(registered_at)
    return envelope


def path_event(payload: ev.Payload, *, tenant: str = TENANT, at: datetime = T0) -> ev.Event:
    return ev.Event(meta(tenant, at=at), payload)


def catalog_session_envelope(
    session_id: str,
    *,
    tenant: str = TENANT,
    starts_at: datetime,
    ends_at: datetime,
    steps: Sequence[dict[str, Any]],
) -> Message:
    envelope = catalog_pb2.CatalogEvent(
        event_id=f"session-{session_id}-{next(_ids)}",
        tenant_id=tenant,
        path_session_published=catalog_pb2.PathSessionPublished(
            session_id=session_id,
            path_id="path",
            name=session_id,
            steps=[catalog_pb2.Step(**s) for s in steps],
        ),
    )
    envelope.occurred_at.FromDatetime(datetime.now(UTC))
    envelope.path_session_published.starts_at.FromDatetime(starts_at)
    envelope.path_session_published.ends_at.FromDatetime(ends_at)
    return envelope


def enrollment_envelope(tenant: str = TENANT, **event: Any) -> Message:
    from podium.events.v1 import enrollments_pb2

    envelope = enrollments_pb2.EnrollmentEvent(
        event_id=f"enrollment-{next(_ids)}", tenant_id=tenant, **event
    )
    envelope.occurred_at.FromDatetime(datetime.now(UTC))
    return envelope


def arrival_batches(data: Any, events: Sequence[T]) -> list[Sequence[T]]:
    """A hypothesis draw of an arrival order for `events`, cut into consumed batches."""
    from hypothesis import strategies as st

    order = data.draw(st.permutations(list(events)))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(order)), max_size=4)))
    return [order[start:end] for start, end in zip([0, *cuts], [*cuts, len(order)], strict=True)]
