"""Kafka record -> domain event, or the reason it cannot be one. Pure: no I/O.

The value is the binary envelope, or its proto3 JSON form when the record carries the header
`content-type: application/json` (producers debugging with kcat).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from podium.events.v1 import catalog_pb2, enrollments_pb2, tasks_pb2, trips_pb2

from consumers import json_events
from service.app.records import EPOCH, Rejected, arrival_at
from service.domain import bounds
from service.domain import events as ev
from service.domain.validation import TIME_RANGE, problem_with
from service.logs import describe
from service.proto_enums import TASK_TYPE_OF, THEME_OF

E = TypeVar("E")

ENVELOPES: dict[str, type[Message]] = {
    "catalog": catalog_pb2.CatalogEvent,
    "trips": trips_pb2.TripEvent,
    "enrollments": enrollments_pb2.EnrollmentEvent,
    "tasks": tasks_pb2.TaskEvent,
}

JSON = b"application/json"
UNFORESEEN = "cannot decode the record"
"""How the reason of a record that broke decoding in a way nobody foresaw begins."""

_MS = timedelta(milliseconds=1)
_RECORD_TIME_MS = ((bounds.TIME_MIN - EPOCH) // _MS, (bounds.TIME_MAX - EPOCH) // _MS)

# What protobuf's well-known types allow (google/protobuf/timestamp.proto, duration.proto);
# a broken producer can send anything, which Python's datetime cannot always hold.
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)  # 0001-01-01 .. 9999-12-31
_DURATION_SECONDS = 315_576_000_000  # 10,000 years either way
_NANOS = 999_999_999


class _Invalid(Exception):
    """A field the rules need is missing or unusable."""


def decode(
    family: str,
    value: bytes,
    headers: Iterable[tuple[str, bytes | None]],
    timestamp_ms: int,
    *,
    json_fast_path: bool = True,
) -> ev.Event | Rejected:
    """The record's event, or why it is rejected. Never raises: whatever goes wrong decoding
    one record makes that record's Rejected, so one bad record cannot stop consumption.

    `timestamp_ms` is the record's Kafka timestamp, the event's arrival time (SPEC section 4).
    A JSON record goes first through `consumers.json_events`, which reads the common
    envelopes with the same outcome as protobuf's `json_format` at a fraction of its cost;
    `json_fast_path=False` skips it (the tests compare both routes).
    """
    try:
        return _decode(family, value, headers, timestamp_ms, json_fast_path)
    except Exception as error:  # the last resort: any surprise is this record's problem
        return Rejected(f"{UNFORESEEN}: {describe(error)}", kind="undecodable")


def _decode(
    family: str,
    value: bytes,
    headers: Iterable[tuple[str, bytes | None]],
    timestamp_ms: int,
    json_fast_path: bool,
) -> ev.Event | Rejected:
    envelope_type = ENVELOPES.get(family)
    if envelope_type is None:
        return Rejected(f"unknown topic family {family!r}", kind="undecodable")
    is_json = _is_json(headers)
    in_time = _RECORD_TIME_MS[0] <= timestamp_ms < _RECORD_TIME_MS[1]
    arrived_at = arrival_at(timestamp_ms) if in_time else None
    if is_json and json_fast_path and arrived_at is not None:
        fast = json_events.event_of(family, value, arrived_at)
        if fast is not None:
            return _validated(fast)
    envelope: Any = envelope_type()
    try:
        _parse(envelope, value, is_json=is_json)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as error:
        reason = f"undecodable {envelope_type.__name__}: {error}".strip()
        return Rejected(reason, kind="undecodable")
    tenant_id: str = envelope.tenant_id
    event_id: str = envelope.event_id
    if arrived_at is None:
        reason = f"record timestamp {timestamp_ms} ms is outside {TIME_RANGE}"
        return Rejected(reason, tenant_id, event_id)
    try:
        event = _to_event(envelope, tenant_id, event_id, arrived_at)
    except _Invalid as error:
        return Rejected(str(error), tenant_id, event_id)
    return _validated(event)


def _validated(event: ev.Event) -> ev.Event | Rejected:
    """The event, or its rejection by the rules (`problem_with`): the last step of both the
    protobuf and the JSON fast route."""
    problem = problem_with(event)
    if problem:
        return Rejected(problem, event.meta.tenant_id, event.meta.event_id)
    return event


def _is_json(headers: Iterable[tuple[str, bytes | None]]) -> bool:
    return any(
        name.lower() == "content-type"
        and value is not None
        and value.split(b";")[0].strip().lower() == JSON
        for name, value in headers
    )


def _parse(envelope: Message, value: bytes, *, is_json: bool) -> None:
    if is_json:
        json_format.Parse(value.decode("utf-8"), envelope)
    else:
        envelope.ParseFromString(value)


def _to_event(envelope: Any, tenant_id: str, event_id: str, arrived_at: datetime) -> ev.Event:
    """`tenant_id` and `event_id` as already read from the envelope (each read of a string
    field makes a new Python string)."""
    if not tenant_id or not event_id:
        missing = [n for n, v in (("event_id", event_id), ("tenant_id", tenant_id)) if not v]
        raise _Invalid(f"missing {', '.join(missing)}")
    kind = envelope.WhichOneof("event")
    convert = _PAYLOADS.get(kind or "")
    if convert is None:
        raise _Invalid("no known event in the envelope (unknown or missing oneof)")
    meta = ev.Meta(tenant_id, event_id, _required_time(envelope, "occurred_at"), arrived_at)
    return ev.Event(meta, convert(getattr(envelope, kind)))


# --- field helpers -------------------------------------------------------------------------


def _time(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    seconds, nanos = stamp.seconds, stamp.nanos
    if not (_TIMESTAMP_SECONDS[0] <= seconds <= _TIMESTAMP_SECONDS[1] and 0 <= nanos <= _NANOS):
        raise _Invalid(f"{field} is not a valid Timestamp (seconds {seconds}, nanos {nanos})")
    # Cheaper than Timestamp.ToDatetime on the ingest path; microsecond precision, like it.
    return EPOCH + timedelta(0, seconds, nanos // 1000)  # positional: cheaper than keywords


def _required_time(message: Any, field: str) -> datetime:
    moment = _time(message, field)
    if moment is None:
        raise _Invalid(f"missing {field}")
    return moment


def _duration(message: Any, field: str) -> timedelta | None:
    if not message.HasField(field):
        return None
    span = getattr(message, field)
    seconds, nanos = span.seconds, span.nanos
    same_sign = seconds == 0 or nanos == 0 or (seconds < 0) == (nanos < 0)
    if not (abs(seconds) <= _DURATION_SECONDS and abs(nanos) <= _NANOS and same_sign):
        raise _Invalid(f"{field} is not a valid Duration (seconds {seconds}, nanos {nanos})")
    return span.ToTimedelta()  # type: ignore[no-any-return]


def _optional(message: Any, field: str) -> Any:
    return getattr(message, field) if message.HasField(field) else None


def _enum(table: Mapping[int, E], value: int, field: str) -> E:
    """A proto enum's value as the domain's, through its table (`service.proto_enums`)."""
    found = table.get(value)
    if found is None:
        raise _Invalid(f"{field} is unspecified or unknown ({value})")
    return found


# --- payloads ------------------------------------------------------------------------------


def _user_upserted(m: Any) -> ev.UserUpserted:
    return ev.UserUpserted(
        user_id=m.user_id,
        email=m.email,
        firstname=m.firstname,
        lastname=m.lastname,
        pseudo=m.pseudo,
        groups=tuple(sorted(set(m.groups))),
    )


def _challenge_published(m: Any) -> ev.ChallengePublished:
    return ev.ChallengePublished(
        challenge_id=m.challenge_id,
        title=m.title,
        theme=_enum(THEME_OF, m.theme, "theme"),
        start_at=_required_time(m, "start_at"),
        end_at=_required_time(m, "end_at"),
        groups=tuple(sorted(set(m.groups))),
        min_trips=m.min_trips if m.HasField("min_trips") else 1,
        min_distance_km=m.min_distance_km,
        pre_challenge_period=_duration(m, "pre_challenge_period"),
        pre_challenge_min_trips=(
            m.pre_challenge_min_trips if m.HasField("pre_challenge_min_trips") else 10
        ),
    )


def _step(m: Any) -> ev.Step:
    return ev.Step(
        step_id=m.step_id,
        mandatory=m.mandatory,
        due_at=_time(m, "due_at"),
        due_after_enrollment=_duration(m, "due_after_enrollment"),
        min_score=_optional(m, "min_score"),
        max_attempts=_optional(m, "max_attempts"),
        time_limit=_duration(m, "time_limit"),
        requires_correction=m.requires_correction,
        mandatory_replay=m.mandatory_replay,
    )


def _path_session_published(m: Any) -> ev.PathSessionPublished:
    return ev.PathSessionPublished(
        session_id=m.session_id,
        path_id=m.path_id,
        name=m.name,
        starts_at=_time(m, "starts_at"),
        ends_at=_time(m, "ends_at"),
        steps=tuple(_step(s) for s in m.steps),
    )


def _trip_completed(m: Any) -> ev.TripCompleted:
    return ev.TripCompleted(  # positional: the hot path of ingest
        m.trip_id,
        m.user_id,
        _required_time(m, "started_at"),
        _required_time(m, "ended_at"),
        m.distance_km,
        _scores(m.scores),
    )


def _scores(s: Any) -> ev.Scores:
    # The hot path of ingest: HasField inline rather than a call of `_optional` per score.
    has = s.HasField
    return ev.Scores(
        s.safety if has("safety") else None,
        s.eco_driving if has("eco_driving") else None,
        s.distraction if has("distraction") else None,
        s.speeding if has("speeding") else None,
    )


def _trip_deleted(m: Any) -> ev.TripDeleted:
    return ev.TripDeleted(trip_id=m.trip_id, user_id=m.user_id)


def _challenge_registered(m: Any) -> ev.ChallengeRegistered:
    return ev.ChallengeRegistered(
        challenge_id=m.challenge_id,
        user_id=m.user_id,
        registered_at=_required_time(m, "registered_at"),
    )


def _path_enrolled(m: Any) -> ev.PathEnrolled:
    return ev.PathEnrolled(m.session_id, m.user_id, _required_time(m, "enrolled_at"))


def _path_unenrolled(m: Any) -> ev.PathUnenrolled:
    return ev.PathUnenrolled(m.session_id, m.user_id, _required_time(m, "unenrolled_at"))


def _step_attempted(m: Any) -> ev.StepAttempted:
    return ev.StepAttempted(
        session_id=m.session_id,
        user_id=m.user_id,
        step_id=m.step_id,
        attempt_id=m.attempt_id,
        started_at=_required_time(m, "started_at"),
        ended_at=_required_time(m, "ended_at"),
        time_spent_ms=m.time_spent_ms,
        score=_optional(m, "score"),
        outside_path=m.outside_path,
    )


def _step_corrected(m: Any) -> ev.StepCorrected:
    return ev.StepCorrected(
        session_id=m.session_id,
        user_id=m.user_id,
        step_id=m.step_id,
        attempt_id=m.attempt_id,
        score=m.score,
        corrected_at=_required_time(m, "corrected_at"),
    )


def _task_created(m: Any) -> ev.TaskCreated:
    return ev.TaskCreated(
        task_id=m.task_id,
        type=_enum(TASK_TYPE_OF, m.type, "type"),
        nb_items=m.nb_items,
        created_at=_required_time(m, "created_at"),
    )


def _task_started(m: Any) -> ev.TaskStarted:
    return ev.TaskStarted(m.task_id, _required_time(m, "started_at"))


def _task_progressed(m: Any) -> ev.TaskProgressed:
    return ev.TaskProgressed(m.task_id, m.nb_remaining_items)


def _task_completed(m: Any) -> ev.TaskCompleted:
    return ev.TaskCompleted(m.task_id, _required_time(m, "completed_at"))


def _task_failed(m: Any) -> ev.TaskFailed:
    return ev.TaskFailed(m.task_id, _required_time(m, "failed_at"), m.reason)


def _push_service_paused(m: Any) -> ev.PushServicePaused:
    return ev.PushServicePaused(_enum(TASK_TYPE_OF, m.type, "type"))


_PAYLOADS: dict[str, Callable[[Any], ev.Payload]] = {
    "user_upserted": _user_upserted,
    "challenge_published": _challenge_published,
    "path_session_published": _path_session_published,
    "trip_completed": _trip_completed,
    "trip_deleted": _trip_deleted,
    "challenge_registered": _challenge_registered,
    "path_enrolled": _path_enrolled,
    "path_unenrolled": _path_unenrolled,
    "step_attempted": _step_attempted,
    "step_corrected": _step_corrected,
    "task_created": _task_created,
    "task_started": _task_started,
    "task_progressed": _task_progressed,
    "task_completed": _task_completed,
    "task_failed": _task_failed,
    "push_service_paused": _push_service_paused,
}
