"""The rules an event must keep to be folded (docs/rules.md#validation-and-dead-letters); a
broken one is dead-lettered.

Validation is total: every field that reaches the folds is checked against its bound in
`service.domain.bounds`, so whatever passes here the folds and the database accept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

from service.domain import events as ev
from service.domain.bounds import (
    CHALLENGE_MIN_DISTANCE_MAX_KM,
    DURATION_MAX,
    EMAIL_MAX_LENGTH,
    ID_MAX_BYTES,
    ID_MAX_LENGTH,
    MAX_GROUPS,
    MAX_STEPS,
    NAME_MAX_LENGTH,
    STEP_SCORE_RANGE,
    TENANT_ID_MAX_LENGTH,
    TEXT_MAX_LENGTH,
    TIME_MAX,
    TIME_MIN,
    TIME_SPENT_MAX_MS,
    TRIP_DISTANCE_MAX_KM,
    TRIP_SCORE_RANGE,
)

NUL = "\x00"
TIME_RANGE = f"{TIME_MIN:%Y-%m-%d}..{TIME_MAX:%Y-%m-%d}"
"""How reasons name the time bounds (the upper one excluded)."""


def problem_with(event: ev.Event, *, quick: bool = True) -> str | None:
    """Why this event cannot be folded, or None when it is sound. `quick`: an ordinary trip,
    the bulk of ingest, is passed by one cheap test first (`plainly_sound_trip`); the checks
    below say why when that test does not pass (tests turn it off to compare)."""
    if quick and type(event.payload) is ev.TripCompleted and plainly_sound_trip(event):
        return None
    check = _CHECKS.get(type(event.payload))
    if check is None:  # fail closed: a payload without rules is not folded
        return f"no rules for {type(event.payload).__name__}"
    return _meta(event.meta) or check(event.payload)


SHORT_ID = ID_MAX_BYTES // 4
"""An id no longer than this is within the byte bound whatever its characters (at most four
bytes of UTF-8 each)."""


_SHORT_TENANT_ID = min(SHORT_ID, TENANT_ID_MAX_LENGTH)
_SCORE_LOW, _SCORE_HIGH = TRIP_SCORE_RANGE


def plainly_sound_trip(event: ev.Event) -> bool:
    """True only if every check of the envelope and of `_trip_completed` passes: ids short
    enough to need no byte count, every time in range, the distance and the scores in range.
    False settles nothing: the checks then find the problem, if any. (Once a trip on the
    ingest path: the tests of an id are written out, not called.)"""
    meta, trip = event.meta, event.payload
    if type(trip) is not ev.TripCompleted:
        return False
    event_id, tenant_id = meta.event_id, meta.tenant_id
    trip_id, user_id = trip.trip_id, trip.user_id
    scores = trip.scores
    low, high = _SCORE_LOW, _SCORE_HIGH
    return (
        0 < len(event_id) <= SHORT_ID
        and 0 < len(tenant_id) <= _SHORT_TENANT_ID
        and 0 < len(trip_id) <= SHORT_ID
        and 0 < len(user_id) <= SHORT_ID
        and NUL not in event_id
        and NUL not in tenant_id
        and NUL not in trip_id
        and NUL not in user_id
        and TIME_MIN <= meta.occurred_at < TIME_MAX
        and TIME_MIN <= meta.arrived_at < TIME_MAX
        and TIME_MIN <= trip.started_at <= trip.ended_at < TIME_MAX
        and 0.0 <= trip.distance_km <= TRIP_DISTANCE_MAX_KM  # NaN fails
        and (scores.safety is None or low <= scores.safety <= high)
        and (scores.eco_driving is None or low <= scores.eco_driving <= high)
        and (scores.distraction is None or low <= scores.distraction <= high)
        and (scores.speeding is None or low <= scores.speeding <= high)
    )


# --- fields --------------------------------------------------------------------------------


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


def _first(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def _ids(**ids: str) -> str | None:
    if all(ids.values()):
        return _first(*(id_problem(name, value) for name, value in ids.items()))
    return f"missing {', '.join(sorted(name for name, value in ids.items() if not value))}"


def _text(name: str, value: str, max_length: int = TEXT_MAX_LENGTH) -> str | None:
    if len(value) > max_length:
        return f"{name} is longer than {max_length} characters"
    if NUL in value:
        return f"{name} contains a NUL character"
    return None


def _labels(labels: tuple[str, ...]) -> str | None:
    if len(labels) > MAX_GROUPS:
        return f"{len(labels)} groups, more than {MAX_GROUPS}"
    if any(not g for g in labels):
        return "empty group label"
    return _first(*(id_problem("group label", g) for g in labels))


def _time(name: str, moment: datetime | None) -> str | None:
    if moment is None or TIME_MIN <= moment < TIME_MAX:
        return None
    return f"{name} {moment.isoformat()} is outside {TIME_RANGE}"


def _duration(name: str, span: timedelta | None) -> str | None:
    if span is None or timedelta(0) <= span <= DURATION_MAX:
        return None
    return f"{name} {span} is outside 0..{DURATION_MAX.days} days"


def _in_range(name: str, value: float | None, bounds: tuple[float, float]) -> str | None:
    low, high = bounds
    if value is None or low <= value <= high:  # NaN fails the comparison
        return None
    return f"{name} {value} is out of range [{low:g}, {high:g}]"


def _ordered(first: str, start: datetime, last: str, end: datetime) -> str | None:
    return f"{last} is before {first}" if end < start else None


def _not_negative(name: str, value: float) -> str | None:
    if math.isnan(value):
        return f"{name} is not a number"
    return f"{name} {value} is negative" if value < 0 else None


def _meta(meta: ev.Meta) -> str | None:
    return _first(
        _ids(event_id=meta.event_id),
        id_problem("tenant_id", meta.tenant_id, TENANT_ID_MAX_LENGTH),
        _time("occurred_at", meta.occurred_at),
        _time("record timestamp", meta.arrived_at),
    )


# --- payloads ------------------------------------------------------------------------------


def _trip_completed(e: ev.TripCompleted) -> str | None:
    # The hot path of ingest: cheap checks first, messages built only for a failure.
    return _first(
        _ids(trip_id=e.trip_id, user_id=e.user_id),
        _time("started_at", e.started_at),
        _time("ended_at", e.ended_at),
        _ordered("started_at", e.started_at, "ended_at", e.ended_at),
        _not_negative("distance_km", e.distance_km),
        _in_range("distance_km", e.distance_km, (0.0, TRIP_DISTANCE_MAX_KM)),
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
        _text("email", e.email, EMAIL_MAX_LENGTH),
        # Stored lower-cased too, and lower-casing can lengthen a string ('İ').
        _text("email once lower-cased", e.email.lower(), EMAIL_MAX_LENGTH),
        _text("firstname", e.firstname, NAME_MAX_LENGTH),
        _text("lastname", e.lastname, NAME_MAX_LENGTH),
        _text("pseudo", e.pseudo, NAME_MAX_LENGTH),
        _labels(e.groups),
    )


def _challenge_published(e: ev.ChallengePublished) -> str | None:
    return _first(
        _ids(challenge_id=e.challenge_id),
        _text("title", e.title),
        _time("start_at", e.start_at),
        _time("end_at", e.end_at),
        "end_at is not after start_at" if e.end_at <= e.start_at else None,
        _not_negative("min_trips", e.min_trips),
        _not_negative("min_distance_km", e.min_distance_km),
        _in_range("min_distance_km", e.min_distance_km, (0.0, CHALLENGE_MIN_DISTANCE_MAX_KM)),
        _duration("pre_challenge_period", e.pre_challenge_period),
        _not_negative("pre_challenge_min_trips", e.pre_challenge_min_trips),
        _labels(e.groups),
    )


def _path_session_published(e: ev.PathSessionPublished) -> str | None:
    step_ids = [s.step_id for s in e.steps]
    order = (
        _ordered("starts_at", e.starts_at, "ends_at", e.ends_at)
        if e.starts_at and e.ends_at
        else None
    )
    return _first(
        _ids(session_id=e.session_id, path_id=e.path_id),
        _text("name", e.name),
        _time("starts_at", e.starts_at),
        _time("ends_at", e.ends_at),
        order,
        f"{len(e.steps)} steps, more than {MAX_STEPS}" if len(e.steps) > MAX_STEPS else None,
        "missing step_id" if any(not i for i in step_ids) else None,
        "duplicate step_id" if len(set(step_ids)) != len(step_ids) else None,
        *(_step(s) for s in e.steps),
    )


def _step(s: ev.Step) -> str | None:
    problem = id_problem("step_id", s.step_id)
    if problem:
        return problem
    name = f"steps[{s.step_id}]"
    return _first(
        _time(f"{name}.due_at", s.due_at),
        _duration(f"{name}.due_after_enrollment", s.due_after_enrollment),
        _in_range(f"{name}.min_score", s.min_score, STEP_SCORE_RANGE),
        _not_negative(f"{name}.max_attempts", s.max_attempts or 0),
        _duration(f"{name}.time_limit", s.time_limit),
    )


def _challenge_registered(e: ev.ChallengeRegistered) -> str | None:
    return _first(
        _ids(challenge_id=e.challenge_id, user_id=e.user_id),
        _time("registered_at", e.registered_at),
    )


def _path_enrolled(e: ev.PathEnrolled) -> str | None:
    return _first(
        _ids(session_id=e.session_id, user_id=e.user_id), _time("enrolled_at", e.enrolled_at)
    )


def _path_unenrolled(e: ev.PathUnenrolled) -> str | None:
    return _first(
        _ids(session_id=e.session_id, user_id=e.user_id),
        _time("unenrolled_at", e.unenrolled_at),
    )


def _step_attempted(e: ev.StepAttempted) -> str | None:
    return _first(
        _ids(
            session_id=e.session_id, user_id=e.user_id, step_id=e.step_id, attempt_id=e.attempt_id
        ),
        _time("started_at", e.started_at),
        _time("ended_at", e.ended_at),
        _ordered("started_at", e.started_at, "ended_at", e.ended_at),
        _not_negative("time_spent_ms", e.time_spent_ms),
        _in_range("time_spent_ms", e.time_spent_ms, (0, TIME_SPENT_MAX_MS)),
        _in_range("score", e.score, STEP_SCORE_RANGE),
    )


def _step_corrected(e: ev.StepCorrected) -> str | None:
    return _first(
        _ids(
            session_id=e.session_id, user_id=e.user_id, step_id=e.step_id, attempt_id=e.attempt_id
        ),
        _in_range("score", e.score, STEP_SCORE_RANGE),
        _time("corrected_at", e.corrected_at),
    )


def _task_created(e: ev.TaskCreated) -> str | None:
    return _first(
        _ids(task_id=e.task_id),
        _not_negative("nb_items", e.nb_items),
        _time("created_at", e.created_at),
    )


def _task_started(e: ev.TaskStarted) -> str | None:
    return _first(_ids(task_id=e.task_id), _time("started_at", e.started_at))


def _task_progressed(e: ev.TaskProgressed) -> str | None:
    return _first(
        _ids(task_id=e.task_id), _not_negative("nb_remaining_items", e.nb_remaining_items)
    )


def _task_completed(e: ev.TaskCompleted) -> str | None:
    return _first(_ids(task_id=e.task_id), _time("completed_at", e.completed_at))


def _task_failed(e: ev.TaskFailed) -> str | None:
    return _first(
        _ids(task_id=e.task_id), _time("failed_at", e.failed_at), _text("reason", e.reason)
    )


def _push_service_paused(e: ev.PushServicePaused) -> str | None:
    return None  # its only field is a known task type, which decoding ensures


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
    ev.TaskStarted: _task_started,
    ev.TaskProgressed: _task_progressed,
    ev.TaskCompleted: _task_completed,
    ev.TaskFailed: _task_failed,
    ev.PushServicePaused: _push_service_paused,
}
