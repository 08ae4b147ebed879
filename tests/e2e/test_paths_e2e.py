"""Path sessions through the broker, a learner's stats through GetPathSessionStats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from podium.events.v1 import enrollments_pb2 as events
from podium.v1 import paths_pb2, paths_pb2_grpc

from tests.builders import catalog_session_envelope, enrollment_envelope, produce, user_envelope
from tests.e2e.conftest import Running
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def at(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def test_a_learners_stats_through_kafka_and_grpc(running: Running) -> None:
    now = datetime.now(UTC)
    tenant, topic = running.tenant, running.settings.topic
    await produce(
        running.servers,
        topic("catalog"),
        [
            (b"ann", user_envelope("ann", tenant=tenant)),
            (
                b"p1",
                catalog_session_envelope(
                    "p1",
                    tenant=tenant,
                    starts_at=now - timedelta(days=3),
                    ends_at=now + timedelta(days=3),
                    steps=[
                        {"step_id": "intro", "mandatory": True},
                        {"step_id": "quiz", "mandatory": True, "min_score": 70, "max_attempts": 3},
                    ],
                ),
            ),
        ],
    )
    await produce(
        running.servers,
        topic("enrollments"),
        [
            (
                b"ann",
                enrollment_envelope(
                    tenant,
                    path_enrolled=events.PathEnrolled(
                        session_id="p1", user_id="ann", enrolled_at=at(now - timedelta(days=2))
                    ),
                ),
            ),
            (
                b"ann",
                enrollment_envelope(
                    tenant,
                    step_attempted=events.StepAttempted(
                        session_id="p1",
                        user_id="ann",
                        step_id="intro",
                        attempt_id="a1",
                        started_at=at(now - timedelta(hours=3)),
                        ended_at=at(now - timedelta(hours=2)),
                        time_spent_ms=600_000,
                    ),
                ),
            ),
            (
                b"ann",
                enrollment_envelope(
                    tenant,
                    step_attempted=events.StepAttempted(
                        session_id="p1",
                        user_id="ann",
                        step_id="quiz",
                        attempt_id="a2",
                        started_at=at(now - timedelta(hours=1)),
                        ended_at=at(now - timedelta(minutes=50)),
                        time_spent_ms=300_000,
                        score=55,
                    ),
                ),
            ),
        ],
        as_json=True,
    )
    stub = paths_pb2_grpc.PathServiceStub(running.channel)

    async def learner() -> paths_pb2.GetPathSessionStatsResponse:
        request = paths_pb2.GetPathSessionStatsRequest(session_id="p1", user_email_or_id="ann")
        return await stub.GetPathSessionStats(request, metadata=running.auth)

    answer = await eventually(learner, lambda s: s.globalTime == 900_000)
    assert (answer.progress, answer.score) == (100, 55)
    assert answer.status == paths_pb2.PATH_STATUS_COMPLETED
    assert answer.result == paths_pb2.PATH_RESULT_RETAKE
    assert answer.detailedStatus.type == paths_pb2.DETAILED_STATUS_TYPE_TO_RETAKE
    assert not answer.HasField("completedAt")
    assert not answer.HasField("archivedAt")

    by_email = await stub.GetPathSessionStats(
        paths_pb2.GetPathSessionStatsRequest(session_id="p1", user_email_or_id="ANN@example.com"),
        metadata=running.auth,
    )
    assert by_email == answer

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetPathSessionStats(
            paths_pb2.GetPathSessionStatsRequest(session_id="nope", user_email_or_id="nobody"),
            metadata=running.auth,
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "path_session_not_found" in str(missing.value.trailing_metadata())


async def test_the_paths_scope_is_required(running: Running) -> None:
    ranking_only = running.for_new_tenant("ranking")
    stub = paths_pb2_grpc.PathServiceStub(running.channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetPathSessionStats(
            paths_pb2.GetPathSessionStatsRequest(session_id="p1", user_email_or_id="ann"),
            metadata=ranking_only.auth,
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "paths_feature_disabled" in str(refused.value.trailing_metadata())


async def test_success_and_failure_read_alike_and_the_score_is_exact(running: Running) -> None:
    """docs/rules.md#path-session-stats: no step is mandatory, so every step counts for
    success and failure alike; the learner did every step and ran out of attempts on one.
    Best scores 60.3, 68.1 and 68.1 have the mean 65.5 exactly: 66."""
    now, tenant, topic = datetime.now(UTC), running.tenant, running.settings.topic
    steps: list[dict[str, Any]] = [
        {"step_id": "s1", "min_score": 80, "max_attempts": 1},
        {"step_id": "s2"},
        {"step_id": "s3"},
    ]
    session = catalog_session_envelope(
        "p2",
        tenant=tenant,
        starts_at=now - timedelta(days=3),
        ends_at=now + timedelta(days=3),
        steps=steps,
    )
    await produce(running.servers, topic("catalog"), [(b"p2", session)])
    enrolled = events.PathEnrolled(
        session_id="p2", user_id="kim", enrolled_at=at(now - timedelta(days=2))
    )
    attempts = [
        events.StepAttempted(
            session_id="p2",
            user_id="kim",
            step_id=step,
            attempt_id=f"a-{step}",
            started_at=at(now - timedelta(hours=2)),
            ended_at=at(now - timedelta(hours=1)),
            time_spent_ms=1_000,
            score=score,
        )
        for step, score in (("s1", 60.3), ("s2", 68.1), ("s3", 68.1))
    ]
    await produce(
        running.servers,
        topic("enrollments"),
        [(b"kim", enrollment_envelope(tenant, path_enrolled=enrolled))]
        + [(b"kim", enrollment_envelope(tenant, step_attempted=a)) for a in attempts],
    )
    stub = paths_pb2_grpc.PathServiceStub(running.channel)

    async def learner() -> paths_pb2.GetPathSessionStatsResponse:
        request = paths_pb2.GetPathSessionStatsRequest(session_id="p2", user_email_or_id="kim")
        return await stub.GetPathSessionStats(request, metadata=running.auth)

    answer = await eventually(learner, lambda s: s.globalTime == 3_000)
    assert (answer.progress, answer.score) == (100, 66)
    assert (answer.status, answer.result, answer.detailedStatus.type) == (
        paths_pb2.PATH_STATUS_COMPLETED,
        paths_pb2.PATH_RESULT_UNSUCCESSFUL,
        paths_pb2.DETAILED_STATUS_TYPE_UNSUCCESSFUL,
    )
