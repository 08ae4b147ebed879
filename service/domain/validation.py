"""The rules an event must keep to be folded (SPEC section 2); a broken one is dead-lettered."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

from service.domain import events as ev
from service.domain.bounds import ID_MAX_BYTES, ID_MAX_LENGTH, STEP_SCORE_RANGE, TRIP_SCORE_RANGE

NUL = "\x00"


def id_problem(name: str, value: str, max_length: int = ID_MAX_LENGTH) -> str | None:
    """Why `value` cannot be an id (bounds: `service.domain.bounds`), or None."""
    if not value:
        return f"missing {name}"
    if len(value) > max_length:
        return f"{name} is longer than {max_length} characters"
    if NUL in value:
        return f"{name} contains a NUL character"
    # A character is at most 4 bytes of UTF-8: only a long id can exceed the byte bound.
    if len(value) * 4 > ID_MAX_BYTES and len(value.encode("utf-8")) > ID_MAX_BYTES:
        return f"{name} is longer than {ID_MAX_BYTES} bytes of UTF-8"
    return None


def problem_with(payload: ev.Payload) -> str | None:
    """Why this event cannot be folded, or None when it is sound."""
    check = _CHECKS.get(type(payload))
    return check(payload) if check else None


def _first(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def _ids(**ids: str) -> str | None:
    if all(ids.values()):
        return None
    return f"missing {', '.join(sorted(name for name, value in ids.items() if not value))}"


def _in_range(name: str, value: float | None, bounds: tuple[float, float]) -> str | None:
    low, high = bounds
    if value is None:
        return None
    if math.isnan(value) or not low <= value <= high:
        return f"{name} {value} is out of range [{low:g}, {high:g}]"
    return None


def _ordered(first: str, start: datetime, last: str, end: datetime) -> str | None:
    return f"{last} is before {first}" if end < start else None


def _not_negative(name: str, value: float) -> str | None:
    return f"{name} {value} is negative" if math.isnan(value) or value < 0 else None


def _trip_completed(e: ev.TripCompleted) -> str | None:
    # The hot path of ingest: cheap checks first, messages built only for a failure.
    return _first(
        _ids(trip_id=e.trip_id, user_id=e.user_id),
        _ordered("started_at", e.started_at, "ended_at", e.ended_at),
        _not_negative("distance_km", e.distance_km),
        _trip_scores(e.scores),
    )


def _trip_scores(scores: ev.Scores) -> str | None:
    low, high = TRIP_SCORE_RANGE
    for index, value in enumerate(scores.in_kind_order()):
        if value is not None and not low <= value <= high:  # NaN fails too
            name = ev.ScoreKind(index + 1).name.lower()
            return _in_range(f"scores.{name}", value, TRIP_SCORE_RANGE)
    return None


def _trip_deleted(e: ev.TripDeleted) -> str | None:
    return _ids(trip_id=e.trip_id, user_id=e.user_id)


def _user_upserted(e: ev.UserUpserted) -> str | None:
    return _first(
        _ids(user_id=e.user_id),
        "empty group label" if any(not g for g in e.groups) else None,
    )


def _challenge_published(e: ev.ChallengePublished) -> str | None:
    period = e.pre_challenge_period
    return _first(
        _ids(challenge_id=e.challenge_id),
        "end_at is not after start_at" if e.end_at <= e.start_at else None,
        _not_negative("min_trips", e.min_trips),
        _not_negative("min_distance_km", e.min_distance_km),
        _not_negative("pre_challenge_min_trips", e.pre_challenge_min_trips),
        "pre_challenge_period is negative"
        if period is not None and period.total_seconds() < 0
        else None,
        "empty group label" if any(not g for g in e.groups) else None,
    )


def _path_session_published(e: ev.PathSessionPublished) -> str | None:
    step_ids = [s.step_id for s in e.steps]
    bounds = (
        _ordered("starts_at", e.starts_at, "ends_at", e.ends_at)
        if e.starts_at and e.ends_at
        else None
    )
    return _first(
        _ids(session_id=e.session_id),
        bounds,
        "missing step_id" if any(not i for i in step_ids) else None,
        "duplicate step_id" if len(set(step_ids)) != len(step_ids) else None,
        *(_step(s) for s in e.steps),
    )


def _step(s: ev.Step) -> str | None:
    return _first(
        _in_range(f"steps[{s.step_id}].min_score", s.min_score, STEP_SCORE_RANGE),
        _not_negative(f"steps[{s.step_id}].max_attempts", s.max_attempts or 0),
    )


def _challenge_registered(e: ev.ChallengeRegistered) -> str | None:
    return _ids(challenge_id=e.challenge_id, user_id=e.user_id)


def _path_enrolled(e: ev.PathEnrolled) -> str | None:
    return _ids(session_id=e.session_id, user_id=e.user_id)


def _path_unenrolled(e: ev.PathUnenrolled) -> str | None:
    return _ids(session_id=e.session_id, user_id=e.user_id)


def _step_attempted(e: ev.StepAttempted) -> str | None:
    return _first(
        _ids(
            session_id=e.session_id, user_id=e.user_id, step_id=e.step_id, attempt_id=e.attempt_id
        ),
        _ordered("started_at", e.started_at, "ended_at", e.ended_at),
        _not_negative("time_spent_ms", e.time_spent_ms),
        _in_range("score", e.score, STEP_SCORE_RANGE),
    )


def _step_corrected(e: ev.StepCorrected) -> str | None:
    return _first(
        _ids(
            session_id=e.session_id, user_id=e.user_id, step_id=e.step_id, attempt_id=e.attempt_id
        ),
        _in_range("score", e.score, STEP_SCORE_RANGE),
    )


def _task_created(e: ev.TaskCreated) -> str | None:
    return _first(_ids(task_id=e.task_id), _not_negative("nb_items", e.nb_items))


def _task_progressed(e: ev.TaskProgressed) -> str | None:
    return _first(
        _ids(task_id=e.task_id), _not_negative("nb_remaining_items", e.nb_remaining_items)
    )


def _task_id_only(e: ev.TaskStarted | ev.TaskCompleted | ev.TaskFailed) -> str | None:
    return _ids(task_id=e.task_id)


_CHECKS: dict[type, Callable[..., str | None]] = {
    ev.TripCompleted: _trip_completed,
    ev.TripDeleted: _trip_deleted,
    ev.UserUpserted: _user_upserted,
    ev.ChallengePublished: _challenge_published,
    ev.PathSessionPublished: _path_session_published,
    ev.ChallengeRegistered: _challenge_registered,
    ev.PathEnrolled: _path_enrolled,
    ev.PathUnenrolled: _path_unenrolled,
    ev.StepAttempted: _step_attempted,
    ev.StepCorrected: _step_corrected,
    ev.TaskCreated: _task_created,
    ev.TaskStarted: _task_id_only,
    ev.TaskProgressed: _task_progressed,
    ev.TaskCompleted: _task_id_only,
    ev.TaskFailed: _task_id_only,
}
