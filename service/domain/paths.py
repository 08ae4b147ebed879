"""A learner's stats on a path session (docs/rules.md#path-session-stats).

The learner's facts (enrollment times, attempts, corrections) fold into a `LearnerState` in any
order; `stats` reads them against the session's current steps at a given moment. Everything
time-dependent (due dates, the session's start and end, the archive) is evaluated at `now`,
or at the archive time for an unenrolled learner.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from service.domain import events as ev
from service.domain.exact import ZERO, add, exact, ratio_half_up


class PathStatus(enum.IntEnum):
    ON_TIME = 1
    LATE = 2
    COMPLETED = 3
    AWAITING_CORRECTION = 4


class PathResult(enum.IntEnum):
    SUCCESSFUL = 1
    UNSUCCESSFUL = 2
    RETAKE = 3


class DetailedStatusType(enum.IntEnum):
    AWAITING_CORRECTION = 1
    LATE = 2
    NOT_YET_STARTED = 3
    ON_TIME = 4
    SESSION_NOT_OPENED = 5
    SUCCESSFUL = 6
    TO_RETAKE = 7
    UNSUCCESSFUL = 8


class DetailedStatusReason(enum.IntEnum):
    SESSION_ENDED = 1
    MANDATORY_REPLAY = 2


# --- the learner's facts -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    step_id: str
    attempt_id: str
    started_at: datetime
    ended_at: datetime
    time_spent_ms: int
    score: float | None = None
    outside_path: bool = False

    @classmethod
    def from_event(cls, e: ev.StepAttempted) -> Attempt:
        return cls(
            e.step_id,
            e.attempt_id,
            e.started_at,
            e.ended_at,
            e.time_spent_ms,
            e.score,
            e.outside_path,
        )


@dataclass(frozen=True, slots=True)
class Correction:
    step_id: str
    attempt_id: str
    score: float
    corrected_at: datetime


@dataclass(frozen=True, slots=True)
class LearnerState:
    """Folded facts; equal whatever the order and repetition of the events folded."""

    enrolled_at: datetime | None = None
    unenrolled_at: datetime | None = None
    attempts: tuple[Attempt, ...] = ()
    corrections: tuple[Correction, ...] = ()


LearnerEvent = ev.PathEnrolled | ev.PathUnenrolled | ev.StepAttempted | ev.StepCorrected


def fold(state: LearnerState, event: LearnerEvent) -> LearnerState:
    if isinstance(event, ev.PathEnrolled):
        return replace(state, enrolled_at=_latest(state.enrolled_at, event.enrolled_at))
    if isinstance(event, ev.PathUnenrolled):
        return replace(state, unenrolled_at=_latest(state.unenrolled_at, event.unenrolled_at))
    if isinstance(event, ev.StepAttempted):
        attempt = Attempt.from_event(event)
        return replace(state, attempts=merge_attempt(state.attempts, attempt))
    correction = Correction(event.step_id, event.attempt_id, event.score, event.corrected_at)
    return replace(state, corrections=merge_correction(state.corrections, correction))


def merge_attempt(attempts: tuple[Attempt, ...], new: Attempt) -> tuple[Attempt, ...]:
    """An attempt is recorded once: a re-sent one changes nothing."""
    if any(a.attempt_id == new.attempt_id for a in attempts):
        return attempts
    return tuple(sorted((*attempts, new), key=lambda a: a.attempt_id))


def merge_correction(
    corrections: tuple[Correction, ...], new: Correction
) -> tuple[Correction, ...]:
    """The latest correction of an attempt wins (ties: the higher score), in any order."""
    current = next((c for c in corrections if c.attempt_id == new.attempt_id), None)
    if current is not None and _correction_rank(current) >= _correction_rank(new):
        return corrections
    kept = [c for c in corrections if c.attempt_id != new.attempt_id]
    return tuple(sorted((*kept, new), key=lambda c: c.attempt_id))


def _correction_rank(correction: Correction) -> tuple[datetime, float]:
    return (correction.corrected_at, correction.score)


def _latest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None else max(current, new)


def archived_at(state: LearnerState) -> datetime | None:
    """When the learner was unenrolled, unless enrolled again since."""
    if state.unenrolled_at is None:
        return None
    if state.enrolled_at is not None and state.enrolled_at > state.unenrolled_at:
        return None
    return state.unenrolled_at


# --- one step ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Graded:
    """An attempt that is not awaiting correction, with its final score."""

    attempt: Attempt
    score: float | None
    done_at: datetime


@dataclass(frozen=True, slots=True)
class StepProgress:
    step: ev.Step
    attempts: tuple[Attempt, ...]
    graded: tuple[Graded, ...]
    successes: tuple[Graded, ...]
    due_at: datetime | None

    @property
    def completed(self) -> bool:
        return bool(self.graded)

    @property
    def successful(self) -> bool:
        return bool(self.successes)

    @property
    def awaits_correction(self) -> bool:
        """An attempt waits for an assessor, and none has succeeded yet (a retake after a
        failed graded attempt awaits its correction too)."""
        return len(self.attempts) > len(self.graded) and not self.successful

    @property
    def attempts_left(self) -> bool:
        limit = self.step.max_attempts
        return not limit or len(self.attempts) < limit

    @property
    def out_of_attempts(self) -> bool:
        """Every allowed attempt is used and graded, none successful: a learner waiting for
        an assessor is never failed for it."""
        return not (self.attempts_left or self.successful or self.awaits_correction)

    @property
    def below_min_score(self) -> bool:
        minimum = self.step.min_score
        if minimum is None or not self.completed:
            return False
        return not any(g.score is not None and g.score >= minimum for g in self.graded)

    @property
    def completed_only_outside(self) -> bool:
        return self.completed and all(g.attempt.outside_path for g in self.graded)

    @property
    def best_score(self) -> float | None:
        scores = [g.score for g in self.graded if g.score is not None]
        return max(scores) if scores else None

    @property
    def succeeded_at(self) -> datetime | None:
        return min((g.done_at for g in self.successes), default=None)

    def past_due(self, now: datetime) -> bool:
        """Due at or before now (a moment reached counts as passed: a step due exactly now is
        late), and not completed."""
        return self.due_at is not None and self.due_at <= now and not self.completed


def step_progress(
    step: ev.Step,
    attempts: Sequence[Attempt],
    corrections: dict[str, Correction],
    enrolled_at: datetime | None,
) -> StepProgress:
    mine = tuple(a for a in attempts if a.step_id == step.step_id)
    graded = tuple(g for a in mine if (g := _graded(step, a, corrections.get(a.attempt_id))))
    successes = tuple(g for g in graded if _is_success(step, g))
    return StepProgress(step, mine, graded, successes, _due_at(step, enrolled_at))


def _graded(step: ev.Step, attempt: Attempt, correction: Correction | None) -> Graded | None:
    if correction is not None:
        return Graded(attempt, correction.score, max(attempt.ended_at, correction.corrected_at))
    if step.requires_correction:
        return None  # awaits its correction
    return Graded(attempt, attempt.score, attempt.ended_at)


def _is_success(step: ev.Step, graded: Graded) -> bool:
    attempt = graded.attempt
    scored = step.min_score is None or (graded.score is not None and graded.score >= step.min_score)
    in_time = step.time_limit is None or attempt.ended_at - attempt.started_at <= step.time_limit
    in_path = not step.mandatory_replay or not attempt.outside_path
    return scored and in_time and in_path


def _due_at(step: ev.Step, enrolled_at: datetime | None) -> datetime | None:
    if step.due_at is not None:
        return step.due_at
    if step.due_after_enrollment is not None and enrolled_at is not None:
        return enrolled_at + step.due_after_enrollment
    return None


# --- the session ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathStats:
    progress: int
    global_time_ms: int
    score: int
    status: PathStatus
    completed_at: datetime | None
    detailed_type: DetailedStatusType
    detailed_reason: DetailedStatusReason | None
    result: PathResult | None
    archived_at: datetime | None


def stats(session: ev.PathSessionPublished, state: LearnerState, now: datetime) -> PathStats:
    archive = archived_at(state)
    moment = archive or now
    attempts = [a for a in state.attempts if archive is None or a.ended_at <= archive]
    corrections = {
        c.attempt_id: c for c in state.corrections if archive is None or c.corrected_at <= archive
    }
    steps = [step_progress(s, attempts, corrections, state.enrolled_at) for s in session.steps]
    mandatory = [p for p in steps if p.step.mandatory]
    # Success and failure ask about every mandatory step, and every step when none is
    # mandatory; lateness and waiting for an assessor, about mandatory steps only.
    required = mandatory or steps
    detailed, reason = _detailed_status(session, steps, mandatory, required, moment)
    return PathStats(
        progress=_progress(steps),
        global_time_ms=sum(
            p.attempts[i].time_spent_ms for p in steps for i in range(len(p.attempts))
        ),
        score=_score(steps),
        status=_status(steps, mandatory, moment),
        completed_at=_completed_at(required),
        detailed_type=detailed,
        detailed_reason=reason,
        result=_result(steps),
        archived_at=archive,
    )


def _progress(steps: Sequence[StepProgress]) -> int:
    if not steps:
        return 0
    return 100 * sum(p.completed for p in steps) // len(steps)


def _score(steps: Sequence[StepProgress]) -> int:
    """Mean of each completed step's best score, rounded half up once, from the exact
    decimals the scores stand for (docs/rules.md#exact-figures); 0 without any."""
    total, count = ZERO, 0
    for progress in steps:
        best = progress.best_score
        if best is not None:
            total, count = add(total, exact(best)), count + 1
    return ratio_half_up(total, Decimal(count), 0) if count else 0


def _status(
    steps: Sequence[StepProgress], mandatory: Sequence[StepProgress], now: datetime
) -> PathStatus:
    """Optional steps never make a learner late or awaiting correction."""
    if steps and all(p.completed for p in steps):
        return PathStatus.COMPLETED
    if any(p.awaits_correction for p in mandatory):
        return PathStatus.AWAITING_CORRECTION
    if any(p.past_due(now) for p in mandatory):
        return PathStatus.LATE
    return PathStatus.ON_TIME


def _result(steps: Sequence[StepProgress]) -> PathResult | None:
    if steps and all(p.successful for p in steps):
        return PathResult.SUCCESSFUL
    if any(p.below_min_score and p.out_of_attempts for p in steps):
        return PathResult.UNSUCCESSFUL
    if any(p.below_min_score and p.attempts_left for p in steps):
        return PathResult.RETAKE
    return None


def _completed_at(required: Sequence[StepProgress]) -> datetime | None:
    """When the last required step became successful, once they all are."""
    if not required or not all(p.successful for p in required):
        return None
    return max(p.succeeded_at for p in required if p.succeeded_at is not None)


def _detailed_status(
    session: ev.PathSessionPublished,
    steps: Sequence[StepProgress],
    mandatory: Sequence[StepProgress],
    required: Sequence[StepProgress],
    now: datetime,
) -> tuple[DetailedStatusType, DetailedStatusReason | None]:
    """The first rule that holds (docs/rules.md#detailed-status): `required` are the steps
    success and failure ask about (successful, unsuccessful, toRetake); awaitingCorrection and
    late look at the mandatory steps only."""
    failing = [p for p in required if not p.successful]
    all_done = all(p.completed for p in required)
    if session.starts_at is not None and now < session.starts_at:
        return DetailedStatusType.SESSION_NOT_OPENED, None
    if required and all(p.successful for p in required):
        return DetailedStatusType.SUCCESSFUL, None
    if all_done and any(p.out_of_attempts for p in failing):
        return DetailedStatusType.UNSUCCESSFUL, None
    if any(p.awaits_correction for p in mandatory):
        return DetailedStatusType.AWAITING_CORRECTION, None
    if session.ends_at is not None and session.ends_at <= now:
        return DetailedStatusType.UNSUCCESSFUL, DetailedStatusReason.SESSION_ENDED
    if all_done and failing:
        replay = any(p.step.mandatory_replay and p.completed_only_outside for p in failing)
        return (
            DetailedStatusType.TO_RETAKE,
            DetailedStatusReason.MANDATORY_REPLAY if replay else None,
        )
    if not any(p.attempts for p in steps):
        return DetailedStatusType.NOT_YET_STARTED, None
    if any(p.past_due(now) for p in mandatory):
        return DetailedStatusType.LATE, None
    return DetailedStatusType.ON_TIME, None
