"""Path sessions through the broker, a learner's stats through GetPathSessionStats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2
from podium.events.v1 import enrollments_pb2 as events
from podium.v1 import paths_pb2, paths_pb2_grpc

from tests.builders import catalog_session_envelope, enrollment_envelope, produce, user_envelope
from tests.e2e.conftest import Running, eventually

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
