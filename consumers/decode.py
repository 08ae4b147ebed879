"""Kafka record -> domain event, or the reason it cannot be one. Pure: no I/O.

The value is the topic's envelope (docs/events.md): binary protobuf, or its proto3 JSON form
when the record carries the header `content-type: application/json` or, without it, when the
value is a JSON object; either may come framed by a Schema Registry serializer
(`consumers.framing`). Fields Podium does not know are ignored, in JSON as in binary; in
JSON they are also named (`consumers.unknown_fields`), so that the consumer loop can count
them.

Which form a value without the header is: JSON only if it loads as a JSON object, else
binary. A binary envelope may begin with `{` or JSON's whitespace (its `event_id` tag is a
newline), but one Podium can fold never loads as JSON: its `tenant_id` tag is the byte 0x12,
a control character JSON allows nowhere (tests/integration/test_decode_or_fold.py holds every
generated binary envelope to decoding as before).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message
from podium.events.v1 import catalog_pb2, enrollments_pb2, tasks_pb2, trips_pb2

from consumers import framing, json_events, unknown_fields
from consumers.remembered import Remembered
from service.app.records import EPOCH, Rejected, arrival_at, moment_at
from service.domain import bounds
from service.domain import events as ev
from service.domain.validation import TIME_RANGE, plainly_sound_trip, problem_with
from service.logs import describe
from service.proto_enums import TASK_TYPE_OF, THEME_OF

E = TypeVar("E")

ENVELOPES: dict[str, type[Message]] = {
    "catalog": catalog_pb2.CatalogEvent,
    "trips": trips_pb2.TripEvent,
    "enrollments": enrollments_pb2.EnrollmentEvent,
    "tasks": tasks_pb2.TaskEvent,
}
_DESCRIPTORS = {family: cast(Descriptor, e.DESCRIPTOR) for family, e in ENVELOPES.items()}

JSON = b"application/json"
UNFORESEEN = "cannot decode the record"
"""How the reason of a record that broke decoding in a way nobody foresaw begins."""
NOT_JSON = "no content-type: application/json header, and the value is not a JSON object"

_MS = timedelta(milliseconds=1)
_RECORD_TIME_MS = ((bounds.TIME_MIN - EPOCH) // _MS, (bounds.TIME_MAX - EPOCH) // _MS)

# What protobuf's well-known types allow (google/protobuf/timestamp.proto, duration.proto);
# a broken producer can send anything, which Python's datetime cannot always hold.
_TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)  # 0001-01-01 .. 9999-12-31
_DURATION_SECONDS = 315_576_000_000  # 10,000 years either way
_NANOS = 999_999_999

_JSON_SPACE = b" \t\n\r"
"""JSON's whitespace, which may come before an object's `{`."""
_MAGIC = framing.MAGIC

Outcome = ev.Event | Rejected
Decoded = tuple[Outcome, tuple[str, ...]]
"""A record's event or rejection, and the paths of the fields of its JSON that Podium does not
know (`consumers.unknown_fields`; only an event's are named, a binary record's never)."""
_NONE: tuple[str, ...] = ()


class _Invalid(Exception):
    """A field the rules need is missing or unusable: the record cannot be decoded into an
    event (`undecodable`, docs/rules.md#validation-and-dead-letters)."""


class NotJson(Exception):
    """The value does not load as JSON (its message says why, as json_format says it)."""


def decode(
    family: str,
    value: bytes,
    headers: Iterable[tuple[str, bytes | None]],
    timestamp_ms: int,
    *,
    json_fast_path: bool = True,
) -> Outcome:
    """The record's event, or why it is rejected (`decode_noting_unknown_fields` without
    the unknown fields' paths)."""
    try:
        return _decode(family, value, headers, timestamp_ms, json_fast_path)[0]
    except Exception as error:  # the last resort, as below
        return _unforeseen(error)


def decode_noting_unknown_fields(
    family: str,
    value: bytes,
    headers: Iterable[tuple[str, bytes | None]],
    timestamp_ms: int,
    *,
    json_fast_path: bool = True,
) -> Decoded:
    """The record's event or why it is rejected, and the paths of its unknown fields, sorted.
    Never raises: whatever goes wrong decoding one record makes that record's Rejected, so
    one bad record cannot stop consumption.

    `timestamp_ms` is the record's Kafka timestamp, the event's arrival time
    (docs/rules.md#arrival-time-and-freezes).
    A JSON record goes first through `consumers.json_events`, which reads the common
    envelopes with the same outcome as protobuf's `json_format` at a fraction of its cost (a
    trip written as producers write it without even loading its JSON);
    `json_fast_path=False` skips it (the tests compare both routes).
    """
    try:
        return _decode(family, value, headers, timestamp_ms, json_fast_path)
    except Exception as error:  # the last resort: any surprise is this record's problem
        return _unforeseen(error), _NONE


def _unforeseen(error: Exception) -> Rejected:
    return Rejected(f"{UNFORESEEN}: {describe(error)}", kind="undecodable")


def _decode(
    family: str,
    value: bytes,
    headers: Iterable[tuple[str, bytes | None]],
    timestamp_ms: int,
    json_fast_path: bool,
) -> Decoded:
    envelope_type = ENVELOPES.get(family)
    if envelope_type is None:
        return Rejected(f"unknown topic family {family!r}", kind="undecodable"), _NONE
    in_time = _RECORD_TIME_MS[0] <= timestamp_ms < _RECORD_TIME_MS[1]
    arrived_at = arrival_at(timestamp_ms) if in_time else None
    framed = None
    if value[:1] == _MAGIC:
        try:
            framed = framing.unframe(value)
        except framing.FrameError as error:
            return _undecodable(envelope_type, error), _NONE
        value = framed.rest
    if _is_json(headers):
        canonical = _canonical_trip(family, value, arrived_at, json_fast_path)
        if canonical is not None:
            return canonical
        try:
            document = load_json(value)
        except NotJson as error:
            return _undecodable(envelope_type, error), _NONE
        return _from_json(envelope_type, family, document, arrived_at, timestamp_ms, json_fast_path)
    why_not_json = NOT_JSON
    if value.lstrip(_JSON_SPACE).startswith(b"{"):  # a regular expression costs more
        canonical = _canonical_trip(family, value, arrived_at, json_fast_path)
        if canonical is not None:
            return canonical
        try:
            document = load_json(value)
        except NotJson as error:
            why_not_json = f"{NOT_JSON}: {error}"
        else:
            if type(document) is dict:
                return _from_json(
                    envelope_type, family, document, arrived_at, timestamp_ms, json_fast_path
                )
    return _from_binary(family, value, framed, why_not_json, arrived_at, timestamp_ms)


def _canonical_trip(
    family: str, value: bytes, arrived_at: datetime | None, fast: bool
) -> Decoded | None:
    """The outcome of a trip written as producers write it (`json_events.canonical_trip`),
    the hottest path of JSON ingest; None to load the JSON."""
    if not fast or arrived_at is None or family != "trips":
        return None
    event = json_events.canonical_trip(value, arrived_at)
    return None if event is None else (_validated(event), _NONE)


def _from_json(
    envelope_type: type[Message],
    family: str,
    document: Any,
    arrived_at: datetime | None,
    timestamp_ms: int,
    fast: bool,
) -> Decoded:
    if fast and arrived_at is not None:
        recognised = json_events.event_of(family, document, arrived_at)
        if recognised is not None:  # the hot path of JSON ingest: _with_unknown, inline
            event, unknown = recognised
            outcome = _validated(event)
            if unknown and type(outcome) is ev.Event:
                return outcome, tuple(sorted(unknown))
            return outcome, _NONE
    unknown = unknown_fields.drop_from_json(document, _DESCRIPTORS[family])
    envelope = envelope_type()
    try:
        _parse_dict(document, envelope)
    except json_format.ParseError as error:
        return _undecodable(envelope_type, error), _NONE
    return _with_unknown(_outcome(envelope, arrived_at, timestamp_ms), unknown)


def _from_binary(
    family: str,
    value: bytes,
    framed: framing.Framed | None,
    why_not_json: str,
    arrived_at: datetime | None,
    timestamp_ms: int,
) -> Decoded:
    envelope_type = ENVELOPES[family]
    framing_of = ""
    if framed is not None:
        framing_of = f"Schema Registry framing (schema id {framed.schema_id}): "
        try:
            value = framing.envelope_message(framed, _DESCRIPTORS[family])
        except framing.FrameError as error:
            return _undecodable(envelope_type, error), _NONE
    envelope: Any = envelope_type()
    try:
        envelope.ParseFromString(value)
    except DecodeError:
        why = f"{framing_of}not binary protobuf, and not JSON ({why_not_json})"
        return _undecodable(envelope_type, why), _NONE
    return _outcome(envelope, arrived_at, timestamp_ms), _NONE


def _outcome(envelope: Any, arrived_at: datetime | None, timestamp_ms: int) -> Outcome:
    tenant_id: str = envelope.tenant_id
    event_id: str = envelope.event_id
    if arrived_at is None:
        reason = f"record timestamp {timestamp_ms} ms is outside {TIME_RANGE}"
        return Rejected(reason, tenant_id, event_id, kind="undecodable")
    try:
        event = _to_event(envelope, tenant_id, event_id, arrived_at)
    except _Invalid as error:
        return Rejected(str(error), tenant_id, event_id, kind="undecodable")
    return _validated(event)


def _with_unknown(outcome: Outcome, unknown: list[str]) -> Decoded:
    if not unknown or type(outcome) is not ev.Event:
        return outcome, _NONE
    return outcome, tuple(sorted(unknown))


def _undecodable(envelope_type: type[Message], why: Exception | str) -> Rejected:
    return Rejected(f"undecodable {envelope_type.__name__}: {why}".strip(), kind="undecodable")


def _validated(event: ev.Event) -> ev.Event | Rejected:
    """The event, or its rejection by the rules (`problem_with`): the last step of both the
    protobuf and the JSON fast route. An ordinary trip, the bulk of ingest, is passed by
    `plainly_sound_trip` straight away."""
    if type(event.payload) is ev.TripCompleted and plainly_sound_trip(event):
        return event
    problem = problem_with(event, quick=False)
    if problem:
        return Rejected(problem, event.meta.tenant_id, event.meta.event_id)
    return event


def _is_json(headers: Iterable[tuple[str, bytes | None]]) -> bool:
    for name, value in headers:
        if value is None:
            continue
        if value == JSON and name == "content-type":  # as producers send it: once a record
            return True
        if name.lower() == "content-type" and value.split(b";")[0].strip().lower() == JSON:
            return True
    return False


def load_json(value: bytes) -> Any:
    """The JSON document, loaded as json_format loads it: UTF-8, and no key twice in an
    object."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotJson(str(error)) from None
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
        raise NotJson(f"Failed to load JSON: {error}.") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key}")
            seen.add(key)
    return members


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)
"""The decoder json.loads would build on every call for a hook."""


def _parse_dict(document: Any, envelope: Message) -> None:
    """json_format.Parse's reading of a loaded document, its errors included."""
    try:
        json_format.ParseDict(document, envelope)
    except json_format.ParseError:
        raise
    except Exception as error:
        raise json_format.ParseError(
            f"Failed to parse JSON: {type(error).__name__}: {error}."
        ) from error


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
    return _required_time(message, field) if message.HasField(field) else None


def _required_time(message: Any, field: str) -> datetime:
    stamp = getattr(message, field)  # reading an absent message sets nothing
    seconds, nanos = stamp.seconds, stamp.nanos
    if not (seconds or nanos) and not message.HasField(field):
        raise _Invalid(f"missing {field}")
    last, before = _recent_times
    if last[0] == seconds and last[1] == nanos:
        return last[2]
    if before[0] == seconds and before[1] == nanos:  # a trip's end, when it occurred
        return before[2]
    if not (_TIMESTAMP_SECONDS[0] <= seconds <= _TIMESTAMP_SECONDS[1] and 0 <= nanos <= _NANOS):
        raise _Invalid(f"{field} is not a valid Timestamp (seconds {seconds}, nanos {nanos})")
    # Cheaper than Timestamp.ToDatetime on the ingest path; microsecond precision, like it.
    moment = moment_at(seconds, nanos // 1000)
    _recent_times[:] = ((seconds, nanos, moment), last)
    return moment


_recent_times: list[tuple[int, int, datetime]] = [(0, 0, EPOCH), (0, 0, EPOCH)]
"""The last two Timestamps `_required_time` read (seconds, nanos) and their moments, the
last first: a trip's envelope is read before its payload, and its end is often when it
occurred. Replaced whole, so threads sharing them at worst make a moment again."""


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


def _finite(value: float, field: str) -> float:
    if not math.isfinite(value):
        raise _Invalid(f"{field} is {value}, not a finite number")
    return value


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
        min_distance_km=_finite(m.min_distance_km, "min_distance_km"),
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


_SCORES_SEEN: Remembered[bytes, ev.Scores] = Remembered(json_events.REMEMBERED_SCORES)


def _scores(s: Any) -> ev.Scores:
    """A trip's scores, remembered by their message's bytes for the next trip that sends the
    same (scores repeat, and their bytes cost far less than reading them)."""
    key: bytes = s.SerializeToString()
    found = _SCORES_SEEN.get(key)
    return _SCORES_SEEN.keep(key, _read_scores(s)) if found is None else found


def _read_scores(s: Any) -> ev.Scores:
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
