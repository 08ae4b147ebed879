"""A mixed event stream for fault tests, and the answers recomputed from it in the test's own
words: the reference Podium's answers are compared with after kills, freezes and outages.

The reference reads the rules (docs/rules.md#driver-ranking), not Podium's code: a driver's
month counts its trips that ended in it and were not deleted; the score is the
distance-weighted mean of the safety score, rounded half up to 2 decimals (exact fractions
here); ranked drivers have at least 5 trips and 20 km and a score; ranks are shared by equal
rounded scores.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from google.protobuf.message import Message

from service.gen.podium.events.v1 import catalog_pb2, tasks_pb2, trips_pb2
from service.gen.podium.v1 import common_pb2, driver_ranking_pb2

MIN_TRIPS, MIN_KM = 5, Decimal(20)


@dataclass(frozen=True)
class Produced:
    family: str
    key: bytes
    message: Message


@dataclass
class Stream:
    """What a test produces, in order (re-sent events included)."""

    tenant: str
    events: list[Produced] = field(default_factory=list)


@dataclass(frozen=True)
class Trip:
    user_id: str
    km: Decimal
    safety: Decimal
    ended_at: datetime


def _stamp(message: Message, name: str, moment: datetime) -> None:
    getattr(message, name).FromDatetime(moment)


def mixed_stream(
    tenant: str, count: int, *, now: datetime, seed: int = 7, duplicates: float = 0.1
) -> Stream:
    """Profiles, trips (about 5% later deleted) and task lifecycles of one tenant, with a
    share of re-sent events, all within the last hour before `now`."""
    rng = random.Random(seed)
    stream = Stream(tenant)
    drivers = [f"driver-{i:03d}" for i in range(max(count // 200, 5))]
    for user in drivers:
        envelope = catalog_pb2.CatalogEvent(
            event_id=f"profile-{user}",
            tenant_id=tenant,
            user_upserted=catalog_pb2.UserUpserted(
                user_id=user, firstname=user.title(), groups=[f"group-{len(user) % 3}"]
            ),
        )
        _stamp(envelope, "occurred_at", now - timedelta(hours=2))
        stream.events.append(Produced("catalog", user.encode(), envelope))
    trip_ids: list[tuple[str, str]] = []
    task_steps: dict[str, int] = {}
    while len(stream.events) < count:
        roll = rng.random()
        if stream.events and roll < duplicates:
            stream.events.append(rng.choice(stream.events))
        elif trip_ids and roll < duplicates + 0.05:
            trip_id, user = trip_ids.pop(rng.randrange(len(trip_ids)))
            stream.events.append(Produced("trips", user.encode(), _deletion(tenant, trip_id, user)))
        elif roll < duplicates + 0.10:
            task_id = f"task-{rng.randrange(count // 20 + 1)}"
            step = task_steps.get(task_id, 0)
            message = _task_event(tenant, task_id, step, now)
            if message is not None:
                task_steps[task_id] = step + 1
                stream.events.append(Produced("tasks", task_id.encode(), message))
        else:
            user = rng.choice(drivers)
            trip_id = f"trip-{len(stream.events)}"
            trip_ids.append((trip_id, user))
            ended = now - timedelta(seconds=rng.randrange(60, 3600))
            km = Decimal(rng.randrange(100, 40_000)) / 1000
            safety = Decimal(rng.randrange(0, 1001)) / 100
            message = _trip(tenant, trip_id, user, km, safety, ended)
            stream.events.append(Produced("trips", user.encode(), message))
    return stream


def _trip(
    tenant: str, trip_id: str, user: str, km: Decimal, safety: Decimal, ended: datetime
) -> Message:
    envelope = trips_pb2.TripEvent(
        event_id=f"event-{trip_id}",
        tenant_id=tenant,
        trip_completed=trips_pb2.TripCompleted(
            trip_id=trip_id,
            user_id=user,
            distance_km=float(km),
            scores=trips_pb2.TripScores(safety=float(safety)),
        ),
    )
    _stamp(envelope, "occurred_at", ended)
    _stamp(envelope.trip_completed, "started_at", ended - timedelta(minutes=15))
    _stamp(envelope.trip_completed, "ended_at", ended)
    return envelope


def _deletion(tenant: str, trip_id: str, user: str) -> Message:
    envelope = trips_pb2.TripEvent(
        event_id=f"delete-{trip_id}",
        tenant_id=tenant,
        trip_deleted=trips_pb2.TripDeleted(trip_id=trip_id, user_id=user),
    )
    envelope.occurred_at.GetCurrentTime()
    return envelope


TASK_ITEMS = 10


def _task_event(tenant: str, task_id: str, step: int, now: datetime) -> Message | None:
    """A task's lifecycle in order: created, started, three progress events, completed."""
    envelope = tasks_pb2.TaskEvent(event_id=f"{task_id}-{step}", tenant_id=tenant)
    _stamp(envelope, "occurred_at", now - timedelta(minutes=30))
    if step == 0:
        envelope.task_created.task_id = task_id
        envelope.task_created.type = common_pb2.TASK_TYPE_PUSH_FAILED_TRIPS
        envelope.task_created.nb_items = TASK_ITEMS
        _stamp(envelope.task_created, "created_at", now - timedelta(minutes=30))
    elif step == 1:
        envelope.task_started.task_id = task_id
        _stamp(envelope.task_started, "started_at", now - timedelta(minutes=29))
    elif step <= 4:
        envelope.task_progressed.task_id = task_id
        envelope.task_progressed.nb_remaining_items = TASK_ITEMS - 3 * (step - 1)
    elif step == 5:
        envelope.task_completed.task_id = task_id
        _stamp(envelope.task_completed, "completed_at", now - timedelta(minutes=20))
    else:
        return None
    return envelope


# --- the reference ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Driver:
    user_id: str
    trips: int
    km: Decimal
    score_hundredths: int | None

    @property
    def ranked(self) -> bool:
        return self.trips >= MIN_TRIPS and self.km >= MIN_KM and self.score_hundredths is not None


def expected_month(stream: Stream) -> dict[str, Driver]:
    """Every driver with trips (all within one month) or a profile."""
    trips: dict[str, Trip] = {}
    deleted: set[str] = set()
    profiles: set[str] = set()
    for produced in stream.events:
        message = produced.message
        if isinstance(message, catalog_pb2.CatalogEvent):
            profiles.add(message.user_upserted.user_id)
        elif isinstance(message, trips_pb2.TripEvent):
            if message.HasField("trip_deleted"):
                deleted.add(message.trip_deleted.trip_id)
            else:
                t = message.trip_completed
                trips.setdefault(
                    t.trip_id,
                    Trip(
                        t.user_id,
                        Decimal(repr(t.distance_km)),
                        Decimal(repr(t.scores.safety)),
                        t.ended_at.ToDatetime(),
                    ),
                )
    by_driver: defaultdict[str, list[Trip]] = defaultdict(list)
    for trip_id, trip in trips.items():
        if trip_id not in deleted:
            by_driver[trip.user_id].append(trip)
    return {user: _driver(user, by_driver.get(user, [])) for user in profiles | set(by_driver)}


def _driver(user: str, trips: list[Trip]) -> Driver:
    km = sum((t.km for t in trips), Decimal(0))
    weight = sum((Fraction(t.km) for t in trips), Fraction(0))
    hundredths = None
    if weight > 0:
        mean = sum((Fraction(t.safety) * Fraction(t.km) for t in trips), Fraction(0)) / weight
        hundredths = int(mean * 100 + Fraction(1, 2))  # half up; the mean is never negative
    return Driver(user, len(trips), km, hundredths)


def expected_ranking(drivers: dict[str, Driver]) -> list[tuple[str, int, int, Decimal, int]]:
    """(user, rank, score in hundredths, km, trips) of the ranked drivers, in rank order."""
    ranked = sorted(
        (d for d in drivers.values() if d.ranked),
        key=lambda d: (-(d.score_hundredths or 0), -d.km, d.user_id),
    )
    rows, rank, previous = [], 0, None
    for position, driver in enumerate(ranked, start=1):
        if driver.score_hundredths != previous:
            rank, previous = position, driver.score_hundredths
        rows.append((driver.user_id, rank, driver.score_hundredths or 0, driver.km, driver.trips))
    return rows


def actual_ranking(
    month: driver_ranking_pb2.MonthRanking,
) -> list[tuple[str, int, int, Decimal, int]]:
    return [
        (
            d.userId,
            d.rank,
            round(d.score * 100),
            Decimal(repr(d.distance)).quantize(Decimal("0.001")),
            d.tripNumber,
        )
        for d in month.driverRanked
    ]


def expected_tasks(stream: Stream) -> dict[str, tuple[str, int]]:
    """Each task's final (status name, nbRemainingItems)."""
    steps: dict[str, int] = {}
    for produced in stream.events:
        message = produced.message
        if isinstance(message, tasks_pb2.TaskEvent):
            task_id = message.event_id.rsplit("-", 1)[0]
            steps[task_id] = max(steps.get(task_id, -1), int(message.event_id.rsplit("-", 1)[1]))
    outcome = {}
    for task_id, last in steps.items():
        if last == 0:
            outcome[task_id] = ("TASK_STATUS_PENDING", TASK_ITEMS)
        elif last == 1:
            outcome[task_id] = ("TASK_STATUS_IN_PROGRESS", TASK_ITEMS)
        elif last <= 4:
            outcome[task_id] = ("TASK_STATUS_IN_PROGRESS", TASK_ITEMS - 3 * (last - 1))
        else:
            outcome[task_id] = ("TASK_STATUS_COMPLETED", 0)
    return outcome
