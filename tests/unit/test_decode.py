from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import json_format

from consumers.decode import decode
from service.app.records import Rejected
from service.domain import events as ev
from service.gen.podium.events.v1 import catalog_pb2, enrollments_pb2, tasks_pb2, trips_pb2
from tests.builders import trip_envelope, user_envelope

ARRIVED = datetime(2026, 11, 20, tzinfo=UTC)
JSON = [("content-type", b"application/json")]


def test_a_binary_trip_envelope_decodes_to_the_domain_event() -> None:
    envelope = trip_envelope("t1", "alice", km=12.5, safety=7.5)
    event = decode("trips", envelope.SerializeToString(), [], ARRIVED)
    assert isinstance(event, ev.Event)
    assert event.meta == ev.Meta("acme", "trip-t1", event.meta.occurred_at, ARRIVED)
    assert isinstance(event.payload, ev.TripCompleted)
    assert (event.payload.distance_km, event.payload.scores.safety) == (12.5, 7.5)
    assert event.payload.scores.eco_driving is None


def test_the_json_form_decodes_the_same_with_its_content_type_header() -> None:
    envelope = user_envelope("bob", "north", "south")
    binary = decode("catalog", envelope.SerializeToString(), [], ARRIVED)
    as_json = decode("catalog", json_format.MessageToJson(envelope).encode(), JSON, ARRIVED)
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
    event = decode("catalog", envelope.SerializeToString(), [], ARRIVED)
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
    outcome = decode("trips", value, [], ARRIVED)
    assert isinstance(outcome, Rejected)
    assert reason in outcome.reason


def test_an_unknown_oneof_from_a_newer_producer_is_rejected_not_dropped() -> None:
    newer = trips_pb2.TripEvent(event_id="e1", tenant_id="acme")
    newer.occurred_at.FromDatetime(ARRIVED)
    raw = newer.SerializeToString() + bytes([0xAA, 0x06, 0x00])  # field 101, empty message
    outcome = decode("trips", raw, [], ARRIVED)
    assert isinstance(outcome, Rejected)
    assert (outcome.tenant_id, outcome.event_id) == ("acme", "e1")


def test_json_with_an_unknown_field_is_rejected() -> None:
    outcome = decode("trips", b'{"eventId": "e", "tenantId": "t", "bogus": 1}', JSON, ARRIVED)
    assert isinstance(outcome, Rejected)
    assert "undecodable" in outcome.reason


def test_unspecified_enums_are_rejected() -> None:
    envelope = tasks_pb2.TaskEvent(
        event_id="e", tenant_id="t", task_created=tasks_pb2.TaskCreated(task_id="k", nb_items=3)
    )
    envelope.occurred_at.FromDatetime(ARRIVED)
    envelope.task_created.created_at.FromDatetime(ARRIVED)
    outcome = decode("tasks", envelope.SerializeToString(), [], ARRIVED)
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
    outcome = decode("enrollments", envelope.SerializeToString(), [], ARRIVED)
    assert isinstance(outcome, Rejected)
    assert "score 101.0 is out of range [0, 100]" in outcome.reason


def test_missing_required_timestamps_are_rejected() -> None:
    envelope = trip_envelope("t1", "alice")
    envelope.trip_completed.ClearField("ended_at")
    outcome = decode("trips", envelope.SerializeToString(), [], ARRIVED)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "missing ended_at"
