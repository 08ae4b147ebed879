"""Decoding records into events, or into the reason they are dead-lettered
(docs/rules.md#validation-and-dead-letters)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient, header_schema_id_serializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from podium.events.v1 import catalog_pb2, enrollments_pb2, tasks_pb2, trips_pb2
from podium.v1 import common_pb2

import consumers.decode as decode_module
from consumers.decode import ENVELOPES, decode, decode_noting_unknown_fields
from consumers.remembered import Remembered
from service.app.records import Rejected
from service.domain import events as ev
from tests import profiles
from tests.builders import (
    catalog_session_envelope,
    enrollment_envelope,
    task_envelope,
    trip_envelope,
    user_envelope,
)

ARRIVED = datetime(2026, 11, 20, tzinfo=UTC)
ARRIVED_MS = int(ARRIVED.timestamp() * 1000)
JSON = [("content-type", b"application/json")]


def test_a_binary_trip_envelope_decodes_to_the_domain_event() -> None:
    envelope = trip_envelope("t1", "alice", km=12.5, safety=7.5)
    event = decode("trips", envelope.SerializeToString(), [], ARRIVED_MS)
    assert isinstance(event, ev.Event)
    assert event.meta == ev.Meta("acme", "trip-t1", event.meta.occurred_at, ARRIVED)
    assert isinstance(event.payload, ev.TripCompleted)
    assert (event.payload.distance_km, event.payload.scores.safety) == (12.5, 7.5)
    assert event.payload.scores.eco_driving is None


def test_the_json_form_decodes_the_same_with_its_content_type_header() -> None:
    envelope = user_envelope("bob", "north", "south")
    binary = decode("catalog", envelope.SerializeToString(), [], ARRIVED_MS)
    as_json = decode("catalog", json_format.MessageToJson(envelope).encode(), JSON, ARRIVED_MS)
    assert binary == as_json
    assert isinstance(as_json, ev.Event)
    assert as_json.payload == ev.UserUpserted(
        "bob", "bob@example.com", "Bob", "Doe", "bob", ("north", "south")
    )


def test_challenge_defaults_apply_when_optional_fields_are_unset() -> None:
    envelope = catalog_pb2.CatalogEvent(
        event_id="c",
        tenant_id="acme",
        challenge_published=catalog_pb2.ChallengePublished(
            challenge_id="c1", theme="CHALLENGE_THEME_SAFETY"
        ),
    )
    envelope.occurred_at.FromDatetime(ARRIVED)
    envelope.challenge_published.start_at.FromDatetime(ARRIVED)
    envelope.challenge_published.end_at.FromDatetime(ARRIVED + timedelta(days=7))
    event = decode("catalog", envelope.SerializeToString(), [], ARRIVED_MS)
    assert isinstance(event, ev.Event)
    assert isinstance(event.payload, ev.ChallengePublished)
    assert (event.payload.min_trips, event.payload.pre_challenge_min_trips) == (1, 10)
    assert event.payload.pre_challenge_period is None


def _trip_with(**changes: object) -> bytes:
    envelope = trip_envelope("t1", "alice")
    for name, value in changes.items():
        target = envelope.trip_completed
        if name == "safety":
            target.scores.safety = value  # type: ignore[assignment]
        elif name == "distance_km":
            target.distance_km = value  # type: ignore[assignment]
        elif name == "ended_before_start":
            target.ended_at.FromDatetime(ARRIVED - timedelta(days=2))
            target.started_at.FromDatetime(ARRIVED - timedelta(days=1))
        elif name in ("trip_id", "user_id", "event_id", "tenant_id"):
            setattr(target if name in ("trip_id", "user_id") else envelope, name, value)
    return envelope.SerializeToString()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xff not protobuf", "undecodable TripEvent: not binary protobuf, and not JSON"),
        (_trip_with(event_id=""), "missing event_id"),
        (_trip_with(tenant_id=""), "missing tenant_id"),
        (_trip_with(user_id=""), "missing user_id"),
        (_trip_with(safety=10.5), "scores.safety 10.5 is out of range"),
        (_trip_with(safety=-1.0), "scores.safety -1.0 is out of range"),
        (_trip_with(distance_km=-3.0), "distance_km -3.0 is negative"),
        (_trip_with(ended_before_start=True), "ended_at is before started_at"),
        (trips_pb2.TripEvent(event_id="e", tenant_id="t").SerializeToString(), "no known event"),
    ],
    ids=[
        "garbage",
        "no-event-id",
        "no-tenant",
        "no-user",
        "score-high",
        "score-low",
        "negative-distance",
        "ends-before-start",
        "no-oneof",
    ],
)
def test_broken_trip_events_are_rejected_with_a_reason(value: bytes, reason: str) -> None:
    outcome = decode("trips", value, [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert reason in outcome.reason


def test_an_unknown_oneof_from_a_newer_producer_is_rejected_not_dropped() -> None:
    newer = trips_pb2.TripEvent(event_id="e1", tenant_id="acme")
    newer.occurred_at.FromDatetime(ARRIVED)
    raw = newer.SerializeToString() + bytes([0xAA, 0x06, 0x00])  # field 101, empty message
    outcome = decode("trips", raw, [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert (outcome.tenant_id, outcome.event_id) == ("acme", "e1")


def _json_with(
    envelope: Message, additions: dict[str, object], *, proto_names: bool = False
) -> bytes:
    """The envelope's proto3 JSON (with the fields' names in the .proto files, or their JSON
    names) with members added at paths (`a.b.c`; a number steps into a list), as a newer
    producer would write it."""
    text = json_format.MessageToJson(envelope, preserving_proto_field_name=proto_names)
    document: Any = json.loads(text)
    for path, value in additions.items():
        *parents, last = path.split(".")
        target = document
        for name in parents:
            target = target[int(name)] if name.isdigit() else target[name]
        target[last] = value
    return json.dumps(document).encode()


def _session() -> Message:
    return catalog_session_envelope(
        "ps",
        starts_at=ARRIVED,
        ends_at=ARRIVED + timedelta(days=9),
        steps=[{"step_id": "quiz", "mandatory": True}, {"step_id": "video"}],
    )


@pytest.mark.parametrize(
    ("envelope", "additions", "proto_names", "paths"),
    [
        (_session(), {"schemaVersion": 2}, False, ("schemaVersion",)),
        (
            _session(),
            {"pathSessionPublished.steps.0.hint": "x", "pathSessionPublished.steps.1.hint": 1},
            False,
            ("pathSessionPublished.steps.hint", "pathSessionPublished.steps.hint"),
        ),
        (
            _session(),
            {"path_session_published.step_count": 2, "path_session_published.steps.1.hint": []},
            True,
            ("pathSessionPublished.step_count", "pathSessionPublished.steps.hint"),
        ),
        (
            user_envelope("bob", "north"),
            {"userUpserted.nickname": {"short": "b"}, "source": None},
            False,
            ("source", "userUpserted.nickname"),
        ),
    ],
    ids=["top-level", "in-each-step", "proto-names", "object-and-null"],
)
def test_json_fields_podium_does_not_know_are_ignored_at_any_depth_and_named(
    envelope: Message, additions: dict[str, object], proto_names: bool, paths: tuple[str, ...]
) -> None:
    newer = _json_with(envelope, additions, proto_names=proto_names)
    event, unknown = decode_noting_unknown_fields("catalog", newer, JSON, ARRIVED_MS)
    known = _json_with(envelope, {}, proto_names=proto_names)
    assert isinstance(event, ev.Event)
    assert (event, unknown) == (decode("catalog", known, JSON, ARRIVED_MS), paths)


def test_a_binary_envelope_with_fields_podium_does_not_know_folds_and_names_none() -> None:
    """Protobuf sets them aside; finding them costs more than the decoding (docs/events.md)."""
    known = trip_envelope("t1", "alice").SerializeToString()
    newer = known + bytes([0xC8, 0x01, 0x01])  # field 25: 1
    event, unknown = decode_noting_unknown_fields("trips", newer, [], ARRIVED_MS)
    assert isinstance(event, ev.Event)
    assert (event, unknown) == (decode("trips", known, [], ARRIVED_MS), ())


def test_an_unknown_enum_name_in_json_is_still_refused() -> None:
    """A new enum value is not a new field: an event with a value Podium cannot map would
    fold as something else, so it waits in the dead letters for a Podium that knows it."""
    challenge = json.loads(json_format.MessageToJson(_published_envelope()))
    challenge["challengePublished"]["theme"] = "CHALLENGE_THEME_BRAKING"
    outcome = decode("catalog", json.dumps(challenge).encode(), JSON, ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert "CHALLENGE_THEME_BRAKING" in outcome.reason


def _published_envelope() -> catalog_pb2.CatalogEvent:
    envelope = catalog_pb2.CatalogEvent(
        event_id="c",
        tenant_id="acme",
        challenge_published=catalog_pb2.ChallengePublished(
            challenge_id="c1", theme="CHALLENGE_THEME_SAFETY"
        ),
    )
    envelope.occurred_at.FromDatetime(ARRIVED)
    envelope.challenge_published.start_at.FromDatetime(ARRIVED)
    envelope.challenge_published.end_at.FromDatetime(ARRIVED + timedelta(days=7))
    return envelope


# --- JSON without its header ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", [b"", b" \n\t\r "], ids=["bare", "after-whitespace"])
def test_a_json_object_without_the_content_type_header_is_read_as_json(prefix: bytes) -> None:
    envelope = trip_envelope("t1", "alice")
    as_json = json_format.MessageToJson(envelope).encode()
    with_header = decode_noting_unknown_fields("trips", as_json, JSON, ARRIVED_MS)
    assert isinstance(with_header[0], ev.Event)
    for headers in ([], [("content-type", b"text/plain")], [("content-type", None)]):
        assert decode_noting_unknown_fields("trips", prefix + as_json, headers, ARRIVED_MS) == (
            with_header
        )
    newer = _json_with(envelope, {"tripCompleted.vehicleId": "v1"})
    assert decode_noting_unknown_fields("trips", newer, [], ARRIVED_MS) == (
        with_header[0],
        ("tripCompleted.vehicleId",),
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"\xff\xfe\x00", "the value is not a JSON object)"),
        (b'["a JSON array"]', "the value is not a JSON object)"),
        (b'{"eventId": "e1", ', "the value is not a JSON object: Failed to load JSON: Expecting"),
        (
            b'{"a": 1, "a": 2}',
            "the value is not a JSON object: Failed to load JSON: duplicate key a",
        ),
    ],
    ids=["garbage", "array", "cut-short", "key-twice"],
)
def test_a_value_neither_binary_nor_json_names_the_missing_header(value: bytes, why: str) -> None:
    outcome = decode("trips", value, [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert outcome.kind == "undecodable"
    assert outcome.reason.startswith(
        "undecodable TripEvent: not binary protobuf, and not JSON "
        "(no content-type: application/json header, and "
    )
    assert why in outcome.reason


def test_a_binary_envelope_that_starts_like_json_is_read_as_binary() -> None:
    """An event id of 123 bytes puts `{` (0x7b) right after the newline that is its tag."""
    envelope = trip_envelope("t1", "alice")
    envelope.event_id = '{"tripId": 1}' + "x" * 110
    value = envelope.SerializeToString()
    assert value.startswith(b"\n{")
    event = decode("trips", value, [], ARRIVED_MS)
    assert isinstance(event, ev.Event)
    assert event.meta.event_id == envelope.event_id


# --- Schema Registry framing ----------------------------------------------------------------

SCHEMA_ID = (7).to_bytes(4, "big")


@pytest.mark.parametrize("indexes", [b"\x00", b"\x02\x00"], ids=["shorthand", "explicit-list"])
def test_a_framed_binary_envelope_decodes_as_the_bare_one(indexes: bytes) -> None:
    bare = trip_envelope("t1", "alice").SerializeToString()
    framed = b"\x00" + SCHEMA_ID + indexes + bare
    assert decode("trips", framed, [], ARRIVED_MS) == decode("trips", bare, [], ARRIVED_MS)
    assert isinstance(decode("trips", framed, [], ARRIVED_MS), ev.Event)


@pytest.mark.parametrize("headers", [[], JSON], ids=["no-header", "json-header"])
def test_a_framed_json_document_decodes_as_the_bare_one(
    headers: list[tuple[str, bytes]],
) -> None:
    document = _json_with(trip_envelope("t1", "alice"), {"tripCompleted.vehicleId": "v1"})
    framed = decode_noting_unknown_fields("trips", b"\x00" + SCHEMA_ID + document, headers, 0)
    assert framed == decode_noting_unknown_fields("trips", document, JSON, 0)
    assert framed[1] == ("tripCompleted.vehicleId",)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00\x00\x07", "needs a 4-byte schema id: the value has 3 byte(s)"),
        (
            b"\x00" + SCHEMA_ID + b"\x02\x04",
            "(schema id 7): the message indexes [2] name another message than the topic's "
            "envelope TripEvent ([0] in podium/events/v1/trips.proto)",
        ),
        (
            b"\x00" + SCHEMA_ID + b"\x04\x00\x02",
            "the message indexes [0, 1] name another message",
        ),
        (b"\x00" + SCHEMA_ID + b"\x03", "a message-index list of -2 entries"),
        (b"\x00" + SCHEMA_ID + b"\x02", "the message-index list is cut short or broken"),
        (b"\x00" + SCHEMA_ID + b"\x00\xff\xff", "(schema id 7): not binary protobuf"),
    ],
    ids=["short", "another-message", "nested-message", "negative-count", "cut", "not-protobuf"],
)
def test_a_broken_frame_or_one_naming_another_message_is_refused(value: bytes, reason: str) -> None:
    outcome = decode("trips", value, [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert outcome.kind == "undecodable"
    assert outcome.reason.startswith("undecodable TripEvent: Schema Registry framing")
    assert reason in outcome.reason


def test_unspecified_enums_are_rejected() -> None:
    envelope = tasks_pb2.TaskEvent(
        event_id="e", tenant_id="t", task_created=tasks_pb2.TaskCreated(task_id="k", nb_items=3)
    )
    envelope.occurred_at.FromDatetime(ARRIVED)
    envelope.task_created.created_at.FromDatetime(ARRIVED)
    outcome = decode("tasks", envelope.SerializeToString(), [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert "type is unspecified" in outcome.reason


def test_a_step_score_above_100_is_rejected() -> None:
    envelope = enrollments_pb2.EnrollmentEvent(
        event_id="e",
        tenant_id="t",
        step_attempted=enrollments_pb2.StepAttempted(
            session_id="s", user_id="u", step_id="st", attempt_id="a", score=101
        ),
    )
    envelope.occurred_at.FromDatetime(ARRIVED)
    envelope.step_attempted.started_at.FromDatetime(ARRIVED)
    envelope.step_attempted.ended_at.FromDatetime(ARRIVED)
    outcome = decode("enrollments", envelope.SerializeToString(), [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert "score 101.0 is out of range [0, 100]" in outcome.reason


def test_missing_required_timestamps_are_rejected() -> None:
    envelope = trip_envelope("t1", "alice")
    envelope.trip_completed.ClearField("ended_at")
    outcome = decode("trips", envelope.SerializeToString(), [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "missing ended_at"


def test_a_binary_timestamp_out_of_protobufs_range_is_rejected_not_raised() -> None:
    envelope = trip_envelope("t1", "alice", ended_at=ARRIVED)
    envelope.trip_completed.ended_at.seconds = 2**40  # what a broken producer sends
    outcome = decode("trips", envelope.SerializeToString(), [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "ended_at is not a valid Timestamp (seconds 1099511627776, nanos 0)"
    assert (outcome.tenant_id, outcome.event_id) == ("acme", "trip-t1")


def test_a_duration_out_of_protobufs_range_is_rejected_not_raised() -> None:
    envelope = catalog_pb2.CatalogEvent(
        event_id="c",
        tenant_id="acme",
        challenge_published=catalog_pb2.ChallengePublished(
            challenge_id="c1", theme="CHALLENGE_THEME_SAFETY"
        ),
    )
    envelope.occurred_at.FromDatetime(ARRIVED)
    envelope.challenge_published.start_at.FromDatetime(ARRIVED)
    envelope.challenge_published.end_at.FromDatetime(ARRIVED + timedelta(days=7))
    envelope.challenge_published.pre_challenge_period.seconds = 2**62
    outcome = decode("catalog", envelope.SerializeToString(), [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert outcome.reason.startswith("pre_challenge_period is not a valid Duration")


@pytest.mark.parametrize("timestamp_ms", [-1, -(2**63), 7_258_118_400_000, 2**63 - 1])
def test_a_record_timestamp_outside_the_time_bounds_is_rejected(timestamp_ms: int) -> None:
    outcome = decode("trips", trip_envelope("t1", "alice").SerializeToString(), [], timestamp_ms)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == (
        f"record timestamp {timestamp_ms} ms is outside 1970-01-01..2200-01-01"
    )
    assert outcome.tenant_id == "acme"


def test_the_first_and_last_millisecond_of_the_time_bounds_are_arrival_times() -> None:
    value = trip_envelope("t1", "alice", ended_at=ARRIVED).SerializeToString()
    first = decode("trips", value, [], 0)
    last = decode("trips", value, [], 7_258_118_400_000 - 1)
    assert isinstance(first, ev.Event)
    assert isinstance(last, ev.Event)
    assert first.meta.arrived_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert last.meta.arrived_at == datetime(2199, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


def test_a_header_without_a_value_is_allowed() -> None:
    envelope = user_envelope("bob")
    headers = [("content-type", None), ("x-trace", None)]
    assert isinstance(
        decode("catalog", envelope.SerializeToString(), headers, ARRIVED_MS), ev.Event
    )
    as_json = json_format.MessageToJson(envelope).encode()
    assert isinstance(decode("catalog", as_json, [("x", None), *JSON], ARRIVED_MS), ev.Event)


def test_any_surprise_while_decoding_becomes_the_records_rejection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(message: object) -> ev.Payload:
        raise KeyError("a bug")

    monkeypatch.setitem(decode_module._PAYLOADS, "trip_completed", broken)
    outcome = decode("trips", trip_envelope("t1", "alice").SerializeToString(), [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "cannot decode the record: KeyError: 'a bug'"


# --- whatever decodes, the folds accept: one test per cause the bounds keep out -------------


def _catalog(**event: Any) -> bytes:
    envelope = catalog_pb2.CatalogEvent(event_id="c", tenant_id="acme", **event)
    envelope.occurred_at.FromDatetime(ARRIVED)
    return envelope.SerializeToString()


def _published(**fields: Any) -> bytes:
    published = catalog_pb2.ChallengePublished(
        challenge_id="c1", theme="CHALLENGE_THEME_SAFETY", **fields
    )
    if not published.HasField("start_at"):
        published.start_at.FromDatetime(ARRIVED)
    if not published.HasField("end_at"):
        published.end_at.FromDatetime(ARRIVED + timedelta(days=7))
    return _catalog(challenge_published=published)


def _rejected(family: str, value: bytes) -> str:
    outcome = decode(family, value, [], ARRIVED_MS)
    assert isinstance(outcome, Rejected), outcome
    return outcome.reason


@pytest.mark.parametrize("km", [math.inf, 1e300, math.nan, 10_000.5])
def test_a_trip_of_infinite_or_astronomical_distance_is_rejected_not_folded(km: float) -> None:
    """Found by the property test: metres = round(km * 1000) overflowed (inf) or did not fit
    the int64 columns (1e300)."""
    reason = _rejected("trips", _trip_with(distance_km=km))
    assert reason.startswith("distance_km")
    assert isinstance(decode("trips", _trip_with(distance_km=10_000.0), [], ARRIVED_MS), ev.Event)


def test_a_trip_ending_in_year_9999_is_rejected_not_folded() -> None:
    """Its month's freeze (the start of the next month) is past datetime's last year."""
    envelope = trip_envelope("t1", "alice", ended_at=datetime(9999, 12, 31, 23, tzinfo=UTC))
    envelope.occurred_at.FromDatetime(ARRIVED)
    envelope.trip_completed.started_at.FromDatetime(ARRIVED)
    reason = _rejected("trips", envelope.SerializeToString())
    assert reason == "ended_at 9999-12-31T23:00:00+00:00 is outside 1970-01-01..2200-01-01"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (_published(title="x" * 2_001), "title is longer than 2000 characters"),
        (_published(groups=[f"g{n}" for n in range(1_001)]), "1001 groups, more than 1000"),
        (_published(min_distance_km=math.inf), "min_distance_km is inf, not a finite number"),
        (_published(min_distance_km=1e300), "min_distance_km 1e+300 is out of range"),
        (_published(min_trips=-1), "min_trips -1 is negative"),
    ],
    ids=["long-title", "too-many-groups", "infinite-min-distance", "huge-min-distance", "neg"],
)
def test_a_challenge_outside_its_bounds_is_rejected(value: bytes, reason: str) -> None:
    assert _rejected("catalog", value).startswith(reason)


@pytest.mark.parametrize("days", [3_661, 200 * 365, -1])
def test_a_pre_challenge_period_beyond_ten_years_or_negative_is_rejected(days: int) -> None:
    """start_at - period left datetime's range for huge periods (timedelta overflow)."""
    published = catalog_pb2.ChallengePublished()
    published.pre_challenge_period.FromTimedelta(timedelta(days=days))
    reason = _rejected("catalog", _published(pre_challenge_period=published.pre_challenge_period))
    assert reason.startswith("pre_challenge_period")
    assert reason.endswith("is outside 0..3660 days")


@pytest.mark.parametrize("field", ["due_after_enrollment", "time_limit"])
def test_a_step_duration_beyond_ten_years_is_rejected(field: str) -> None:
    """enrolled_at + due_after_enrollment left datetime's range for huge delays."""
    step = catalog_pb2.Step(step_id="s1")
    getattr(step, field).FromTimedelta(timedelta(days=3_661))
    session = catalog_pb2.PathSessionPublished(session_id="p", path_id="path", steps=[step])
    reason = _rejected("catalog", _catalog(path_session_published=session))
    assert reason.startswith(f"steps[s1].{field} 3661 days")


def test_a_session_of_more_than_a_thousand_steps_is_rejected() -> None:
    steps = [catalog_pb2.Step(step_id=f"s{n}") for n in range(1_001)]
    session = catalog_pb2.PathSessionPublished(session_id="p", path_id="path", steps=steps)
    assert _rejected("catalog", _catalog(path_session_published=session)) == (
        "1001 steps, more than 1000"
    )


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("trip_id", "t" * 201, "trip_id is longer than 200 characters"),
        ("user_id", "a\x00b", "user_id contains a NUL character"),
        ("event_id", "e" * 201, "event_id is longer than 200 characters"),
        ("tenant_id", "t" * 181, "tenant_id is longer than 180 characters"),
        ("trip_id", "\U0001f600" * 151, "trip_id is longer than 600 bytes of UTF-8"),
    ],
    ids=["long-id", "nul", "long-event-id", "long-tenant", "wide-id"],
)
def test_an_id_beyond_its_bounds_is_rejected_not_folded(
    field: str, value: str, reason: str
) -> None:
    """Found by the property test on PostgreSQL: an id longer than its column failed the
    batch (it was cut silently before), and PostgreSQL text cannot hold NUL. A tenant id
    leaves room for the scope suffix of its state versions; four ids of a key must fit one
    index entry."""
    outcome = decode("trips", _trip_with(**{field: value}), [], ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == reason
    assert outcome.tenant_id == (None if field == "tenant_id" else "acme")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"email": "x" * 321}, "email is longer than 320 characters"),
        ({"email": "İ" * 161}, "email once lower-cased is longer than 320 characters"),
        ({"firstname": "x" * 201}, "firstname is longer than 200 characters"),
        ({"pseudo": "p\x00"}, "pseudo contains a NUL character"),
        ({"groups": ["g\x00"]}, "group label contains a NUL character"),
        ({"groups": [f"g{n}" for n in range(1_001)]}, "1001 groups, more than 1000"),
    ],
    ids=["email", "email-lowered", "name", "nul-name", "nul-group", "too-many-groups"],
)
def test_a_profile_beyond_its_bounds_is_rejected(changes: dict[str, Any], reason: str) -> None:
    envelope = user_envelope("bob")
    for name, value in changes.items():
        if name == "groups":
            envelope.user_upserted.groups.extend(value)
        else:
            setattr(envelope.user_upserted, name, value)
    assert _rejected("catalog", envelope.SerializeToString()) == reason


def test_an_email_at_its_bound_once_lower_cased_is_accepted() -> None:
    envelope = user_envelope("bob")
    envelope.user_upserted.email = "İ" * 160
    assert isinstance(decode("catalog", envelope.SerializeToString(), [], ARRIVED_MS), ev.Event)


@pytest.mark.parametrize(
    "moment",
    [datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)],
    ids=["before-1970", "from-2200"],
)
def test_every_time_an_event_carries_is_held_to_the_time_bounds(moment: datetime) -> None:
    occurred = trip_envelope("t1", "alice", ended_at=ARRIVED)
    occurred.occurred_at.FromDatetime(moment)
    registered = enrollments_pb2.EnrollmentEvent(
        event_id="e",
        tenant_id="acme",
        challenge_registered=enrollments_pb2.ChallengeRegistered(challenge_id="c", user_id="u"),
    )
    registered.occurred_at.FromDatetime(ARRIVED)
    registered.challenge_registered.registered_at.FromDatetime(moment)
    step = catalog_pb2.Step(step_id="s1")
    step.due_at.FromDatetime(moment)
    session = catalog_pb2.PathSessionPublished(session_id="p", path_id="path", steps=[step])
    stamp = f"{moment.isoformat()} is outside 1970-01-01..2200-01-01"
    assert _rejected("trips", occurred.SerializeToString()) == f"occurred_at {stamp}"
    assert _rejected("enrollments", registered.SerializeToString()) == f"registered_at {stamp}"
    assert _rejected("catalog", _catalog(path_session_published=session)) == (
        f"steps[s1].due_at {stamp}"
    )


def test_time_spent_beyond_ten_years_is_rejected() -> None:
    envelope = enrollments_pb2.EnrollmentEvent(
        event_id="e",
        tenant_id="t",
        step_attempted=enrollments_pb2.StepAttempted(
            session_id="s", user_id="u", step_id="st", attempt_id="a", time_spent_ms=2**63 - 1
        ),
    )
    envelope.occurred_at.FromDatetime(ARRIVED)
    envelope.step_attempted.started_at.FromDatetime(ARRIVED)
    envelope.step_attempted.ended_at.FromDatetime(ARRIVED)
    assert _rejected("enrollments", envelope.SerializeToString()).startswith(
        "time_spent_ms 9223372036854775807 is out of range"
    )


def test_a_task_failure_reason_beyond_its_bound_is_rejected() -> None:
    envelope = tasks_pb2.TaskEvent(
        event_id="e",
        tenant_id="t",
        task_failed=tasks_pb2.TaskFailed(task_id="k", reason="r" * 2_001),
    )
    envelope.occurred_at.FromDatetime(ARRIVED)
    envelope.task_failed.failed_at.FromDatetime(ARRIVED)
    assert _rejected("tasks", envelope.SerializeToString()) == (
        "reason is longer than 2000 characters"
    )


@pytest.mark.parametrize("name", ["bogus\\u0000", "bogus\\ud800"])
def test_a_json_field_named_with_nul_or_a_lone_surrogate_gives_a_storable_reason(
    name: str,
) -> None:
    outcome = decode("trips", f'{{"{name}": 1}}'.encode(), JSON, ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert "\x00" not in outcome.reason
    outcome.reason.encode("utf-8")  # no unpaired surrogate either


@pytest.mark.parametrize("theme", [v.number for v in common_pb2.ChallengeTheme.DESCRIPTOR.values])
def test_every_theme_decodes_to_its_domain_theme_and_unspecified_is_refused(theme: int) -> None:
    envelope = catalog_pb2.CatalogEvent(
        event_id="c",
        tenant_id="acme",
        challenge_published=catalog_pb2.ChallengePublished(challenge_id="c1"),
    )
    envelope.challenge_published.theme = theme  # type: ignore[assignment]
    envelope.occurred_at.FromDatetime(ARRIVED)
    envelope.challenge_published.start_at.FromDatetime(ARRIVED)
    envelope.challenge_published.end_at.FromDatetime(ARRIVED + timedelta(days=7))
    event = decode("catalog", envelope.SerializeToString(), [], ARRIVED_MS)
    name = common_pb2.ChallengeTheme.Name(theme).removeprefix("CHALLENGE_THEME_")
    if theme == common_pb2.CHALLENGE_THEME_UNSPECIFIED:
        assert isinstance(event, Rejected)
        assert "theme is unspecified" in event.reason
    else:
        assert isinstance(event, ev.Event)
        assert isinstance(event.payload, ev.ChallengePublished)
        assert event.payload.theme.name == name


def _an_envelope_of(family: str) -> Message:
    enrolled = enrollments_pb2.PathEnrolled(session_id="s", user_id="u")
    enrolled.enrolled_at.FromDatetime(ARRIVED)
    started = tasks_pb2.TaskStarted(task_id="k")
    started.started_at.FromDatetime(ARRIVED)
    return {
        "catalog": user_envelope("bob"),
        "trips": trip_envelope("t1", "alice"),
        "enrollments": enrollment_envelope(path_enrolled=enrolled),
        "tasks": task_envelope("k", task_started=started),
    }[family]


@pytest.mark.parametrize("family", sorted(ENVELOPES))
def test_what_confluents_protobuf_serializer_writes_for_each_envelope_is_read(family: str) -> None:
    """Its registry in memory: the serializer registers the schema and writes the frame, with
    the message-index list [0] for each envelope (the first message of its .proto file)."""
    envelope = _an_envelope_of(family)
    bare = decode(family, envelope.SerializeToString(), [], ARRIVED_MS)
    assert isinstance(bare, ev.Event)
    registry = SchemaRegistryClient.new_client({"url": "mock://podium-unit"})
    context = SerializationContext(f"podium.{family}", MessageField.VALUE)
    framed = ProtobufSerializer(type(envelope), registry)(envelope, context)
    assert framed[:1] + framed[5:6] == b"\x00\x00"  # the magic byte; the index list [0]
    assert decode(family, framed, [], ARRIVED_MS) == bare

    headers: list[tuple[str, str | bytes | None]] = []
    in_header = ProtobufSerializer(
        type(envelope), registry, conf={"schema.id.serializer": header_schema_id_serializer}
    )(envelope, SerializationContext(f"podium.{family}", MessageField.VALUE, headers))
    assert in_header == envelope.SerializeToString()  # the schema id in a header instead
    [(name, value)] = headers
    assert name == "__value_schema_id"
    assert isinstance(value, bytes)
    assert decode(family, in_header, [(name, value)], ARRIVED_MS) == bare


def test_each_trip_has_its_own_scores_however_often_the_same_are_sent() -> None:
    sent = [(8.0, None), (8.0, 7.5), (8.0, None), (0.0, None), (8.0, 7.5), (-0.0, 0.0)]
    for form in ("binary", "JSON"):
        for n, (safety, eco) in enumerate(sent * 2):
            envelope = trip_envelope(f"t{n}", "ann", safety=safety, ended_at=ARRIVED)
            if eco is not None:
                envelope.trip_completed.scores.eco_driving = eco
            value = envelope.SerializeToString()
            if form == "JSON":
                value = json_format.MessageToJson(envelope).encode()
            event = decode("trips", value, [], ARRIVED_MS)
            assert isinstance(event, ev.Event)
            assert isinstance(event.payload, ev.TripCompleted)
            scores = event.payload.scores
            assert (scores.safety, scores.eco_driving) == (safety, eco), (form, n)
            assert scores.safety is not None
            assert math.copysign(1, scores.safety) == math.copysign(1, safety)  # -0.0 too


def test_what_is_remembered_is_forgotten_all_at_once_beyond_its_size() -> None:
    remembered: Remembered[int, str] = Remembered(2)
    assert remembered.keep(1, "a") == "a"
    remembered.keep(2, "b")
    assert (remembered.get(1), remembered.get(2)) == ("a", "b")
    remembered.keep(3, "c")
    assert (remembered.get(1), remembered.get(2), remembered.get(3)) == (None, None, "c")


_SECONDS = st.sampled_from([0, 1, 1_795_000_000, 1_795_000_001])
_NANOS = st.sampled_from([0, 1_000, 999_999_999])


@settings(max_examples=profiles.examples(200), deadline=None)
@given(st.lists(st.tuples(*(st.tuples(_SECONDS, _NANOS),) * 3), min_size=1, max_size=12))
def test_a_binary_trips_times_are_its_own_whatever_was_read_before(
    times: list[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]],
) -> None:
    # Decoding remembers the Timestamps it read last (a trip's end is often when it occurred):
    # each trip of a run still gets its own, the epoch's (0, 0) among them.
    for occurred, started, ended in times:
        started, ended = sorted((started, ended))
        envelope = trip_envelope("t", "u")
        stamps = (
            envelope.occurred_at,
            envelope.trip_completed.started_at,
            envelope.trip_completed.ended_at,
        )
        for stamp, (seconds, nanos) in zip(stamps, (occurred, started, ended), strict=True):
            stamp.seconds, stamp.nanos = seconds, nanos
        event = decode("trips", envelope.SerializeToString(), [], ARRIVED_MS)
        assert isinstance(event, ev.Event)
        assert isinstance(event.payload, ev.TripCompleted)
        assert (event.meta.occurred_at, event.payload.started_at, event.payload.ended_at) == tuple(
            s.ToDatetime(UTC) for s in stamps
        )


def test_an_absent_time_is_missing_even_right_after_the_epoch_was_read() -> None:
    at_epoch = trip_envelope("t", "u")
    at_epoch.occurred_at.seconds = at_epoch.occurred_at.nanos = 0
    at_epoch.trip_completed.started_at.seconds = at_epoch.trip_completed.started_at.nanos = 0
    decoded = decode("trips", at_epoch.SerializeToString(), [], ARRIVED_MS)
    assert isinstance(decoded, ev.Event)
    assert decoded.meta.occurred_at == datetime(1970, 1, 1, tzinfo=UTC)
    no_start = trip_envelope("t", "u")
    no_start.trip_completed.ClearField("started_at")
    assert decode("trips", no_start.SerializeToString(), [], ARRIVED_MS) == Rejected(
        "missing started_at", "acme", "trip-t", kind="undecodable"
    )
