"""A mixed stream of producer events, and the answers Podium owes for it recomputed in the
test's own words (not through Podium's rules), for the fault-tolerance tests; and the exact
figures (docs/rules.md#exact-figures) worked out with `fractions.Fraction`, which the property
tests hold Podium's incremental state to.

The stream is what producers would write: driver profiles (renamed now and then), trips of the
current and the previous month, deletions (some arriving before their trip), task lifecycles,
and about one event in ten sent a second time. Each record carries the Kafka timestamp a timely
producer gives it (a trip arrives minutes after it ended), so the late-event rule
(docs/rules.md#arrival-time-and-freezes) is in play and the answers do not depend on when the
test runs.

Every event is valid: a stream folded by Podium leaves no dead letter.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Generic, TypeVar

import grpc
from aiokafka import AIOKafkaProducer
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import strategies as st
from podium.events.v1 import catalog_pb2, enrollments_pb2, tasks_pb2, trips_pb2
from podium.v1 import (
    challenges_pb2,
    common_pb2,
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
    tasks_pb2_grpc,
)
from podium.v1 import tasks_pb2 as task_api

from service.domain import events as ev

MIN_TRIPS = 5
MIN_KM = Fraction(20)
GRACE = timedelta(hours=24)
"""Podium's default rule settings (docs/rules.md#settings), which the tests keep."""

RESENT_SHARE = 0.1

P = TypeVar("P")


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
    ends (from the broker's acknowledgements). Records go where their key puts them (Kafka's
    default partitioner), or with `scatter` each to a partition it picks at random: a
    producer that keys by something else, or partitions otherwise."""

    bootstrap: str
    topic_of: Mapping[str, str]
    scatter: random.Random | None = None
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
                partition=await self._partition(self.topic_of[r.family]),
            )
            for r in records
        ]
        for record, metadata in zip(records, await asyncio.gather(*futures), strict=True):
            tp = (metadata.topic, metadata.partition)
            self.ends[tp] = max(self.ends.get(tp, 0), metadata.offset + 1)
            self.placed.append((record, tp, metadata.offset))

    async def _partition(self, topic: str) -> int | None:
        if self.scatter is None or self._producer is None:
            return None
        partitions: set[int] = await self._producer.partitions_for(topic)
        return self.scatter.choice(sorted(partitions))

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


# --- group membership, recomputed -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sighting(Generic[P]):
    """One copy of a profile version, as it arrived."""

    user_id: str
    version: tuple[datetime, str]
    """Its `occurred_at`, then its event id: the newest replaces the others."""
    arrived_at: datetime
    profile: P


def event_sightings(events: Iterable[ev.Event]) -> list[Sighting[ev.UserUpserted]]:
    """Every copy of every profile version among folded events, as it arrived."""
    return [
        Sighting(p.user_id, (e.meta.occurred_at, e.meta.event_id), e.meta.arrived_at, p)
        for e in events
        if isinstance(p := e.payload, ev.UserUpserted)
    ]


def todays_profiles(sightings: Iterable[Sighting[P]]) -> dict[str, P]:
    """Each user's newest profile: their names everywhere, their groups in live windows."""
    return _newest(sightings, lambda _: True)


def profiles_at_freeze(sightings: Iterable[Sighting[P]], freeze: datetime) -> dict[str, P]:
    """Each user's profile in a window frozen at `freeze`: as it stood just before the freeze
    (the newest of the versions that had arrived); for a user none of whose versions had
    arrived by then (a catalog backfilled later), as it stood once the first one arrived.
    A version arrives when its first copy does."""
    seen = list(sightings)
    placing = _newest(seen, lambda s: s.arrived_at < freeze)
    first: dict[str, datetime] = {}
    for s in seen:
        first[s.user_id] = min(first.get(s.user_id, s.arrived_at), s.arrived_at)
    for user_id, arrived in first.items():
        if user_id not in placing:
            came = [s for s in seen if s.user_id == user_id and s.arrived_at <= arrived]
            placing[user_id] = todays_profiles(came)[user_id]
    return placing


def _newest(sightings: Iterable[Sighting[P]], kept: Callable[[Sighting[P]], bool]) -> dict[str, P]:
    newest: dict[str, Sighting[P]] = {}
    for s in sightings:
        if kept(s) and (s.user_id not in newest or s.version > newest[s.user_id].version):
            newest[s.user_id] = s
    return {user_id: s.profile for user_id, s in newest.items()}


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
    not_ranked: Mapping[str, tuple[int, float, str]]
    """user id -> (trips, km, first name) of every listed driver that is not ranked."""


def _month_of(moment: datetime) -> tuple[int, int]:
    return moment.year, moment.month


def _month_end(year: int, month: int) -> datetime:
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def counted_trips(stream: Stream, freeze: datetime) -> list[trips_pb2.TripCompleted]:
    """The trips that count in a window frozen at `freeze`: each arrived (its first copy)
    before the freeze, and no deletion of it did."""
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
    return [
        trip
        for trip_id, trip in trips.items()
        if arrived[trip_id] < freeze and not (trip_id in deleted and deleted[trip_id] < freeze)
    ]


def _figures(trips: Iterable[trips_pb2.TripCompleted]) -> dict[str, Figures]:
    """Each driver's trips, kilometres and safety scores weighted by distance, exactly."""
    figures: dict[str, Figures] = {}
    for trip in trips:
        safety = trip.scores.safety if trip.scores.HasField("safety") else None
        figures[trip.user_id] = figures.get(trip.user_id, Figures()).with_trip(
            trip.distance_km, safety
        )
    return figures


def expected_month(
    stream: Stream, year: int, month: int, *, grace: timedelta = GRACE
) -> dict[str, Figures]:
    """Each driver's trips that ended in the month and count in it: a trip counts when it
    arrived before the month froze (its end plus the grace) and no deletion of it did."""
    freeze = _month_end(year, month) + grace
    return _figures(
        trip
        for trip in counted_trips(stream, freeze)
        if _month_of(trip.ended_at.ToDatetime(UTC)) == (year, month)
    )


def stream_sightings(stream: Stream) -> list[Sighting[catalog_pb2.UserUpserted]]:
    """Every copy of every profile version in a stream, as it arrived."""
    return [
        Sighting(
            r.envelope.user_upserted.user_id,
            (r.envelope.occurred_at.ToDatetime(UTC), r.envelope.event_id),
            r.arrived_at,
            r.envelope.user_upserted,
        )
        for r in stream.records
        if isinstance(r.envelope, catalog_pb2.CatalogEvent) and r.envelope.HasField("user_upserted")
    ]


def _groups_of_window(stream: Stream, freeze: datetime) -> dict[str, catalog_pb2.UserUpserted]:
    """Each user's profile that places them in groups: as it froze, or today's while the
    window is live (at the stream's `now`)."""
    seen = stream_sightings(stream)
    return profiles_at_freeze(seen, freeze) if stream.now >= freeze else todays_profiles(seen)


def expected_ranking(
    stream: Stream, year: int, month: int, *, group: str = "", grace: timedelta = GRACE
) -> Ranking:
    """The month's safety ranking: ranked with at least MIN_TRIPS trips, MIN_KM and a
    score; the mean rounded half up to hundredths; equal rounded scores share a rank; ties by
    distance, then user id. Every other driver listed is not ranked: without a group, every
    profile and every driver with trips; with one, its members (as the month froze, or
    today's while it is live) and nobody else. Names are today's."""
    figures = expected_month(stream, year, month, grace=grace)
    names = {u: p.firstname for u, p in todays_profiles(stream_sightings(stream)).items()}
    if group:
        placing = _groups_of_window(stream, _month_end(year, month) + grace)
        everyone = {u for u, p in placing.items() if group in p.groups}
        figures = {u: f for u, f in figures.items() if u in everyone}
    else:
        everyone = set(names) | set(figures)
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
    not_ranked = {
        user: ((figures[user].trips, figures[user].metres / 1000) if user in figures else (0, 0.0))
        + (names.get(user, ""),)
        for user in sorted(everyone - listed)
    }
    return Ranking(year, month, ranked, not_ranked)


def actual_ranking(month: driver_ranking_pb2.MonthRanking) -> Ranking:
    ranked = tuple(
        Ranked(d.userId, d.firstname, d.rank, d.score, d.distance, d.tripNumber)
        for d in month.driverRanked
    )
    not_ranked = {d.userId: (d.tripNumber, d.distance, d.firstname) for d in month.driverNotRanked}
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


# --- a challenge's ranking and progress, recomputed -------------------------------------------


@dataclass(frozen=True, slots=True)
class ChallengeUser:
    """A registered user as a challenge ranking lists them (rank 0: not ranked)."""

    user_id: str
    firstname: str
    rank: int
    score: float
    distance: float
    trips: int


@dataclass(frozen=True, slots=True)
class ChallengeRanking:
    registered: int
    ranked: tuple[ChallengeUser, ...]
    not_ranked: tuple[ChallengeUser, ...]


@dataclass(frozen=True, slots=True)
class ProgressRow:
    user_id: str
    firstname: str
    rank: int
    score: float
    score_before: float
    evolution: float
    trips: int
    distance: float


@dataclass(frozen=True, slots=True)
class ChallengeProgress:
    registered: int
    ranked: int
    with_data_before: int
    total_distance: float
    total_trips: int
    users: tuple[ProgressRow, ...]


@dataclass(frozen=True, slots=True)
class _Registered:
    user_id: str
    during: Figures
    before: Figures
    hundredths: int | None
    ranked: bool


def _published(stream: Stream, challenge_id: str) -> catalog_pb2.ChallengePublished:
    """The challenge as its newest publication says."""
    publications = [
        (r.envelope.occurred_at.ToDatetime(UTC), r.envelope.event_id, r.envelope)
        for r in stream.records
        if isinstance(r.envelope, catalog_pb2.CatalogEvent)
        and r.envelope.HasField("challenge_published")
        and r.envelope.challenge_published.challenge_id == challenge_id
    ]
    return max(publications, key=lambda p: p[:2])[2].challenge_published


def _registered(
    stream: Stream, challenge_id: str, group: str, grace: timedelta
) -> list[_Registered]:
    """A SAFETY challenge's registered users (of the group: members as it froze, or today's
    while it is live) with their tallies: during, the trips that ended from the later of the
    start and their earliest registration that arrived before the freeze, to the end; before,
    those of the pre-challenge window (the challenge's length before its start when no
    period is given). Trips count as for a month frozen at the challenge's freeze."""
    challenge = _published(stream, challenge_id)
    start, end = challenge.start_at.ToDatetime(UTC), challenge.end_at.ToDatetime(UTC)
    freeze = end + grace
    period = (
        challenge.pre_challenge_period.ToTimedelta()
        if challenge.HasField("pre_challenge_period")
        else end - start
    )
    registered_at: dict[str, tuple[datetime, datetime]] = {}
    for r in stream.records:
        if (
            isinstance(r.envelope, enrollments_pb2.EnrollmentEvent)
            and r.envelope.HasField("challenge_registered")
            and r.envelope.challenge_registered.challenge_id == challenge_id
            and r.arrived_at < freeze
        ):
            user = r.envelope.challenge_registered.user_id
            seen = (r.envelope.challenge_registered.registered_at.ToDatetime(UTC), r.arrived_at)
            registered_at[user] = min(registered_at.get(user, seen), seen)
    if group:
        placing = _groups_of_window(stream, freeze)
        registered_at = {
            u: at for u, at in registered_at.items() if u in placing and group in placing[u].groups
        }
    trips = counted_trips(stream, freeze)
    min_km = decimal_of(challenge.min_distance_km)
    users = []
    for user, (registered, _) in registered_at.items():
        theirs = [t for t in trips if t.user_id == user]
        during = _figures(
            t for t in theirs if max(start, registered) <= t.ended_at.ToDatetime(UTC) < end
        )
        before = _figures(t for t in theirs if start - period <= t.ended_at.ToDatetime(UTC) < start)
        d, b = during.get(user, Figures()), before.get(user, Figures())
        hundredths = d.score_hundredths
        ranked = hundredths is not None and d.trips >= challenge.min_trips and d.km >= min_km
        users.append(_Registered(user, d, b, hundredths, ranked))
    return users


def expected_challenge_ranking(
    stream: Stream, challenge_id: str, *, group: str = "", grace: timedelta = GRACE
) -> ChallengeRanking:
    """Ranked: a score, the challenge's minimum trips and distance; ranks as for drivers; the
    others by distance, then user id. Names are today's."""
    names = {u: p.firstname for u, p in todays_profiles(stream_sightings(stream)).items()}
    users = _registered(stream, challenge_id, group, grace)
    ranked = sorted(
        (u for u in users if u.ranked),
        key=lambda u: (-(u.hundredths or 0), -u.during.metres, u.user_id),
    )
    others = sorted((u for u in users if not u.ranked), key=lambda u: (-u.during.metres, u.user_id))

    def shown(u: _Registered, rank: int) -> ChallengeUser:
        score = 0.0 if rank == 0 else (u.hundredths or 0) / 100
        return ChallengeUser(
            u.user_id, names.get(u.user_id, ""), rank, score, u.during.metres / 1000, u.during.trips
        )

    return ChallengeRanking(
        len(users),
        tuple(
            shown(u, 1 + sum(1 for o in ranked if (o.hundredths or 0) > (u.hundredths or 0)))
            for u in ranked
        ),
        tuple(shown(u, 0) for u in others),
    )


def expected_challenge_progress(
    stream: Stream, challenge_id: str, *, group: str = "", grace: timedelta = GRACE
) -> ChallengeProgress:
    """Counters over the registered users (of the group); the users listed are the ranked
    ones with enough trips and a score before the challenge, best evolution first (then
    rank, then user id)."""
    challenge = _published(stream, challenge_id)
    users = _registered(stream, challenge_id, group, grace)
    ranking = expected_challenge_ranking(stream, challenge_id, group=group, grace=grace)
    by_id = {u.user_id: u for u in users}

    def has_data_before(u: _Registered) -> bool:
        return (
            u.before.trips >= challenge.pre_challenge_min_trips
            and u.before.score_hundredths is not None
        )

    rows = []
    for shown in ranking.ranked:
        u = by_id[shown.user_id]
        if has_data_before(u):
            before = u.before.score_hundredths or 0
            evolution = (u.hundredths or 0) - before
            row = ProgressRow(
                u.user_id,
                shown.firstname,
                shown.rank,
                shown.score,
                before / 100,
                evolution / 100,
                u.during.trips,
                u.during.metres / 1000,
            )
            rows.append((-evolution, shown.rank, u.user_id, row))
    return ChallengeProgress(
        registered=len(users),
        ranked=len(ranking.ranked),
        with_data_before=sum(1 for u in users if has_data_before(u)),
        total_distance=half_up(sum((u.during.km for u in users), Fraction(0)) * 1000) / 1000,
        total_trips=sum(u.during.trips for u in users),
        users=tuple(row for *_, row in sorted(rows)),
    )


def actual_challenge_ranking(
    answer: challenges_pb2.GetChallengeRankingResponse,
) -> ChallengeRanking:
    return ChallengeRanking(
        answer.registeredUsers,
        tuple(
            ChallengeUser(u.username, u.firstname, u.rank, u.score, u.distance, u.numberTrips)
            for u in answer.users
        ),
        tuple(
            ChallengeUser(u.username, u.firstname, 0, 0.0, u.distance, u.numberTrips)
            for u in answer.usersNotRanked
        ),
    )


def actual_challenge_progress(
    answer: challenges_pb2.GetChallengeProgressResponse,
) -> ChallengeProgress:
    return ChallengeProgress(
        answer.registeredUsers,
        answer.rankedUsers,
        answer.usersWithDataBefore,
        answer.totalDistance,
        answer.totalNumberTrips,
        tuple(
            ProgressRow(
                u.username,
                u.firstname,
                u.rank,
                u.score,
                u.scoreBefore,
                u.scoreEvolution,
                u.numberTrips,
                u.distance,
            )
            for u in answer.users
        ),
    )


def progress_differences(expected: ChallengeProgress, actual: ChallengeProgress) -> list[str]:
    """What differs, in words (empty when the answers agree)."""
    problems = [
        f"{name} {got}, expected {want}"
        for name, want, got in (
            ("registeredUsers", expected.registered, actual.registered),
            ("rankedUsers", expected.ranked, actual.ranked),
            ("usersWithDataBefore", expected.with_data_before, actual.with_data_before),
            ("totalDistance", expected.total_distance, actual.total_distance),
            ("totalNumberTrips", expected.total_trips, actual.total_trips),
        )
        if want != got
    ]
    for want, got in itertools.zip_longest(expected.users, actual.users):
        if want != got:
            problems.append(
                f"line {got and (got.user_id, got.score, got.score_before, got.evolution)}, "
                f"expected {want and (want.user_id, want.score, want.score_before, want.evolution)}"
            )
    return problems


# --- a backfill: a platform's last month brought in, and its catalog sent today ------------


@dataclass(frozen=True, slots=True)
class Backfill:
    """What a platform moving in sends: `history`, last month's profiles, trips, deletions,
    registrations and a challenge that ended then, each stamped when it happened (`podium
    produce --timestamps occurred-at`); and `today`, profiles sent now (drivers never heard of
    before, and drivers moving) and a few trips of last month sent too late, stamped by the
    producer client. `stream` holds both, `today` stamped with the stream's `now`."""

    stream: Stream
    history: tuple[Produced, ...]
    today: tuple[Produced, ...]
    challenge_id: str
    groups: tuple[str, ...]


def json_lines(records: Iterable[Produced]) -> str:
    """The records' envelopes as JSON Lines, what `podium produce` reads."""
    return "".join(json_format.MessageToJson(r.envelope, indent=None) + "\n" for r in records)


def backfill(tenant: str, now: datetime, *, seed: int = 0, drivers: int = 40) -> Backfill:
    """Drivers of four groups: about half known from last month's catalog (a third of those
    moved during the month, a quarter move today), the others only from profiles sent today;
    a few with trips and no profile at all, a few with a profile and no trip. Each driver with
    trips has up to nine last month; a SAFETY challenge ran from the 4th to the 18th of last
    month for registered drivers of every group."""
    rng = random.Random(seed)
    groups = ("north", "south", "east", "west")
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = (month_start - timedelta(days=1)).replace(day=1)
    span = (month_start - last).total_seconds()

    def in_last_month(low: float = 0.0, high: float = 1.0) -> datetime:
        return last + timedelta(milliseconds=int(rng.uniform(low, high) * span * 1000))

    history = _Builder(tenant, now, rng, [])
    today = _Builder(tenant, now, rng, [])

    def profile(builder: _Builder, user: str, group: str, at: datetime) -> None:
        version = history.next_id(f"profile-{user}-")  # one count: event ids stay unique
        envelope = catalog_pb2.CatalogEvent(
            event_id=version,
            tenant_id=tenant,
            occurred_at=_stamp(at),
            user_upserted=catalog_pb2.UserUpserted(
                user_id=user,
                email=f"{user}@example.com",
                firstname=f"{user.title()} {version.rsplit('-', 1)[-1]}",
                lastname="Doe",
                pseudo=user,
                groups=[group],
            ),
        )
        builder.add("catalog", user, envelope, at if builder is history else now)

    people = [f"drv{i:02d}" for i in range(drivers)]
    without_profile, without_trips = set(people[-3:]), set(people[-6:-3])
    for user in people:
        if user in without_profile:
            continue
        if rng.random() < 0.5:  # known last month
            profile(history, user, rng.choice(groups), in_last_month(0.0, 0.1))
            if rng.random() < 1 / 3:
                profile(history, user, rng.choice(groups), in_last_month(0.3, 0.9))
            if rng.random() < 1 / 4:
                profile(today, user, rng.choice(groups), now)
        else:  # the catalog comes today: placed last month by this profile
            profile(today, user, rng.choice(groups), now)

    challenge_id = "ch-last-month-safety"
    start, end = last + timedelta(days=3), last + timedelta(days=17)
    published = catalog_pb2.CatalogEvent(
        event_id=f"pub-{challenge_id}",
        tenant_id=tenant,
        occurred_at=_stamp(last - timedelta(days=2)),
        challenge_published=catalog_pb2.ChallengePublished(
            challenge_id=challenge_id,
            title="Safe last month",
            theme=common_pb2.CHALLENGE_THEME_SAFETY,
            start_at=_stamp(start),
            end_at=_stamp(end),
            groups=list(groups),
            min_trips=2,
            min_distance_km=5,
            pre_challenge_period=Duration(seconds=3 * 24 * 3600),
            pre_challenge_min_trips=1,
        ),
    )
    history.add("catalog", challenge_id, published, last - timedelta(days=2))

    for user in people:
        if user in without_trips:
            continue
        for _ in range(rng.randint(0, 9)):
            trip_id = history.next_id(f"trip-{user}-")
            ended = in_last_month()
            envelope = trips_pb2.TripEvent(
                event_id=f"completed-{trip_id}",
                tenant_id=tenant,
                occurred_at=_stamp(ended),
                trip_completed=trips_pb2.TripCompleted(
                    trip_id=trip_id,
                    user_id=user,
                    started_at=_stamp(ended - timedelta(minutes=rng.randint(5, 60))),
                    ended_at=_stamp(ended),
                    distance_km=rng.randint(1_000, 15_000) / 1000,
                    scores=trips_pb2.TripScores(safety=rng.randint(0, 100) / 10)
                    if rng.random() < 0.95
                    else trips_pb2.TripScores(),
                ),
            )
            late = rng.random() < 0.05  # sent today, after last month froze: it counts nowhere
            (today if late else history).add("trips", user, envelope, now if late else ended)
            if not late and rng.random() < 0.05:
                gone = min(ended + timedelta(hours=rng.randint(1, 48)), now)
                deletion = trips_pb2.TripEvent(
                    event_id=f"deleted-{trip_id}",
                    tenant_id=tenant,
                    occurred_at=_stamp(gone),
                    trip_deleted=trips_pb2.TripDeleted(trip_id=trip_id, user_id=user),
                )
                history.add("trips", user, deletion, gone)
        if rng.random() < 0.7:
            registered = start + timedelta(hours=rng.randint(-48, 120))
            registration = enrollments_pb2.EnrollmentEvent(
                event_id=f"reg-{challenge_id}-{user}",
                tenant_id=tenant,
                occurred_at=_stamp(registered),
                challenge_registered=enrollments_pb2.ChallengeRegistered(
                    challenge_id=challenge_id, user_id=user, registered_at=_stamp(registered)
                ),
            )
            history.add("enrollments", user, registration, registered)

    sent = sorted(history.records, key=lambda r: r.timestamp_ms)
    stream = Stream(tenant, now, (*sent, *today.records))
    return Backfill(stream, tuple(sent), tuple(today.records), challenge_id, groups)


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
