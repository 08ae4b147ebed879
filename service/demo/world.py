"""The demo's small world for one tenant, as a pure function of (tenant, now, seed): the
envelopes producers would have written, each with the moment it was written (its record's
timestamp, the arrival time Podium freezes by), and the ids to show.

About 300 drivers in 5 groups with trips this month and last; three challenges (one running,
one ended with its progress available, one on distance) with registrations; two path sessions
with learners in every status; 20 tasks, four in each state. Everything is dated around `now`
and nothing after it. Ids and event ids depend on the seed only, and every figure on (now,
seed): the same world sent twice is the same events twice, which Podium folds once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from podium.events.v1 import catalog_pb2, enrollments_pb2, tasks_pb2, trips_pb2

from service.domain.events import TaskStatus
from service.domain.ranking import Month

DEFAULT_SEED = 15
GROUPS = ("north", "south", "east", "west", "central")
DRIVERS = 300
FIRSTNAMES = (
    "Amira", "Ben", "Chloé", "Dario", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas",
    "Kenji", "Lena", "Malik", "Nora", "Oscar", "Priya", "Quentin", "Rosa", "Sami", "Tessa",
)  # fmt: skip
LASTNAMES = (
    "Haddad", "Moreau", "Novak", "Okafor", "Rossi", "Schmidt", "Tanaka", "Varga", "Weber",
    "Yilmaz", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia",
)  # fmt: skip
PAUSE_BEFORE_NOW = timedelta(hours=4)
"""When the push service for crashes was paused: the tasks of that type running then are
CANCELED."""

CORRECTED_STEPS = frozenset({"assessment", "final"})
"""The steps of the two sessions that need an assessor's correction."""


@dataclass(frozen=True)
class _Plan:
    """What a learner did: `attempts` are `step[:score][:outside]` in order (no score: none
    given, or, for a step that needs a correction, none given yet)."""

    label: str
    enrolled_days_ago: float
    attempts: str = ""
    leaves: bool = False

    def steps(self) -> list[tuple[str, float | None, bool]]:
        done = []
        for attempt in self.attempts.split():
            step, _, rest = attempt.partition(":")
            score, _, where = rest.partition(":")
            done.append((step, float(score) if score else None, where == "outside"))
        return done


OPEN_SESSION_LEARNERS = (
    _Plan("successful", 20, "quiz:85 assessment:80 practice:70 video"),
    _Plan("unsuccessful, out of attempts", 20, "quiz:40 quiz:55 assessment:75 practice:60"),
    _Plan("awaiting correction", 12, "quiz:90 assessment"),
    _Plan("to retake", 15, "quiz:50 assessment:70 practice:80"),
    _Plan("to retake, mandatory replay", 15, "quiz:80 assessment:65 practice:90:outside"),
    _Plan("not yet started", 2),
    _Plan("late", 20, "video"),
    _Plan("on time", 5, "quiz:88"),
    _Plan("unenrolled", 25, "quiz:75", leaves=True),
)
"""Learners of the open session (quiz: min 70 in 2 attempts, due 14 days after enrolment;
assessment: corrected, min 60; practice: min 50, inside the path; video: optional)."""

ENDED_SESSION_LEARNERS = (
    _Plan("successful", 50, "module:72 final:85"),
    _Plan("unsuccessful, session ended", 50, "module:70"),
    _Plan("awaiting correction", 50, "module:64 final"),
)
"""Learners of the session that ended 5 days ago (module: min 60; final: corrected)."""

Sent = tuple[Message, datetime]
"""An envelope and when it was written (its record's timestamp)."""


@dataclass(frozen=True)
class Learner:
    """A learner the world puts in a given state of a session (`label`, for people)."""

    session_id: str
    user_id: str
    email: str
    label: str


@dataclass(frozen=True)
class World:
    tenant: str
    now: datetime
    sent: tuple[Sent, ...]
    groups: tuple[str, ...]
    members: dict[str, tuple[str, ...]]
    """Each group's drivers (user ids)."""
    running_challenge: str
    ended_challenge: str
    distance_challenge: str
    tasks: dict[TaskStatus, tuple[str, ...]]
    learners: tuple[Learner, ...]
    anchor_task: str
    """A PENDING task created exactly at `now`: reading its creation back tells a later run
    which `now` this world was made for."""
    registered: dict[str, tuple[str, ...]]
    """Each challenge's registered users."""

    @property
    def drivers(self) -> int:
        return sum(len(users) for users in self.members.values())

    def trips_ended(self, users: tuple[str, ...], start: datetime, end: datetime) -> int:
        """How many trips of these users end in `[start, end)`."""
        wanted = set(users)
        return sum(
            1
            for envelope, _ in self.sent
            if isinstance(envelope, trips_pb2.TripEvent)
            and envelope.trip_completed.user_id in wanted
            and start <= envelope.trip_completed.ended_at.ToDatetime(UTC) < end
        )


def demo_world(tenant: str, now: datetime, seed: int = DEFAULT_SEED) -> World:
    builder = _Builder(tenant, now, random.Random(seed))
    people = builder.drivers()
    running, ended, distance = builder.challenges(people)
    learners = builder.path_sessions(people)
    tasks, anchor = builder.tasks()
    return World(
        tenant=tenant,
        now=now,
        sent=tuple(builder.sent),
        groups=GROUPS,
        members={g: tuple(d.user_id for d in people if d.group == g) for g in GROUPS},
        running_challenge=running,
        ended_challenge=ended,
        distance_challenge=distance,
        tasks=tasks,
        learners=learners,
        anchor_task=anchor,
        registered={c: tuple(users) for c, users in builder.registered.items()},
    )


@dataclass(frozen=True)
class _Driver:
    user_id: str
    email: str
    group: str
    skill: tuple[float, ...]
    """The driver's usual safety, eco-driving, distraction and speeding scores."""


@dataclass
class _Builder:
    tenant: str
    now: datetime
    rng: random.Random
    sent: list[Sent] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    """Each challenge's registered users, in the order they were drawn."""

    # --- envelopes -----------------------------------------------------------------------

    def _send(self, envelope: Message, at: datetime) -> None:
        envelope.occurred_at.FromDatetime(at)  # type: ignore[attr-defined]
        self.sent.append((envelope, at))

    def _catalog(self, event_id: str, at: datetime, **event: Any) -> None:
        self._send(catalog_pb2.CatalogEvent(event_id=event_id, tenant_id=self.tenant, **event), at)

    def _trip(self, event_id: str, at: datetime, **event: Any) -> None:
        self._send(trips_pb2.TripEvent(event_id=event_id, tenant_id=self.tenant, **event), at)

    def _enrollment(self, event_id: str, at: datetime, **event: Any) -> None:
        envelope = enrollments_pb2.EnrollmentEvent(
            event_id=event_id, tenant_id=self.tenant, **event
        )
        self._send(envelope, at)

    def _task(self, event_id: str, at: datetime, **event: Any) -> None:
        self._send(tasks_pb2.TaskEvent(event_id=event_id, tenant_id=self.tenant, **event), at)

    # --- drivers and their trips ---------------------------------------------------------

    def drivers(self) -> list[_Driver]:
        names = [(first, last) for first in FIRSTNAMES for last in LASTNAMES]
        self.rng.shuffle(names)
        people = []
        for n, (first, last) in enumerate(names[:DRIVERS], start=1):
            user_id = f"drv-{n:03d}"
            group = GROUPS[n % len(GROUPS)]
            email = f"{first}.{last}@example.com".lower().replace("é", "e")
            skill = tuple(round(self.rng.uniform(5.0, 9.6), 1) for _ in range(4))
            driver = _Driver(user_id, email, group, skill)
            people.append(driver)
            profile = catalog_pb2.UserUpserted(
                user_id=user_id,
                email=email,
                firstname=first,
                lastname=last,
                pseudo=f"{first.lower()}{n}",
                groups=[group],
            )
            self._catalog(
                f"user-{user_id}",
                _month_start(self.now) - timedelta(days=40),
                user_upserted=profile,
            )
        for driver in people:
            self._trips_of(driver)
        return people

    def _trips_of(self, driver: _Driver) -> None:
        """Last month's trips over the whole month, this month's up to now; some drivers
        drive too little to be ranked, a few not at all this month."""
        this_month = _month_start(self.now)
        last_month = _last_month_start(self.now)
        luck = self.rng.random()
        before = self.rng.randint(1, 3) if luck < 0.06 else self.rng.randint(8, 16)
        current = (
            0 if luck > 0.97 else self.rng.randint(1, 4) if luck > 0.88 else self.rng.randint(5, 12)
        )
        for label, count, start, end in (
            ("p", before, last_month, this_month),
            ("c", current, this_month, self.now),
        ):
            for n in range(count):
                ended = start + (end - start) * self.rng.random()
                self._one_trip(f"{driver.user_id}-{label}{n:02d}", driver, ended)

    def _one_trip(self, trip_id: str, driver: _Driver, ended: datetime) -> None:
        km = round(self.rng.uniform(4.0, 45.0), 1)
        scores = [
            min(10.0, max(0.0, round(s + self.rng.uniform(-1.2, 1.0), 1))) for s in driver.skill
        ]
        trip = trips_pb2.TripCompleted(
            trip_id=trip_id,
            user_id=driver.user_id,
            distance_km=km,
            scores=trips_pb2.TripScores(
                safety=scores[0], eco_driving=scores[1], distraction=scores[2], speeding=scores[3]
            ),
        )
        trip.started_at.FromDatetime(ended - timedelta(minutes=km * 1.6 + 5))
        trip.ended_at.FromDatetime(ended)
        self._trip(f"trip-{trip_id}", ended, trip_completed=trip)

    # --- challenges ----------------------------------------------------------------------

    def challenges(self, people: list[_Driver]) -> tuple[str, str, str]:
        """A safety challenge running for 10 days more, an eco-driving one that ended last
        month (its window and pre-challenge window both in last month, where every driver
        has trips), and a distance cup over both months."""
        now = self.now
        last_month = _last_month_start(now)
        running = self._challenge(
            "ch-safety-month",
            "Safe driving month",
            "CHALLENGE_THEME_SAFETY",
            now - timedelta(days=10),
            now + timedelta(days=20),
            ("north", "south"),
            min_trips=2,
        )
        ended = self._challenge(
            "ch-eco-sprint",
            "Eco sprint",
            "CHALLENGE_THEME_ECO_DRIVING",
            last_month + timedelta(days=14),
            last_month + timedelta(days=28),
            ("east", "west"),
            min_trips=2,
            pre_period=timedelta(days=14),
            pre_min_trips=3,
        )
        distance = self._challenge(
            "ch-km-cup",
            "Kilometre cup",
            "CHALLENGE_THEME_DISTANCE",
            last_month + timedelta(days=7),
            now + timedelta(days=14),
            (),
            min_km=50.0,
        )
        for challenge_id, start, groups, share in (
            (running, now - timedelta(days=10), ("north", "south"), 0.75),
            (ended, last_month + timedelta(days=14), ("east", "west"), 0.7),
            (distance, last_month + timedelta(days=7), GROUPS, 0.5),
        ):
            for driver in people:
                if driver.group in groups and self.rng.random() < share:
                    self._register(challenge_id, driver.user_id, start, now)
        return running, ended, distance

    def _challenge(
        self,
        challenge_id: str,
        title: str,
        theme: str,
        start: datetime,
        end: datetime,
        groups: tuple[str, ...],
        *,
        min_trips: int = 1,
        min_km: float = 0.0,
        pre_period: timedelta | None = None,
        pre_min_trips: int = 10,
    ) -> str:
        published = catalog_pb2.ChallengePublished(
            challenge_id=challenge_id,
            title=title,
            theme=theme,
            groups=list(groups),
            min_trips=min_trips,
            min_distance_km=min_km,
            pre_challenge_min_trips=pre_min_trips,
        )
        published.start_at.FromDatetime(start)
        published.end_at.FromDatetime(end)
        if pre_period is not None:
            published.pre_challenge_period.FromTimedelta(pre_period)
        self._catalog(
            f"challenge-{challenge_id}", start - timedelta(days=7), challenge_published=published
        )
        return challenge_id

    def _register(self, challenge_id: str, user_id: str, start: datetime, now: datetime) -> None:
        """Most register in the days before the start; one in ten after it (their trips
        count from then)."""
        if self.rng.random() < 0.1:
            at = start + (min(now, start + timedelta(days=5)) - start) * self.rng.random()
        else:
            at = start - timedelta(days=self.rng.uniform(0.5, 4))
        self.registered.setdefault(challenge_id, []).append(user_id)
        registered = enrollments_pb2.ChallengeRegistered(challenge_id=challenge_id, user_id=user_id)
        registered.registered_at.FromDatetime(at)
        self._enrollment(f"register-{challenge_id}-{user_id}", at, challenge_registered=registered)

    # --- path sessions -------------------------------------------------------------------

    def path_sessions(self, people: list[_Driver]) -> tuple[Learner, ...]:
        """An open session whose learners cover every status and detailed status an open
        session can have, and one that ended (successful, waiting for an assessor, and
        unsuccessful because it ended)."""
        now = self.now
        open_session = _Session(
            self, "ps-safe-driving", now - timedelta(days=30), now + timedelta(days=30)
        )
        open_session.publish(
            "Safe driving basics",
            catalog_pb2.Step(
                step_id="quiz",
                mandatory=True,
                min_score=70,
                max_attempts=2,
                due_after_enrollment=_duration(days=14),
            ),
            catalog_pb2.Step(
                step_id="assessment",
                mandatory=True,
                requires_correction=True,
                min_score=60,
                due_at=_stamp(now + timedelta(days=10)),
            ),
            catalog_pb2.Step(
                step_id="practice", mandatory=True, min_score=50, mandatory_replay=True
            ),
            catalog_pb2.Step(step_id="video", mandatory=False),
        )
        ended_session = _Session(
            self, "ps-eco-refresher", now - timedelta(days=60), now - timedelta(days=5)
        )
        ended_session.publish(
            "Eco-driving refresher",
            catalog_pb2.Step(
                step_id="module",
                mandatory=True,
                min_score=60,
                due_at=_stamp(now - timedelta(days=20)),
            ),
            catalog_pb2.Step(
                step_id="final",
                mandatory=True,
                requires_correction=True,
                due_at=_stamp(now - timedelta(days=10)),
            ),
        )
        plans = [(open_session, plan) for plan in OPEN_SESSION_LEARNERS]
        plans += [(ended_session, plan) for plan in ENDED_SESSION_LEARNERS]
        learners = []
        for (session, plan), driver in zip(plans, people, strict=False):
            session.learner(driver.user_id, plan)
            learners.append(Learner(session.session_id, driver.user_id, driver.email, plan.label))
        return tuple(learners)

    # --- tasks ---------------------------------------------------------------------------

    def tasks(self) -> tuple[dict[TaskStatus, tuple[str, ...]], str]:
        return _Tasks(self).build()


@dataclass
class _Tasks:
    """The task events of the demo's world, sent through its builder."""

    builder: _Builder

    def build(self) -> tuple[dict[TaskStatus, tuple[str, ...]], str]:
        """Four tasks in each state. The CANCELED ones are crash pushes that were running
        when that push service was paused; the IN_PROGRESS ones push trips."""
        now = self.builder.now
        pause = now - PAUSE_BEFORE_NOW
        trips, crashes = "TASK_TYPE_PUSH_FAILED_TRIPS", "TASK_TYPE_PUSH_FAILED_CRASHES"
        by_status: dict[TaskStatus, list[str]] = {status: [] for status in TaskStatus}
        anchor = self._task_id()
        self._create(anchor, crashes, 40, now)
        by_status[TaskStatus.PENDING].append(anchor)
        for n in range(3):
            task = self._task_id()
            self._create(
                task, (trips, crashes)[n % 2], 25 + 10 * n, now - timedelta(minutes=5 + 13 * n)
            )
            by_status[TaskStatus.PENDING].append(task)
        for n in range(4):
            task = self._task_id()
            created = now - timedelta(hours=3, minutes=n * 7)
            self._create(task, trips, 200, created)
            self._start(task, created + timedelta(minutes=2))
            self._progress(task, 200 - 40 * (n + 1), created + timedelta(minutes=20))
            by_status[TaskStatus.IN_PROGRESS].append(task)
        for n in range(4):
            task = self._task_id()
            created = now - timedelta(days=1, hours=n)
            self._create(task, (trips, crashes)[n % 2], 80, created)
            self._start(task, created + timedelta(minutes=1))
            self._progress(task, 30, created + timedelta(minutes=6))
            self._finish(task, created + timedelta(minutes=12), completed=True)
            by_status[TaskStatus.COMPLETED].append(task)
        for n in range(4):
            task = self._task_id()
            created = now - timedelta(hours=10 + n)
            self._create(task, (trips, crashes)[n % 2], 60, created)
            self._start(task, created + timedelta(minutes=1))
            self._finish(task, created + timedelta(minutes=9), completed=False)
            by_status[TaskStatus.FAILED].append(task)
        for n in range(4):
            task = self._task_id()
            created = pause - timedelta(hours=2, minutes=n * 9)
            self._create(task, crashes, 150, created)
            self._start(task, created + timedelta(minutes=3))
            self._progress(task, 150 - 20 * (n + 1), created + timedelta(minutes=30))
            by_status[TaskStatus.CANCELED].append(task)
        paused = tasks_pb2.PushServicePaused(type=crashes)
        self.builder._task(f"pause-crashes-{anchor}", pause, push_service_paused=paused)
        return {status: tuple(ids) for status, ids in by_status.items()}, anchor

    def _task_id(self) -> str:
        return f"{self.builder.rng.getrandbits(96):024x}"

    def _create(self, task_id: str, kind: str, items: int, at: datetime) -> None:
        created = tasks_pb2.TaskCreated(task_id=task_id, type=kind, nb_items=items)
        created.created_at.FromDatetime(at)
        self.builder._task(f"task-{task_id}-created", at, task_created=created)

    def _start(self, task_id: str, at: datetime) -> None:
        started = tasks_pb2.TaskStarted(task_id=task_id)
        started.started_at.FromDatetime(at)
        self.builder._task(f"task-{task_id}-started", at, task_started=started)

    def _progress(self, task_id: str, remaining: int, at: datetime) -> None:
        progressed = tasks_pb2.TaskProgressed(task_id=task_id, nb_remaining_items=remaining)
        self.builder._task(f"task-{task_id}-progress-{remaining}", at, task_progressed=progressed)

    def _finish(self, task_id: str, at: datetime, *, completed: bool) -> None:
        if completed:
            done = tasks_pb2.TaskCompleted(task_id=task_id)
            done.completed_at.FromDatetime(at)
            self.builder._task(f"task-{task_id}-completed", at, task_completed=done)
        else:
            failed = tasks_pb2.TaskFailed(task_id=task_id, reason="the push gateway answered 503")
            failed.failed_at.FromDatetime(at)
            self.builder._task(f"task-{task_id}-failed", at, task_failed=failed)


@dataclass
class _Session:
    builder: _Builder
    session_id: str
    starts_at: datetime
    ends_at: datetime

    def publish(self, name: str, *steps: catalog_pb2.Step) -> None:
        published = catalog_pb2.PathSessionPublished(
            session_id=self.session_id, path_id=f"path-{self.session_id}", name=name, steps=steps
        )
        published.starts_at.FromDatetime(self.starts_at)
        published.ends_at.FromDatetime(self.ends_at)
        at = self.starts_at - timedelta(days=3)
        self.builder._catalog(f"session-{self.session_id}", at, path_session_published=published)

    def learner(self, user_id: str, plan: _Plan) -> None:
        """Enrol, then one attempt a day from the next day on; a step that needs a correction
        is corrected two hours after its attempt when the plan gives a score, else left
        waiting; a learner who leaves is unenrolled the day after the last attempt."""
        b = self.builder
        key = f"{self.session_id}-{user_id}"
        enrolled = self.builder.now - timedelta(days=plan.enrolled_days_ago)
        enrolment = enrollments_pb2.PathEnrolled(session_id=self.session_id, user_id=user_id)
        enrolment.enrolled_at.FromDatetime(enrolled)
        b._enrollment(f"enrol-{key}", enrolled, path_enrolled=enrolment)
        at = enrolled
        for n, (step, score, outside) in enumerate(plan.steps(), start=1):
            at = enrolled + timedelta(days=n, hours=1)
            attempt_id = f"{key}-{n}"
            attempt = enrollments_pb2.StepAttempted(
                session_id=self.session_id,
                user_id=user_id,
                step_id=step,
                attempt_id=attempt_id,
                time_spent_ms=(9 + 4 * n) * 60_000,
                outside_path=outside,
            )
            attempt.started_at.FromDatetime(at - timedelta(minutes=9 + 4 * n))
            attempt.ended_at.FromDatetime(at)
            corrected = step in CORRECTED_STEPS
            if score is not None and not corrected:
                attempt.score = score
            b._enrollment(f"attempt-{attempt_id}", at, step_attempted=attempt)
            if score is not None and corrected:
                self._correct(user_id, step, attempt_id, score, at + timedelta(hours=2))
        if plan.leaves:
            left = enrollments_pb2.PathUnenrolled(session_id=self.session_id, user_id=user_id)
            left.unenrolled_at.FromDatetime(at + timedelta(days=1))
            b._enrollment(f"unenrol-{key}", at + timedelta(days=1), path_unenrolled=left)

    def _correct(
        self, user_id: str, step: str, attempt_id: str, score: float, at: datetime
    ) -> None:
        correction = enrollments_pb2.StepCorrected(
            session_id=self.session_id,
            user_id=user_id,
            step_id=step,
            attempt_id=attempt_id,
            score=score,
        )
        correction.corrected_at.FromDatetime(at)
        self.builder._enrollment(f"correct-{attempt_id}", at, step_corrected=correction)


def _month_start(moment: datetime) -> datetime:
    return Month.of(moment).starts_at


def _last_month_start(moment: datetime) -> datetime:
    return Month.of(moment).previous().starts_at


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _duration(*, days: float) -> Duration:
    span = Duration()
    span.FromTimedelta(timedelta(days=days))
    return span
