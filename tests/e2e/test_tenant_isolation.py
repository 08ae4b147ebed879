"""Tenant isolation, proven on every method: another tenant's existing ids answer byte for
byte like ids that exist nowhere (status code, message and details, compared serialized)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from podium.events.v1 import enrollments_pb2 as enrollments
from podium.events.v1 import tasks_pb2 as task_events
from podium.v1 import challenges_pb2, driver_ranking_pb2, paths_pb2, tasks_pb2

from tests.builders import (
    catalog_session_envelope,
    challenge_envelope,
    enrollment_envelope,
    produce,
    registration_envelope,
    task_envelope,
    trip_envelope,
    user_envelope,
)
from tests.e2e.conftest import Running
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

Answer = tuple[str, str | None, bytes | None, bytes | None]
"""(code, message, google.rpc.Status details serialized, response serialized)"""


async def ask(running: Running, method: str, request: Message) -> Answer:
    call: Any = running.channel.unary_unary(method)
    try:
        response = await call(request.SerializeToString(), metadata=running.auth)
    except grpc.aio.AioRpcError as error:
        trailers = dict(error.trailing_metadata() or ())
        details = trailers.get("grpc-status-details-bin")
        return error.code().name, error.details(), bytes(details) if details else None, None
    return "OK", None, None, bytes(response)


def requests(ids: dict[str, str]) -> list[tuple[str, Message]]:
    """Every method, naming tenant A's ids."""
    ranking = "/podium.v1.DriverRankingService/GetDriverRanking"
    challenges = "/podium.v1.ChallengeService/"
    safety = "RANKING_TYPE_SAFETY"
    return [
        (ranking, driver_ranking_pb2.GetDriverRankingRequest(type=safety)),
        (ranking, driver_ranking_pb2.GetDriverRankingRequest(type=safety, group_label=ids["g"])),
        (
            challenges + "GetChallengeRanking",
            challenges_pb2.GetChallengeRankingRequest(challenge_id=ids["c"]),
        ),
        (
            challenges + "GetChallengeRanking",
            challenges_pb2.GetChallengeRankingRequest(challenge_id=ids["c"], group=ids["g"]),
        ),
        (
            challenges + "GetChallengeProgress",
            challenges_pb2.GetChallengeProgressRequest(challenge_id=ids["c"]),
        ),
        (
            challenges + "GetChallengeProgress",
            challenges_pb2.GetChallengeProgressRequest(challenge_id=ids["c"], group=ids["g"]),
        ),
        ("/podium.v1.TaskService/GetTask", tasks_pb2.GetTaskRequest(task_id=ids["t"])),
        *(
            (
                "/podium.v1.PathService/GetPathSessionStats",
                paths_pb2.GetPathSessionStatsRequest(session_id=ids["s"], user_email_or_id=user),
            )
            for user in (ids["u"], f"{ids['u']}@example.com")
        ),
    ]


async def seed(a: Running, ids: dict[str, str]) -> None:
    now = datetime.now(UTC)
    start, end = now - timedelta(days=10), now - timedelta(days=1)
    user, topic = ids["u"], a.settings.topic
    at = now - timedelta(hours=1)
    await produce(
        a.servers,
        topic("catalog"),
        [
            (user.encode(), user_envelope(user, ids["g"], tenant=a.tenant)),
            (
                ids["c"].encode(),
                challenge_envelope(
                    ids["c"], start=start, end=end, groups=[ids["g"]], tenant=a.tenant
                ),
            ),
            (
                ids["s"].encode(),
                catalog_session_envelope(
                    ids["s"],
                    tenant=a.tenant,
                    starts_at=start,
                    ends_at=now + timedelta(days=10),
                    steps=[{"step_id": "intro", "mandatory": True}],
                ),
            ),
        ],
    )
    enrolled = enrollments.PathEnrolled(session_id=ids["s"], user_id=user)
    enrolled.enrolled_at.FromDatetime(at)
    await produce(
        a.servers,
        topic("enrollments"),
        [
            (
                user.encode(),
                registration_envelope(ids["c"], user, registered_at=start, tenant=a.tenant),
            ),
            (user.encode(), enrollment_envelope(a.tenant, path_enrolled=enrolled)),
        ],
    )
    await produce(
        a.servers,
        topic("trips"),
        [
            (
                user.encode(),
                trip_envelope(
                    f"{user}-{i}", user, ended_at=end - timedelta(days=1 + i), tenant=a.tenant
                ),
            )
            for i in range(5)
        ],
    )
    created = task_events.TaskCreated(
        task_id=ids["t"], type="TASK_TYPE_PUSH_FAILED_TRIPS", nb_items=3
    )
    created.created_at.FromDatetime(at)
    await produce(
        a.servers,
        topic("tasks"),
        [(ids["t"].encode(), task_envelope(ids["t"], a.tenant, task_created=created))],
    )


async def test_another_tenants_ids_answer_like_ids_that_exist_nowhere(running: Running) -> None:
    a, b = running, running.for_new_tenant()
    run = uuid.uuid4().hex[:8]
    ids = {k: f"{k}-{run}" for k in ("g", "c", "t", "s", "u")}
    calls = requests(ids)
    nowhere = [await ask(b, method, request) for method, request in calls]

    await seed(a, ids)

    async def seen_by_a() -> list[Answer]:
        return [await ask(a, method, request) for method, request in calls]

    answers_of_a = await eventually(
        seen_by_a, lambda answers: all(code == "OK" for code, *_ in answers)
    )
    assert all(code == "OK" for code, *_ in answers_of_a)
    elsewhere = [await ask(b, method, request) for method, request in calls]

    assert elsewhere == nowhere
    assert [code for code, *_ in nowhere] == [
        "OK",
        "INVALID_ARGUMENT",
        *["NOT_FOUND"] * 7,
    ]
