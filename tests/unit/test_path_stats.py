"""A learner's path-session stats (docs/rules.md#path-session-stats)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.domain import events as ev
from service.domain.paths import (
    Attempt,
    Correction,
    DetailedStatusReason,
    DetailedStatusType,
    LearnerState,
    PathResult,
    PathStatus,
    stats,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


def step(step_id: str = "s1", **changes: Any) -> ev.Step:
    return replace(ev.Step(step_id), **changes)


def session(
    *steps: ev.Step,
    starts_at: datetime | None = NOW - 240 * HOUR,
    ends_at: datetime | None = NOW + 240 * HOUR,
) -> ev.PathSessionPublished:
    return ev.PathSessionPublished(
        "p1", "path", "Onboarding", starts_at, ends_at, steps or (step(),)
    )


def attempt(
    step_id: str = "s1",
    attempt_id: str = "a1",
    *,
    score: float | None = None,
    outside: bool = False,
    ended: datetime = NOW - HOUR,
    took: timedelta = timedelta(minutes=10),
    spent: int = 60_000,
) -> Attempt:
    return Attempt(step_id, attempt_id, ended - took, ended, spent, score, outside)


def learner(
    *attempts: Attempt,
    corrections: tuple[Correction, ...] = (),
    enrolled: datetime | None = NOW - 120 * HOUR,
    unenrolled: datetime | None = None,
) -> LearnerState:
    return LearnerState(enrolled, unenrolled, attempts, corrections)


REPLAY = step(mandatory_replay=True)
GRADED = step(min_score=80, max_attempts=2)
ASSESSED = step(requires_correction=True)

DETAILED = {
    "session-not-opened": (
        session(starts_at=NOW + HOUR),
        learner(),
        (DetailedStatusType.SESSION_NOT_OPENED, None),
    ),
    "successful": (session(), learner(attempt()), (DetailedStatusType.SUCCESSFUL, None)),
    "unsuccessful-out-of-attempts": (
        session(GRADED),
        learner(attempt(score=50), attempt(attempt_id="a2", score=60)),
        (DetailedStatusType.UNSUCCESSFUL, None),
    ),
    "unsuccessful-session-ended": (
        session(ends_at=NOW - HOUR),
        learner(),
        (DetailedStatusType.UNSUCCESSFUL, DetailedStatusReason.SESSION_ENDED),
    ),
    "session-ends-exactly-now": (
        session(ends_at=NOW),
        learner(),
        (DetailedStatusType.UNSUCCESSFUL, DetailedStatusReason.SESSION_ENDED),
    ),
    "to-retake": (
        session(GRADED),
        learner(attempt(score=50)),
        (DetailedStatusType.TO_RETAKE, None),
    ),
    "to-retake-mandatory-replay": (
        session(REPLAY),
        learner(attempt(outside=True)),
        (DetailedStatusType.TO_RETAKE, DetailedStatusReason.MANDATORY_REPLAY),
    ),
    "awaiting-correction": (
        session(ASSESSED, step("s2")),
        learner(attempt()),
        (DetailedStatusType.AWAITING_CORRECTION, None),
    ),
    "not-yet-started": (session(), learner(), (DetailedStatusType.NOT_YET_STARTED, None)),
    "late": (
        session(step(due_at=NOW - HOUR), step("s2")),
        learner(attempt("s2")),
        (DetailedStatusType.LATE, None),
    ),
    "late-relative-to-enrollment": (
        session(step(due_after_enrollment=HOUR), step("s2")),
        learner(attempt("s2")),
        (DetailedStatusType.LATE, None),
    ),
    "late-when-due-exactly-now": (
        session(step(due_at=NOW), step("s2")),
        learner(attempt("s2")),
        (DetailedStatusType.LATE, None),
    ),
    "a-session-opening-exactly-now-is-open": (
        session(starts_at=NOW),
        learner(),
        (DetailedStatusType.NOT_YET_STARTED, None),
    ),
    "unsuccessful-when-none-is-mandatory-and-a-step-is-out-of-attempts": (
        session(step(min_score=80, max_attempts=1, mandatory=False), step("s2", mandatory=False)),
        learner(attempt(score=50), attempt("s2", "a2")),
        (DetailedStatusType.UNSUCCESSFUL, None),
    ),
    "to-retake-when-none-is-mandatory-and-a-step-is-below-its-min-score": (
        session(step(min_score=80, max_attempts=2, mandatory=False), step("s2", mandatory=False)),
        learner(attempt(score=50), attempt("s2", "a2")),
        (DetailedStatusType.TO_RETAKE, None),
    ),
    "on-time-when-none-is-mandatory-and-a-step-is-not-done": (
        session(step(mandatory=False), step("s2", mandatory=False)),
        learner(attempt("s2", "a2")),
        (DetailedStatusType.ON_TIME, None),
    ),
    "on-time": (
        session(step(), step("s2")),
        learner(attempt()),
        (DetailedStatusType.ON_TIME, None),
    ),
    "optional-steps-do-not-block-success": (
        session(step(), step("s2", mandatory=False)),
        learner(attempt()),
        (DetailedStatusType.SUCCESSFUL, None),
    ),
    "awaiting-correction-is-never-failed-when-the-session-ends": (
        session(ASSESSED, ends_at=NOW - HOUR),
        learner(attempt()),
        (DetailedStatusType.AWAITING_CORRECTION, None),
    ),
    "a-retake-awaiting-correction-awaits-it": (
        session(step(min_score=80, max_attempts=3, requires_correction=True)),
        learner(
            attempt(ended=NOW - 2 * HOUR),
            attempt(attempt_id="a2"),
            corrections=(Correction("s1", "a1", 50, NOW - 2 * HOUR),),
        ),
        (DetailedStatusType.AWAITING_CORRECTION, None),
    ),
    "a-last-attempt-awaiting-correction-is-not-failed-yet": (
        session(step(min_score=80, max_attempts=2, requires_correction=True)),
        learner(
            attempt(ended=NOW - 2 * HOUR),
            attempt(attempt_id="a2"),
            corrections=(Correction("s1", "a1", 50, NOW - 2 * HOUR),),
        ),
        (DetailedStatusType.AWAITING_CORRECTION, None),
    ),
    "an-optional-step-awaiting-correction-does-not-hold-success": (
        session(step(), step("s2", mandatory=False, requires_correction=True)),
        learner(attempt(), attempt("s2", "a2")),
        (DetailedStatusType.SUCCESSFUL, None),
    ),
    "optional-steps-past-due-are-on-time-when-none-is-mandatory": (
        session(step(due_at=NOW - HOUR, mandatory=False), step("s2", mandatory=False)),
        learner(attempt("s2")),
        (DetailedStatusType.ON_TIME, None),
    ),
}


@pytest.mark.parametrize(("path", "state", "expected"), DETAILED.values(), ids=DETAILED.keys())
def test_the_detailed_status_is_the_first_rule_that_holds(
    path: ev.PathSessionPublished, state: LearnerState, expected: tuple[object, object]
) -> None:
    answer = stats(path, state, NOW)
    assert (answer.detailed_type, answer.detailed_reason) == expected


STATUS = {
    "completed": (
        session(step(), step("s2", mandatory=False)),
        learner(attempt(), attempt("s2", "a2")),
        PathStatus.COMPLETED,
    ),
    "awaiting-correction": (session(ASSESSED), learner(attempt()), PathStatus.AWAITING_CORRECTION),
    "late": (session(step(due_at=NOW - HOUR)), learner(), PathStatus.LATE),
    "optional-step-past-due-is-not-late": (
        session(step(due_at=NOW - HOUR, mandatory=False), step("s2")),
        learner(),
        PathStatus.ON_TIME,
    ),
    "late-when-due-exactly-now": (session(step(due_at=NOW)), learner(), PathStatus.LATE),
    "on-time": (session(step(due_at=NOW + HOUR)), learner(), PathStatus.ON_TIME),
    "optional-steps-never-make-a-learner-late-even-when-none-is-mandatory": (
        session(step(due_at=NOW - HOUR, mandatory=False), step("s2", mandatory=False)),
        learner(),
        PathStatus.ON_TIME,
    ),
    "an-optional-step-awaiting-correction-is-not-awaiting": (
        session(step(), step("s2", mandatory=False, requires_correction=True)),
        learner(attempt(), attempt("s2", "a2")),
        PathStatus.ON_TIME,
    ),
}


@pytest.mark.parametrize(("path", "state", "expected"), STATUS.values(), ids=STATUS.keys())
def test_the_status(
    path: ev.PathSessionPublished, state: LearnerState, expected: PathStatus
) -> None:
    assert stats(path, state, NOW).status is expected


RESULT = {
    "successful": (session(GRADED), learner(attempt(score=90)), PathResult.SUCCESSFUL),
    "unsuccessful-last-attempt-used": (
        session(GRADED),
        learner(attempt(score=50), attempt(attempt_id="a2", score=79.9)),
        PathResult.UNSUCCESSFUL,
    ),
    "retake-attempts-left": (session(GRADED), learner(attempt(score=50)), PathResult.RETAKE),
    "absent-without-attempts": (session(GRADED), learner(), None),
    "absent-when-an-optional-step-is-not-done": (
        session(step(), step("s2", mandatory=False)),
        learner(attempt()),
        None,
    ),
    "neither-failed-nor-retake-while-the-last-attempt-awaits-correction": (
        session(step(min_score=80, max_attempts=2, requires_correction=True)),
        learner(
            attempt(ended=NOW - 2 * HOUR),
            attempt(attempt_id="a2"),
            corrections=(Correction("s1", "a1", 50, NOW - 2 * HOUR),),
        ),
        None,
    ),
    "time-limit-failure-is-not-below-min-score": (
        session(step(time_limit=timedelta(minutes=5), max_attempts=1)),
        learner(attempt(took=timedelta(minutes=6))),
        None,
    ),
}


@pytest.mark.parametrize(("path", "state", "expected"), RESULT.values(), ids=RESULT.keys())
def test_the_result(
    path: ev.PathSessionPublished, state: LearnerState, expected: PathResult | None
) -> None:
    assert stats(path, state, NOW).result is expected


def test_progress_time_and_score_sum_up_the_steps() -> None:
    path = session(step(), step("s2"), step("s3"))
    state = learner(
        attempt(score=70, spent=1000),
        attempt(attempt_id="a2", score=60, spent=500),
        attempt("s2", "a3", score=75, spent=250),
    )
    answer = stats(path, state, NOW)
    assert (answer.progress, answer.global_time_ms, answer.score) == (66, 1750, 73)


def test_the_score_is_the_exact_mean_rounded_once() -> None:
    """60.3, 68.1 and 68.1 are 196.5 / 3 = 65.5 exactly: 66 (in doubles, 65.49999...: 65)."""
    path = session(step(), step("s2"), step("s3"))
    state = learner(
        attempt(score=60.3), attempt("s2", "a2", score=68.1), attempt("s3", "a3", score=68.1)
    )
    assert stats(path, state, NOW).score == 66


def test_the_fallback_to_every_step_gives_one_reading_of_success_and_failure() -> None:
    """No step is mandatory; the learner did every step and ran out of attempts on one:
    completed, unsuccessful, and unsuccessful in detail too (not onTime)."""
    path = session(step(min_score=80, max_attempts=1, mandatory=False), step("s2", mandatory=False))
    answer = stats(path, learner(attempt(score=50), attempt("s2", "a2")), NOW)
    assert (answer.status, answer.result, answer.detailed_type) == (
        PathStatus.COMPLETED,
        PathResult.UNSUCCESSFUL,
        DetailedStatusType.UNSUCCESSFUL,
    )


def test_the_score_is_zero_without_scores() -> None:
    assert stats(session(), learner(attempt()), NOW).score == 0


def test_completed_at_is_when_the_last_mandatory_step_became_successful() -> None:
    corrected_at = NOW - HOUR / 2
    path = session(step(), step("s2", requires_correction=True))
    state = learner(
        attempt(ended=NOW - 3 * HOUR),
        attempt("s2", "a2", ended=NOW - 2 * HOUR),
        corrections=(Correction("s2", "a2", 90, corrected_at),),
    )
    assert stats(path, state, NOW).completed_at == corrected_at


def test_a_correction_arriving_after_the_session_ended_still_counts() -> None:
    path = session(ASSESSED, ends_at=NOW - 10 * HOUR)
    state = learner(
        attempt(ended=NOW - 20 * HOUR), corrections=(Correction("s1", "a1", 95, NOW - HOUR),)
    )
    answer = stats(path, state, NOW)
    assert answer.detailed_type is DetailedStatusType.SUCCESSFUL
    assert answer.score == 95


def test_unenrolling_freezes_the_stats_and_a_new_enrollment_clears_it() -> None:
    archived = NOW - 10 * HOUR
    state = learner(attempt(ended=NOW - HOUR), enrolled=NOW - 100 * HOUR, unenrolled=archived)
    frozen = stats(session(), state, NOW)
    assert frozen.archived_at == archived
    assert (frozen.progress, frozen.detailed_type) == (0, DetailedStatusType.NOT_YET_STARTED)
    back = stats(session(), replace(state, enrolled_at=NOW - 5 * HOUR), NOW)
    assert back.archived_at is None
    assert back.progress == 100


def test_attempts_of_a_step_the_republished_session_dropped_are_ignored() -> None:
    state = learner(attempt("gone", spent=5000), attempt("s1", "a2", score=80, spent=10))
    answer = stats(session(step()), state, NOW)
    assert (answer.progress, answer.global_time_ms, answer.score) == (100, 10, 80)


def test_a_session_without_steps_is_never_complete() -> None:
    answer = stats(ev.PathSessionPublished("p", "p", "n", None, None, ()), learner(), NOW)
    assert (answer.progress, answer.status, answer.result) == (0, PathStatus.ON_TIME, None)
