"""Decoding records into events, or into the reason they are dead-lettered
(docs/rules.md#validation-and-dead-letters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import json_format

import consumers.decode as decode_module
from consumers.decode import decode
from service.app.records import Rejected
from service.domain import events as ev
from service.gen.podium.events.v1 import catalog_pb2, enrollments_pb2, tasks_pb2, trips_pb2
from tests.builders import trip_envelope, user_envelope

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
        elif name in ("user_id", "event_id", "tenant_id"):
            setattr(target if name == "user_id" else envelope, name, value)
    return envelope.SerializeToString()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xff not protobuf", "undecodable TripEvent"),
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


def test_json_with_an_unknown_field_is_rejected() -> None:
    outcome = decode("trips", b'{"eventId": "e", "tenantId": "t", "bogus": 1}', JSON, ARRIVED_MS)
    assert isinstance(outcome, Rejected)
    assert "undecodable" in outcome.reason


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
