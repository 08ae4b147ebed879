"""The events Podium folds into its state, as plain data decoded from the Kafka envelopes."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from service.domain.frozen import frozen


class ScoreKind(enum.IntEnum):
    """A driving score carried by trips; also the driver ranking's type."""

    SAFETY = 1
    ECO_DRIVING = 2
    DISTRACTION = 3
    SPEEDING = 4


SCORE_KINDS = (ScoreKind.SAFETY, ScoreKind.ECO_DRIVING, ScoreKind.DISTRACTION, ScoreKind.SPEEDING)
"""The order a trip's four scores are kept in, wherever they travel together (a trip's score
units, a driver's month totals, their columns)."""
SCORE_POSITION = {kind: position for position, kind in enumerate(SCORE_KINDS)}


class ChallengeTheme(enum.IntEnum):
    SAFETY = 1
    ECO_DRIVING = 2
    DISTRACTION = 3
    SPEEDING = 4
    DISTANCE = 5

    @property
    def score_kind(self) -> ScoreKind | None:
        """The trip score a challenge of this theme ranks by; None for DISTANCE."""
        return None if self is ChallengeTheme.DISTANCE else ScoreKind(self.value)


class TaskType(enum.IntEnum):
    PUSH_FAILED_TRIPS = 1
    PUSH_FAILED_CRASHES = 2


class TaskStatus(enum.IntEnum):
    PENDING = 1
    IN_PROGRESS = 2
    COMPLETED = 3
    CANCELED = 4
    FAILED = 5


@frozen
class Meta:
    """Envelope fields. `arrived_at` is the Kafka record timestamp, so a replay sees the same."""

    tenant_id: str
    event_id: str
    occurred_at: datetime
    arrived_at: datetime


# --- catalog -------------------------------------------------------------------------------


@frozen
class UserUpserted:
    user_id: str
    email: str = ""
    firstname: str = ""
    lastname: str = ""
    pseudo: str = ""
    groups: tuple[str, ...] = ()


@frozen
class ChallengePublished:
    challenge_id: str
    title: str
    theme: ChallengeTheme
    start_at: datetime
    end_at: datetime
    groups: tuple[str, ...] = ()
    min_trips: int = 1
    min_distance_km: float = 0.0
    pre_challenge_period: timedelta | None = None
    """None means: as long as the challenge itself."""
    pre_challenge_min_trips: int = 10


@frozen
class Step:
    step_id: str
    mandatory: bool = True
    due_at: datetime | None = None
    due_after_enrollment: timedelta | None = None
    min_score: float | None = None
    max_attempts: int | None = None
    time_limit: timedelta | None = None
    requires_correction: bool = False
    mandatory_replay: bool = False


@frozen
class PathSessionPublished:
    session_id: str
    path_id: str
    name: str
    starts_at: datetime | None
    ends_at: datetime | None
    steps: tuple[Step, ...] = ()


# --- trips ---------------------------------------------------------------------------------


@frozen
class Scores:
    """Trip scores, 0-10, higher is better; a trip may lack any of them."""

    safety: float | None = None
    eco_driving: float | None = None
    distraction: float | None = None
    speeding: float | None = None

    def in_kind_order(self) -> tuple[float | None, float | None, float | None, float | None]:
        """The four scores in `SCORE_KINDS` order."""
        return (self.safety, self.eco_driving, self.distraction, self.speeding)


NO_SCORES = Scores()


@frozen
class TripCompleted:
    trip_id: str
    user_id: str
    started_at: datetime
    ended_at: datetime
    distance_km: float
    scores: Scores = NO_SCORES
    """One value shared by every trip without scores (a default instance rather than a
    default factory: `frozen`'s cheaper constructor then applies, and a frozen value may be
    shared)."""


@frozen
class TripDeleted:
    trip_id: str
    user_id: str


# --- enrollments ---------------------------------------------------------------------------


@frozen
class ChallengeRegistered:
    challenge_id: str
    user_id: str
    registered_at: datetime


@frozen
class PathEnrolled:
    session_id: str
    user_id: str
    enrolled_at: datetime


@frozen
class PathUnenrolled:
    session_id: str
    user_id: str
    unenrolled_at: datetime


@frozen
class StepAttempted:
    session_id: str
    user_id: str
    step_id: str
    attempt_id: str
    started_at: datetime
    ended_at: datetime
    time_spent_ms: int
    score: float | None = None
    outside_path: bool = False


@frozen
class StepCorrected:
    session_id: str
    user_id: str
    step_id: str
    attempt_id: str
    score: float
    corrected_at: datetime


# --- tasks ---------------------------------------------------------------------------------


@frozen
class TaskCreated:
    task_id: str
    type: TaskType
    nb_items: int
    created_at: datetime


@frozen
class TaskStarted:
    task_id: str
    started_at: datetime


@frozen
class TaskProgressed:
    task_id: str
    nb_remaining_items: int


@frozen
class TaskCompleted:
    task_id: str
    completed_at: datetime


@frozen
class TaskFailed:
    task_id: str
    failed_at: datetime
    reason: str = ""


@frozen
class PushServicePaused:
    type: TaskType


CatalogPayload = UserUpserted | ChallengePublished | PathSessionPublished
TripPayload = TripCompleted | TripDeleted
EnrollmentPayload = (
    ChallengeRegistered | PathEnrolled | PathUnenrolled | StepAttempted | StepCorrected
)
TaskPayload = (
    TaskCreated | TaskStarted | TaskProgressed | TaskCompleted | TaskFailed | PushServicePaused
)
Payload = CatalogPayload | TripPayload | EnrollmentPayload | TaskPayload


@frozen
class Event:
    meta: Meta
    payload: Payload
