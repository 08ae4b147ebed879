"""What `podium produce` and `podium demo` send: the topic by the event, the key
docs/rules.md#events names, the value and header of the encoding, and nothing the consumer
would refuse."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from consumers.decode import decode
from consumers.publish import (
    JSON_HEADERS,
    from_envelope,
    from_json_line,
    from_json_lines,
)
from service.app.records import Rejected, Stamp
from tests.builders import task_envelope, trip_envelope, user_envelope

NOW_MS = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp() * 1000)


def line(event: str, payload: dict[str, object], tenant: str = "acme") -> str:
    envelope = {"eventId": f"e-{event}", "tenantId": tenant, "occurredAt": "2026-11-20T08:00:00Z"}
    return json.dumps({**envelope, event: payload})


@pytest.mark.parametrize(
    ("event", "payload", "family", "key"),
    [
        ("userUpserted", {"userId": "ann"}, "catalog", "ann"),
        ("trip_deleted", {"tripId": "t1", "userId": "ann"}, "trips", "ann"),
        ("taskStarted", {"taskId": "k7", "startedAt": "2026-11-20T08:00:00Z"}, "tasks", "k7"),
        ("pushServicePaused", {"type": "TASK_TYPE_PUSH_FAILED_TRIPS"}, "tasks", "acme"),
        (
            "pathEnrolled",
            {"sessionId": "s1", "userId": "bob", "enrolledAt": "2026-11-20T08:00:00Z"},
            "enrollments",
            "bob",
        ),
    ],
)
def test_a_line_goes_to_the_topic_of_its_event_keyed_as_the_spec_says(
    event: str, payload: dict[str, object], family: str, key: str
) -> None:
    text = line(event, payload)
    outgoing = from_json_line(text, NOW_MS)
    assert not isinstance(outgoing, Rejected), outgoing
    assert (outgoing.family, outgoing.key) == (family, key.encode())
    assert (outgoing.value, outgoing.headers) == (text.encode(), JSON_HEADERS)
    assert outgoing.timestamp_ms is None  # the producer client stamps it as it sends


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"eventId": "e", "tenantId": "acme"}', "exactly one event"),
        (
            line("userUpserted", {"userId": "a"})[:-1] + ', "tripDeleted": {}}',
            "found userUpserted, tripDeleted",
        ),
        (line("userUpserted", {"userId": "a"}, tenant=""), "missing tenant_id"),
        (
            line(
                "tripCompleted",
                {
                    "tripId": "t",
                    "userId": "a",
                    "startedAt": "2026-11-20T08:00:00Z",
                    "endedAt": "2026-11-20T07:00:00Z",
                },
            ),
            "ended_at",
        ),
    ],
)
def test_a_line_the_consumer_would_refuse_is_refused_with_the_consumers_reason(
    text: str, reason: str
) -> None:
    refused = from_json_line(text, NOW_MS)
    assert isinstance(refused, Rejected)
    assert reason in refused.reason


def test_refused_lines_are_numbered_from_one_counting_blank_lines_and_the_rest_kept() -> None:
    good = line("userUpserted", {"userId": "ann"})
    records, refused = from_json_lines([good, "", "oops", "  ", good], NOW_MS)
    assert [r.key for r in records] == [b"ann", b"ann"]
    assert [number for number, _ in refused] == [3]


def test_a_backfilled_line_is_stamped_with_its_occurred_at_to_the_millisecond() -> None:
    text = line("userUpserted", {"userId": "ann"}).replace(
        "2026-11-20T08:00:00Z", "2026-10-03T07:15:42.123987Z"
    )
    outgoing = from_json_line(text, NOW_MS, Stamp.OCCURRED_AT)
    assert not isinstance(outgoing, Rejected), outgoing
    occurred = datetime(2026, 10, 3, 7, 15, 42, 123000, tzinfo=UTC)
    assert outgoing.timestamp_ms == int(occurred.timestamp() * 1000)
    decoded = decode("catalog", outgoing.value, outgoing.headers, outgoing.timestamp_ms)
    assert not isinstance(decoded, Rejected)
    assert decoded.meta.arrived_at == occurred


@pytest.mark.parametrize("as_json", [False, True])
def test_an_envelope_built_in_code_is_sent_as_the_consumer_reads_it(as_json: bool) -> None:
    for envelope, family, key in (
        (user_envelope("ann", "north"), "catalog", b"ann"),
        (trip_envelope("t1", "ann"), "trips", b"ann"),
        (task_envelope("k1", push_service_paused={"type": 1}), "tasks", b"acme"),
    ):
        outgoing = from_envelope(envelope, NOW_MS, as_json=as_json)
        assert (outgoing.family, outgoing.key, outgoing.timestamp_ms) == (family, key, NOW_MS)
        assert outgoing.headers == (JSON_HEADERS if as_json else ())
        decoded = decode(family, outgoing.value, outgoing.headers, NOW_MS)
        assert not isinstance(decoded, Rejected)
        assert decoded.meta.event_id == envelope.event_id  # type: ignore[attr-defined]


def test_an_envelope_the_consumer_would_refuse_is_a_bug_where_it_was_built() -> None:
    broken = trip_envelope("t1", "ann", safety=8.0)
    broken.trip_completed.scores.safety = 42.0
    with pytest.raises(ValueError, match=r"scores\.safety 42\.0 is out of range"):
        from_envelope(broken, NOW_MS)
