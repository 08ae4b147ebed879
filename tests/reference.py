"""A mixed stream of producer events, and the answers Podium owes for it recomputed in the
test's own words (not through Podium's rules), for the fault-tolerance tests; and the exact
figures (docs/rules.md#exact-figures) worked out with `fractions.Fraction`, which the property
tests hold Podium's incremental state to.

The stream is what producers would write: driver profiles (renamed now and then), trips of the
current and the previous month, deletions (some arriving before their trip), task lifecycles,
and about one event in ten sent a second time. Each record carries the Kafka timestamp a timely
producer gives it (a trip arrives minutes after it ended), so the late-event rule of SPEC
section 4 is in play and the answers do not depend on when the test runs.

Every event is valid: a stream folded by Podium leaves no dead letter.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import grpc
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import strategies as st

from service.gen.podium.events.v1 import catalog_pb2, tasks_pb2, trips_pb2
from service.gen.podium.v1 import (
    common_pb2,
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
    tasks_pb2_grpc,
)
from service.gen.podium.v1 import tasks_pb2 as task_api

MIN_TRIPS = 5
MIN_KM = Fraction(20)
GRACE = timedelta(hours=24)
"""Podium's default rule settings (SPEC section 4), which the tests keep."""

RESENT_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class Produced:
    """One record as a producer writes it."""

    family: str
    key: bytes
    envelope: Message
    timestamp_ms: int

    @property
    def arrived_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class Stream:
    tenant: str
    now: datetime
    records: tuple[Produced, ...]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def task_ids(self) -> list[str]:
        return sorted(
            r.envelope.task_created.task_id
            for r in self.records
            if isinstance(r.envelope, tasks_pb2.TaskEvent)
            and r.envelope.WhichOneof("event") == "task_created"
        )

    def counts(self) -> Counter[str]:
        """Records by kind of event, re-sent ones apart."""
        seen: set[tuple[str, str]] = set()
        kinds: Counter[str] = Counter()
        for r in self.records:
            event_id = (r.family, _event_id(r.envelope))
            kind = r.envelope.WhichOneof("event") or "?"
            kinds["resent" if event_id in seen else kind] += 1
            seen.add(event_id)
        return kinds


def _event_id(envelope: Message) -> str:
    value: str = getattr(envelope, "event_id")  # noqa: B009 - every envelope has it
    return value


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class _Builder:
    tenant: str
    now: datetime
    rng: random.Random
    drivers: list[str]
    records: list[Produced] = field(default_factory=list)
    trips: list[tuple[str, str, datetime]] = field(default_factory=list)
    """Trips produced so far: id, driver, arrival."""
    deleted: set[str] = field(default_factory=set)
    renames: Counter[str] = field(default_factory=Counter)
    serial: int = 0

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def driver(self) -> str:
        # Skewed activity: busy drivers are ranked, occasional ones are not.
        return self.drivers[int(len(self.drivers) * self.rng.random() ** 6)]

    def trip_end(self) -> datetime:
        """The end of a trip of the current month (if an hour of it has passed) or the
        previous one, to the millisecond."""
        month_start = self.now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        previous_start = (month_start - timedelta(days=1)).replace(day=1)
        current_span = (self.now - timedelta(hours=1) - month_start).total_seconds()
        if current_span > 0 and self.rng.random() < 0.6:
            start, span = month_start, current_span
        else:
            start, span = previous_start, (month_start - previous_start).total_seconds()
        return start + timedelta(milliseconds=int(self.rng.random() * span * 1000))

    def profile(self, user_id: str, occurred_at: datetime) -> None:
        version = self.renames[user_id]
        self.renames[user_id] += 1
        envelope = catalog_pb2.CatalogEvent(
            event_id=f"profile-{user_id}-{version}",
            tenant_id=self.tenant,
            occurred_at=_stamp(occurred_at),
            user_upserted=catalog_pb2.UserUpserted(
                user_id=user_id,
                email=f"{user_id}@example.com",
                firstname=f"{user_id.title()} v{version}",
                lastname="Doe",
                pseudo=user_id[:4],
            ),
        )
        self.add("catalog", user_id, envelope, occurred_at)

    def trip(self) -> None:
        trip_id, user_id, ended = self.next_id("trip"), self.driver(), self.trip_end()
        arrived = ended + timedelta(seconds=self.rng.randint(5, 3600))
        scores = trips_pb2.TripScores()
        if self.rng.random() < 0.95:
            scores.safety = self.rng.randint(0, 100) / 10
        envelope = trips_pb2.TripEvent(
            event_id=f"completed-{trip_id}",
            tenant_id=self.tenant,
            occurred_at=_stamp(ended),
            trip_completed=trips_pb2.TripCompleted(
                trip_id=trip_id,
                user_id=user_id,
                started_at=_stamp(ended - timedelta(minutes=self.rng.randint(1, 90))),
                ended_at=_stamp(ended),
                distance_km=self.rng.randint(500, 40_000) / 1000,
                scores=scores,
            ),
        )
        if self.rng.random() < 0.02:  # deleted before it arrives: a tombstone first
            self.deletion(trip_id, user_id, arrived - timedelta(seconds=1))
        self.add("trips", user_id, envelope, arrived)
        self.trips.append((trip_id, user_id, arrived))

    def deletion(self, trip_id: str, user_id: str, arrived: datetime) -> None:
        envelope = trips_pb2.TripEvent(
            event_id=f"deleted-{trip_id}",
            tenant_id=self.tenant,
            occurred_at=_stamp(arrived),
            trip_deleted=trips_pb2.TripDeleted(trip_id=trip_id, user_id=user_id),
        )
        self.deleted.add(trip_id)
        self.add("trips", user_id, envelope, arrived)

    def delete_a_trip(self) -> None:
        candidates = self.trips[-200:]
        trip_id, user_id, arrived = (
            self.rng.choice(candidates) if candidates else ("", "", self.now)
        )
        if trip_id and trip_id not in self.deleted:
            self.deletion(trip_id, user_id, arrived + timedelta(seconds=self.rng.randint(1, 600)))

    def task_events(self) -> list[tuple[bytes, tasks_pb2.TaskEvent, datetime]]:
        """One task's lifecycle, in order: created, then perhaps started, progressed, and
        completed or failed."""
        task_id = self.next_id("task")
        created = self.now - timedelta(minutes=self.rng.randint(10, 30 * 24 * 60))
        at = created
        items = self.rng.randint(1, 500)
        kind = self.rng.choice(
            [common_pb2.TASK_TYPE_PUSH_FAILED_TRIPS, common_pb2.TASK_TYPE_PUSH_FAILED_CRASHES]
        )
        events: list[tuple[bytes, tasks_pb2.TaskEvent, datetime]] = []

        def event(**oneof: Message) -> None:
            envelope = tasks_pb2.TaskEvent(
                event_id=self.next_id(f"{task_id}-e"),
                tenant_id=self.tenant,
                occurred_at=_stamp(at),
                **oneof,  # type: ignore[arg-type]
            )
            events.append((task_id.encode(), envelope, at))

        event(
            task_created=tasks_pb2.TaskCreated(
                task_id=task_id, type=kind, nb_items=items, created_at=_stamp(created)
            )
        )
        if self.rng.random() < 0.8:
            at += timedelta(seconds=self.rng.randint(1, 60))
            event(task_started=tasks_pb2.TaskStarted(task_id=task_id, started_at=_stamp(at)))
            remaining = items
            for _ in range(self.rng.randint(0, 4)):
                remaining = self.rng.randint(0, remaining)
                at += timedelta(seconds=self.rng.randint(1, 60))
                event(
                    task_progressed=tasks_pb2.TaskProgressed(
                        task_id=task_id, nb_remaining_items=remaining
                    )
                )
        end = self.rng.random()
        at += timedelta(seconds=self.rng.randint(1, 60))
        if end < 0.5:
            event(task_completed=tasks_pb2.TaskCompleted(task_id=task_id, completed_at=_stamp(at)))
        elif end < 0.65:
            event(
                task_failed=tasks_pb2.TaskFailed(task_id=task_id, failed_at=_stamp(at), reason="x")
            )
        return events

    def add(self, family: str, key: str, envelope: Message, arrived: datetime) -> None:
        self.records.append(Produced(family, key.encode(), envelope, _ms(arrived)))


def mixed_stream(
    tenant: str, count: int, *, now: datetime, seed: int = 0, drivers: int | None = None
) -> Stream:
    """About `count` records of one tenant, in the order they are to be produced."""
    rng = random.Random(seed)
    size = drivers or min(max(count // 25, 20), 4000)
    builder = _Builder(tenant, now, rng, [f"driver{i:04d}" for i in range(size)])
    # Every driver has a profile; it may come after some of their trips.
    first_profile = {d: rng.randint(0, count // 2) for d in builder.drivers}
    waiting = sorted(first_profile.items(), key=lambda item: item[1])
    pending_tasks: list[list[tuple[bytes, tasks_pb2.TaskEvent, datetime]]] = []
    fresh = int(count * (1 - RESENT_SHARE))
    while len(builder.records) < fresh:
        position = len(builder.records)
        while waiting and waiting[0][1] <= position:
            driver, _ = waiting.pop(0)
            builder.profile(driver, now - timedelta(days=40, seconds=-position))
        roll = rng.random()
        if roll < 0.6:
            builder.trip()
        elif roll < 0.66:
            builder.delete_a_trip()
        elif roll < 0.68:
            driver = builder.driver()
            if builder.renames[driver]:  # renamed: a newer profile replaces the whole entity
                builder.profile(driver, now - timedelta(days=40, seconds=-position))
        elif roll < 0.72 or not pending_tasks:
            pending_tasks.append(builder.task_events())
        # The next event of a task in flight (tasks interleave with everything else).
        if pending_tasks and rng.random() < 0.35:
            lifecycle = rng.choice(pending_tasks)
            key, envelope, at = lifecycle.pop(0)
            builder.add("tasks", key.decode(), envelope, at + timedelta(seconds=1))
            if not lifecycle:
                pending_tasks.remove(lifecycle)
    for driver, _ in waiting:
        builder.profile(driver, now - timedelta(days=39))
    for lifecycle in pending_tasks:
        for key, envelope, at in lifecycle:
            builder.add("tasks", key.decode(), envelope, at + timedelta(seconds=1))
    records = _with_resent(builder.records, rng, count - len(builder.records))
    return Stream(tenant, now, tuple(records))


def _with_resent(records: list[Produced], rng: random.Random, extra: int) -> list[Produced]:
    """Insert `extra` copies of earlier records (same key and envelope, event id included)
    later in the stream, as a producer re-sending after a timeout does; the copy arrives
    later, so it carries a later timestamp."""
    out = list(records)
    for _ in range(max(extra, 0)):
        original = rng.randrange(len(out))
        copy = out[original]
        delay_ms = rng.randint(1, 600) * 1000
        at = rng.randint(original + 1, len(out))
        out.insert(at, Produced(copy.family, copy.key, copy.envelope, copy.timestamp_ms + delay_ms))
    return out


# --- producing ---------------------------------------------------------------------------


@dataclass
class Producer:
    """Writes a stream's records to their topics and remembers where each partition's log
    ends (from the broker's acknowledgements)."""

    bootstrap: str
    topic_of: Mapping[str, str]
    ends: dict[tuple[str, int], int] = field(default_factory=dict)
    placed: list[tuple[Produced, tuple[str, int], int]] = field(default_factory=list)
    """Each record sent, with the partition and offset the broker gave it."""
    _producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Producer:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, records: Sequence[Produced]) -> None:
        assert self._producer is not None
        futures = [
            await self._producer.send(
                self.topic_of[r.family],
                r.envelope.SerializeToString(),
                key=r.key,
                timestamp_ms=r.timestamp_ms,
            )
            for r in records
        ]
        for record, metadata in zip(records, await asyncio.gather(*futures), strict=True):
            tp = (metadata.topic, metadata.partition)
            self.ends[tp] = max(self.ends.get(tp, 0), metadata.offset + 1)
            self.placed.append((record, tp, metadata.offset))

    @property
    def sent(self) -> int:
        return len(self.placed)

    def folded_part(self, stream: Stream, stored: Mapping[tuple[str, int], int]) -> Stream:
        """The records below the stored offsets, in log order per partition: what the state
        reflects when Podium stands at `stored`."""
        kept = [r for r, tp, offset in self.placed if offset < stored.get(tp, 0)]
        return Stream(stream.tenant, stream.now, tuple(kept))

    async def progressively(self, records: Sequence[Produced], *, chunk: int, pause: float) -> None:
        for start in range(0, len(records), chunk):
            await self.send(records[start : start + chunk])
            await asyncio.sleep(pause)


# --- exact figures, by fractions -----------------------------------------------------------

TRIP_KM = st.one_of(
    st.integers(0, 40_000).map(lambda metres: metres / 1000),
    st.floats(0, 10_000),  # any double within the bounds: up to 17 significant digits
    st.floats(0, 1e-6),
    st.sampled_from([0.0, 5e-324, 1e-9, 3.99992, 10_000.0]),
)
"""Trip distances for property tests: everyday ones, any double of the bounds, tiny ones."""

TRIP_SCORES = st.one_of(
    st.none(),
    st.integers(0, 1000).map(lambda hundredths: hundredths / 100),
    st.floats(0, 10),
    st.sampled_from([5e-324, 8.12496, 10.0]),
)
"""A trip's score for property tests, or none."""


def decimal_of(value: float) -> Fraction:
    """The decimal a producer's double stands for: the shortest that reads back as it."""
    return Fraction(repr(value))


def half_up(value: Fraction) -> int:
    """`value` rounded to an integer, a half going up (figures are never negative)."""
    return math.floor(value + Fraction(1, 2))


@dataclass(frozen=True, slots=True)
class Figures:
    """Trips of one window for one score, exactly: their count, their km, and over those
    that carry the score, the sum of score * km (`weighted`) and of km (`weight`)."""

    trips: int = 0
    km: Fraction = Fraction(0)
    weighted: Fraction = Fraction(0)
    weight: Fraction = Fraction(0)

    def with_trip(self, km: float, score: float | None) -> Figures:
        distance = decimal_of(km)
        carried = Fraction(0) if score is None else decimal_of(score)
        return Figures(
            self.trips + 1,
            self.km + distance,
            self.weighted + carried * distance,
            self.weight + (0 if score is None else distance),
        )

    @property
    def metres(self) -> int:
        return half_up(self.km * 1000)

    @property
    def score_hundredths(self) -> int | None:
        """The distance-weighted mean, rounded half up to hundredths once; none without a
        trip of some distance carrying the score."""
        return None if self.weight == 0 else half_up(self.weighted / self.weight * 100)

    @property
    def km_hundredths(self) -> int | None:
        """A DISTANCE challenge's score: the km, rounded half up to hundredths."""
        return half_up(self.km * 100) if self.trips else None


@dataclass(frozen=True, slots=True)
class Standing:
    user_id: str
    rank: int
    """0 when not ranked."""
    hundredths: int | None
    metres: int
    trips: int


def standings(
    figures: Mapping[str, Figures],
    min_trips: int,
    min_km: Fraction,
    score_of: Callable[[Figures], int | None] = lambda f: f.score_hundredths,
) -> list[Standing]:
    """The ranked (enough trips and km, and a score; by rounded score, equal ones sharing a
    rank; ties by metres, then user id), then the others (by metres, then user id)."""
    rows = []
    others = []
    for user, f in figures.items():
        hundredths = score_of(f)
        if f.trips >= min_trips and f.km >= min_km and hundredths is not None:
            rows.append((hundredths, f.metres, user))
        else:
            others.append(Standing(user, 0, hundredths, f.metres, f.trips))
    rows.sort(key=lambda row: (-row[0], -row[1], row[2]))
    ranked = [
        Standing(
            user,
            1 + sum(1 for other in rows if other[0] > hundredths),
            hundredths,
            metres,
            figures[user].trips,
        )
        for hundredths, metres, user in rows
    ]
    return ranked + sorted(others, key=lambda s: (-s.metres, s.user_id))


def path_score(best_scores: Iterable[float]) -> int:
    """The mean of the steps' best scores, rounded half up once; 0 without any."""
    scores = [decimal_of(score) for score in best_scores]
    return half_up(sum(scores, Fraction(0)) / len(scores)) if scores else 0


# --- the answers, recomputed ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ranked:
    user_id: str
    firstname: str
    rank: int
    score: float
    distance: float
    trips: int


@dataclass(frozen=True, slots=True)
class Ranking:
    year: int
    month: int
    ranked: tuple[Ranked, ...]
    not_ranked: Mapping[str, tuple[int, float]]
    """user id -> (trips, km) of every known driver that is not ranked."""


def _month_of(moment: datetime) -> tuple[int, int]:
    return moment.year, moment.month


def _month_end(year: int, month: int) -> datetime:
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def expected_month(stream: Stream, year: int, month: int) -> dict[str, Figures]:
    """Each driver's trips that ended in the month and count in it: a trip counts when it
    arrived before the month froze (its end plus the grace) and no deletion of it did."""
    freeze = _month_end(year, month) + GRACE
    trips: dict[str, trips_pb2.TripCompleted] = {}
    arrived: dict[str, datetime] = {}
    deleted: dict[str, datetime] = {}
    for r in stream.records:
        if not isinstance(r.envelope, trips_pb2.TripEvent):
            continue
        if r.envelope.HasField("trip_completed"):
            trip = r.envelope.trip_completed
            trips[trip.trip_id] = trip
            first = arrived.get(trip.trip_id)
            arrived[trip.trip_id] = r.arrived_at if first is None else min(first, r.arrived_at)
        else:
            gone = r.envelope.trip_deleted.trip_id
            first = deleted.get(gone)
            deleted[gone] = r.arrived_at if first is None else min(first, r.arrived_at)
    figures: dict[str, Figures] = {}
    for trip_id, trip in trips.items():
        if _month_of(trip.ended_at.ToDatetime(UTC)) != (year, month):
            continue
        if arrived[trip_id] >= freeze or (trip_id in deleted and deleted[trip_id] < freeze):
            continue
        safety = trip.scores.safety if trip.scores.HasField("safety") else None
        before = figures.get(trip.user_id, Figures())
        figures[trip.user_id] = before.with_trip(trip.distance_km, safety)
    return figures


def _names(stream: Stream) -> dict[str, str]:
    """Each driver's first name from their newest profile (by occurred_at, then event id)."""
    newest: dict[str, tuple[datetime, str, str]] = {}
    for r in stream.records:
        if isinstance(r.envelope, catalog_pb2.CatalogEvent) and r.envelope.HasField(
            "user_upserted"
        ):
            profile = r.envelope.user_upserted
            version = (r.envelope.occurred_at.ToDatetime(UTC), r.envelope.event_id)
            if profile.user_id not in newest or version > newest[profile.user_id][:2]:
                newest[profile.user_id] = (*version, profile.firstname)
    return {user: entry[2] for user, entry in newest.items()}


def expected_ranking(stream: Stream, year: int, month: int) -> Ranking:
    """The month's safety ranking: ranked with at least MIN_TRIPS trips, MIN_KM and a score;
    the mean rounded half up to hundredths; equal rounded scores share a rank; ties by
    distance, then user id. Every other known driver is not ranked."""
    figures = expected_month(stream, year, month)
    names = _names(stream)
    ranked = tuple(
        Ranked(
            s.user_id,
            names.get(s.user_id, ""),
            s.rank,
            (s.hundredths or 0) / 100,
            s.metres / 1000,
            s.trips,
        )
        for s in standings(figures, MIN_TRIPS, MIN_KM)
        if s.rank
    )
    listed = {r.user_id for r in ranked}
    everyone = set(names) | set(figures)
    not_ranked = {
        user: (figures[user].trips, figures[user].metres / 1000) if user in figures else (0, 0.0)
        for user in sorted(everyone - listed)
    }
    return Ranking(year, month, ranked, not_ranked)


def actual_ranking(month: driver_ranking_pb2.MonthRanking) -> Ranking:
    ranked = tuple(
        Ranked(d.userId, d.firstname, d.rank, d.score, d.distance, d.tripNumber)
        for d in month.driverRanked
    )
    not_ranked = {d.userId: (d.tripNumber, d.distance) for d in month.driverNotRanked}
    return Ranking(month.year, month.monthNumber, ranked, not_ranked)


@dataclass(frozen=True, slots=True)
class TaskState:
    status: int
    type: int
    nb_items: int
    remaining: int
    created_at: datetime
    completed_at: datetime | None


def expected_tasks(stream: Stream) -> dict[str, TaskState]:
    """Each task after its events in log order (a task's events share its key, so one
    partition keeps their order): an event id seen before changes nothing; PENDING on
    created; IN_PROGRESS on started from PENDING; the remaining items only fall, within
    0..items, while IN_PROGRESS; COMPLETED (0 remaining) or FAILED from PENDING or
    IN_PROGRESS; nothing leaves COMPLETED or FAILED."""
    seen: set[str] = set()
    tasks: dict[str, TaskState] = {}
    open_states = (common_pb2.TASK_STATUS_PENDING, common_pb2.TASK_STATUS_IN_PROGRESS)
    for r in stream.records:
        envelope = r.envelope
        if not isinstance(envelope, tasks_pb2.TaskEvent) or envelope.event_id in seen:
            continue
        seen.add(envelope.event_id)
        kind = envelope.WhichOneof("event")
        if kind == "task_created":
            c = envelope.task_created
            if c.task_id not in tasks:
                tasks[c.task_id] = TaskState(
                    common_pb2.TASK_STATUS_PENDING,
                    c.type,
                    c.nb_items,
                    c.nb_items,
                    c.created_at.ToDatetime(UTC),
                    None,
                )
            continue
        payload = getattr(envelope, kind or "")
        task = tasks.get(payload.task_id)
        if task is None or task.status not in open_states:
            continue
        if kind == "task_started" and task.status == common_pb2.TASK_STATUS_PENDING:
            task = _replace_status(task, common_pb2.TASK_STATUS_IN_PROGRESS)
        elif kind == "task_progressed" and task.status == common_pb2.TASK_STATUS_IN_PROGRESS:
            left = payload.nb_remaining_items
            if 0 <= left <= task.remaining:
                task = TaskState(task.status, task.type, task.nb_items, left, task.created_at, None)
        elif kind == "task_completed":
            task = TaskState(
                common_pb2.TASK_STATUS_COMPLETED,
                task.type,
                task.nb_items,
                0,
                task.created_at,
                payload.completed_at.ToDatetime(UTC),
            )
        elif kind == "task_failed":
            task = _replace_status(task, common_pb2.TASK_STATUS_FAILED)
        tasks[payload.task_id] = task
    return tasks


def _replace_status(task: TaskState, status: int) -> TaskState:
    return TaskState(
        status, task.type, task.nb_items, task.remaining, task.created_at, task.completed_at
    )


def actual_task(answer: task_api.GetTaskResponse) -> TaskState:
    return TaskState(
        answer.status,
        answer.type,
        answer.nbItems,
        answer.nbRemainingItems,
        answer.createdAt.ToDatetime(UTC),
        answer.completedAt.ToDatetime(UTC) if answer.HasField("completedAt") else None,
    )


# --- asking Podium ---------------------------------------------------------------------------


async def ranking_answer(
    channel: grpc.aio.Channel, key: str, *, seconds: float = 10.0
) -> driver_ranking_pb2.GetDriverRankingResponse:
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
    answer: driver_ranking_pb2.GetDriverRankingResponse = await stub.GetDriverRanking(
        driver_ranking_pb2.GetDriverRankingRequest(type=common_pb2.RANKING_TYPE_SAFETY),
        metadata=(("x-api-key", key),),
        timeout=seconds,
    )
    return answer


async def task_answers(
    channel: grpc.aio.Channel, key: str, task_ids: Iterable[str]
) -> dict[str, TaskState]:
    stub = tasks_pb2_grpc.TaskServiceStub(channel)
    answers: dict[str, TaskState] = {}
    for task_id in task_ids:
        answer = await stub.GetTask(
            task_api.GetTaskRequest(task_id=task_id), metadata=(("x-api-key", key),), timeout=10
        )
        answers[task_id] = actual_task(answer)
    return answers


def ranking_differences(expected: Ranking, actual: Ranking) -> list[str]:
    """What differs, in words (empty when the answers agree)."""
    if expected == actual:
        return []
    problems = []
    if (expected.year, expected.month) != (actual.year, actual.month):
        problems.append(f"month {actual.year}-{actual.month}, expected {expected.month}")
    if expected.ranked != actual.ranked:
        want = {r.user_id: r for r in expected.ranked}
        got = {r.user_id: r for r in actual.ranked}
        for user in sorted(set(want) | set(got)):
            if want.get(user) != got.get(user):
                problems.append(f"ranked {user}: expected {want.get(user)}, got {got.get(user)}")
        if not problems:
            problems.append("ranked drivers listed in another order")
    for user in sorted(set(expected.not_ranked) | set(actual.not_ranked)):
        if expected.not_ranked.get(user) != actual.not_ranked.get(user):
            problems.append(
                f"not ranked {user}: expected {expected.not_ranked.get(user)}, "
                f"got {actual.not_ranked.get(user)}"
            )
    return problems[:20]
