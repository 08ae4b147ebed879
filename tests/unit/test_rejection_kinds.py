"""Each case docs/rules.md#validation-and-dead-letters lists is dead-lettered with the kind it
lists it under (the `reason` label of `podium_events_dead_lettered_total`): a record that
cannot be decoded into an event is `undecodable`, an event that breaks a rule `invalid`."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import json_format
from podium.events.v1 import catalog_pb2, enrollments_pb2, tasks_pb2

from consumers.decode import decode
from service.app.records import Rejected
from tests.builders import trip_envelope

ARRIVED = datetime(2026, 11, 20, tzinfo=UTC)
ARRIVED_MS = int(ARRIVED.timestamp() * 1000)
JSON = [("content-type", b"application/json")]

Case = tuple[str, bytes, list[tuple[str, bytes]], int]
"""(topic family, value, headers, record timestamp in ms)"""


def _trip(change: Callable[[Any], object] = lambda _: None) -> Any:
    envelope = trip_envelope("t1", "ann", ended_at=ARRIVED)
    change(envelope)
    return envelope


def _binary(envelope: Any, family: str = "trips", timestamp_ms: int = ARRIVED_MS) -> Case:
    return (family, envelope.SerializeToString(), [], timestamp_ms)


def _json(envelope: Any, family: str = "trips") -> Case:
    return (family, json_format.MessageToJson(envelope).encode(), JSON, ARRIVED_MS)


def _challenge(**fields: Any) -> Any:
    published = catalog_pb2.ChallengePublished(
        challenge_id="c1", **{"theme": "CHALLENGE_THEME_SAFETY", **fields}
    )
    published.start_at.FromDatetime(ARRIVED)
    published.end_at.FromDatetime(ARRIVED + timedelta(days=7))
    envelope = catalog_pb2.CatalogEvent(
        event_id="c", tenant_id="acme", challenge_published=published
    )
    envelope.occurred_at.FromDatetime(ARRIVED)
    return envelope


def _task_created(**fields: Any) -> Any:
    created = tasks_pb2.TaskCreated(task_id="k1", nb_items=3, **fields)
    envelope = tasks_pb2.TaskEvent(event_id="k", tenant_id="acme", task_created=created)
    envelope.occurred_at.FromDatetime(ARRIVED)
    return envelope


def _with_duration_out_of_range() -> Any:
    envelope = _challenge()
    envelope.challenge_published.pre_challenge_period.seconds = 2**62
    return envelope


def _with_time_out_of_range(envelope: Any) -> None:
    envelope.trip_completed.ended_at.seconds = 2**40


def _newer_oneof() -> bytes:
    envelope = _trip(lambda e: e.ClearField("trip_completed"))
    value: bytes = envelope.SerializeToString()
    return value + bytes([0xAA, 0x06, 0x00])  # field 101, an empty message


UNDECODABLE: dict[str, Case] = {
    "not an envelope": ("trips", b"\xff\xff not protobuf", [], ARRIVED_MS),
    "not a JSON envelope": ("trips", b'{"eventId": "e", "bogus": 1}', JSON, ARRIVED_MS),
    "not one of the four topics": ("scores", _trip().SerializeToString(), [], ARRIVED_MS),
    "record timestamp before 1970 (no timestamp)": _binary(_trip(), timestamp_ms=-1),
    "record timestamp from 2200": _binary(_trip(), timestamp_ms=7_258_118_400_000),
    "missing event_id": _binary(_trip(lambda e: setattr(e, "event_id", ""))),
    "missing tenant_id": _binary(_trip(lambda e: setattr(e, "tenant_id", ""))),
    "missing occurred_at": _binary(_trip(lambda e: e.ClearField("occurred_at"))),
    "missing occurred_at, in JSON": _json(_trip(lambda e: e.ClearField("occurred_at"))),
    "no event in the oneof": _binary(_trip(lambda e: e.ClearField("trip_completed"))),
    "an event of a newer producer": ("trips", _newer_oneof(), [], ARRIVED_MS),
    "missing ended_at": _binary(_trip(lambda e: e.trip_completed.ClearField("ended_at"))),
    "missing ended_at, in JSON": _json(_trip(lambda e: e.trip_completed.ClearField("ended_at"))),
    "missing created_at": _binary(_task_created(type="TASK_TYPE_PUSH_FAILED_TRIPS"), "tasks"),
    "a Timestamp outside protobuf's": _binary(_trip(_with_time_out_of_range)),
    "a Duration outside protobuf's": _binary(_with_duration_out_of_range(), "catalog"),
    "an unspecified task type": _binary(_task_created(created_at=_trip().occurred_at), "tasks"),
    "an unknown theme": _binary(_challenge(theme=99), "catalog"),
    "a NaN min_distance_km": _binary(_challenge(min_distance_km=math.nan), "catalog"),
    "an infinite min_distance_km": _binary(_challenge(min_distance_km=math.inf), "catalog"),
}


def _attempt(**fields: Any) -> Any:
    attempted = enrollments_pb2.StepAttempted(
        session_id="s", user_id="u", step_id="st", attempt_id="a", **fields
    )
    attempted.started_at.FromDatetime(ARRIVED)
    attempted.ended_at.FromDatetime(ARRIVED)
    envelope = enrollments_pb2.EnrollmentEvent(
        event_id="e", tenant_id="acme", step_attempted=attempted
    )
    envelope.occurred_at.FromDatetime(ARRIVED)
    return envelope


def _ending_at_its_start() -> Any:
    envelope = _challenge()
    envelope.challenge_published.end_at.FromDatetime(ARRIVED)
    return envelope


INVALID: dict[str, Case] = {
    "an empty user_id": _binary(_trip(lambda e: setattr(e.trip_completed, "user_id", ""))),
    "a NaN distance_km": _binary(
        _trip(lambda e: setattr(e.trip_completed, "distance_km", math.nan))
    ),
    "a negative distance_km": _binary(
        _trip(lambda e: setattr(e.trip_completed, "distance_km", -1.0))
    ),
    "a score outside [0, 10]": _binary(
        _trip(lambda e: setattr(e.trip_completed.scores, "safety", 10.5))
    ),
    "a min_distance_km beyond its bound": _binary(_challenge(min_distance_km=1e300), "catalog"),
    "a challenge ending when it starts": _binary(_ending_at_its_start(), "catalog"),
    "an attempt's score outside [0, 100]": _binary(_attempt(score=101), "enrollments"),
}


def _kind(case: Case) -> str:
    family, value, headers, timestamp_ms = case
    outcome = decode(family, value, headers, timestamp_ms)
    assert isinstance(outcome, Rejected), outcome
    return outcome.kind


@pytest.mark.parametrize("case", UNDECODABLE.values(), ids=UNDECODABLE.keys())
def test_a_record_that_cannot_be_decoded_into_an_event_is_undecodable(case: Case) -> None:
    assert _kind(case) == "undecodable"


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
def test_an_event_that_breaks_a_rule_is_invalid(case: Case) -> None:
    assert _kind(case) == "invalid"
