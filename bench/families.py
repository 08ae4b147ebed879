"""Challenge, path and task figures: ingest rates with live state, and query latencies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from podium.events.v1 import enrollments_pb2
from sqlalchemy import Engine

from bench.harness import TENANT, apply_events, trip_message
from service.domain import events as ev

CHALLENGES, REGISTERED = 50, 2_000
SESSIONS, STEPS, LEARNERS = 100, 20, 10_000


def seed_challenges(
    engine: Engine, now: datetime, challenges: int = CHALLENGES, registered: int = REGISTERED
) -> tuple[datetime, datetime]:
    """Live challenges (ended an hour ago, not frozen yet) with their registered users."""
    start, end = now - timedelta(days=7), now - timedelta(hours=1)
    meta = ev.Meta(TENANT, "seed", now - timedelta(days=8), now - timedelta(days=8))
    events = [
        ev.Event(
            ev.Meta(TENANT, f"pub{c}", meta.occurred_at, meta.arrived_at),
            ev.ChallengePublished(
                f"c{c}",
                f"Challenge {c}",
                ev.ChallengeTheme.SAFETY,
                start,
                end,
                pre_challenge_min_trips=1,
            ),
        )
        for c in range(challenges)
    ]
    events += [
        ev.Event(
            ev.Meta(TENANT, f"reg{c}-{u}", meta.occurred_at, meta.arrived_at),
            ev.ChallengeRegistered(f"c{c}", f"cu{c}-{u}", start),
        )
        for c in range(challenges)
        for u in range(registered)
    ]
    apply_events(engine, events)
    return start, end


def challenge_trip(
    n: int, start: datetime, challenges: int = CHALLENGES, registered: int = REGISTERED
) -> tuple[bytes, bytes]:
    user = f"cu{n % challenges}-{n // challenges % registered}"
    ended = start + timedelta(minutes=n % (60 * 24 * 6))
    if n % 3 == 0:  # a third of the trips fall in the pre-challenge window
        ended -= timedelta(days=6)
    return trip_message(n, 1, ended=ended, driver=user)


def seed_paths(engine: Engine, now: datetime) -> None:
    steps = tuple(
        ev.Step(
            f"s{i}",
            mandatory=i % 4 != 0,
            min_score=50 if i % 3 == 0 else None,
            max_attempts=3 if i % 3 == 0 else None,
        )
        for i in range(STEPS)
    )
    events = [
        ev.Event(
            ev.Meta(TENANT, f"ps{s}", now, now),
            ev.PathSessionPublished(
                f"ps{s}",
                "path",
                f"Session {s}",
                now - timedelta(days=30),
                now + timedelta(days=30),
                steps,
            ),
        )
        for s in range(SESSIONS)
    ]
    events += [
        ev.Event(
            ev.Meta(TENANT, f"en{u}", now, now),
            ev.PathEnrolled(f"ps{u % SESSIONS}", f"l{u}", now - timedelta(days=10)),
        )
        for u in range(LEARNERS)
    ]
    apply_events(engine, events)


def step_message(n: int, now: datetime) -> tuple[bytes, bytes]:
    learner = n % LEARNERS
    ended = now - timedelta(minutes=n % 10_000)
    envelope = enrollments_pb2.EnrollmentEvent(
        event_id=f"sa{n}",
        tenant_id=TENANT,
        step_attempted=enrollments_pb2.StepAttempted(
            session_id=f"ps{learner % SESSIONS}",
            user_id=f"l{learner}",
            step_id=f"s{n // LEARNERS % STEPS}",
            attempt_id=f"at{n}",
            time_spent_ms=60_000,
            score=n % 101,
        ),
    )
    envelope.occurred_at.FromDatetime(ended)
    envelope.step_attempted.started_at.FromDatetime(ended - timedelta(minutes=5))
    envelope.step_attempted.ended_at.FromDatetime(ended)
    return f"l{learner}".encode(), envelope.SerializeToString()


def seed_tasks(engine: Engine, now: datetime, count: int = 1_000, tenant: str = TENANT) -> None:
    events = []
    for t in range(count):
        events.append(
            ev.Event(
                ev.Meta(tenant, f"tc{t}", now, now),
                ev.TaskCreated(f"task{t}", ev.TaskType.PUSH_FAILED_TRIPS, 500, now),
            )
        )
        events.append(
            ev.Event(ev.Meta(tenant, f"ts{t}", now, now), ev.TaskStarted(f"task{t}", now))
        )
    apply_events(engine, events)


async def produce_messages(
    servers: str, topic: str, messages: Sequence[tuple[bytes, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def utc_now() -> datetime:
    return datetime.now(UTC)
