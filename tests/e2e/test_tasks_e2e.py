"""Task events produced to the broker, status read through GetTask."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import timestamp_pb2
from podium.events.v1 import tasks_pb2 as events
from podium.v1 import common_pb2, tasks_pb2, tasks_pb2_grpc

from tests.builders import produce, task_envelope
from tests.e2e.conftest import Running, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp


async def test_a_task_reports_its_progress_then_its_completion(running: Running) -> None:
    stub = tasks_pb2_grpc.TaskServiceStub(running.channel)
    topic, key, tenant = running.settings.topic("tasks"), b"k1", running.tenant
    await produce(
        running.servers,
        topic,
        [
            (
                key,
                task_envelope(
                    "k1",
                    tenant,
                    task_created=events.TaskCreated(
                        task_id="k1",
                        type="TASK_TYPE_PUSH_FAILED_TRIPS",
                        nb_items=321,
                        created_at=_now(),
                    ),
                ),
            ),
            (
                key,
                task_envelope(
                    "k1", tenant, task_started=events.TaskStarted(task_id="k1", started_at=_now())
                ),
            ),
            (
                key,
                task_envelope(
                    "k1",
                    tenant,
                    task_progressed=events.TaskProgressed(task_id="k1", nb_remaining_items=12),
                ),
            ),
        ],
    )

    async def status() -> tasks_pb2.GetTaskResponse:
        return await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="k1"), metadata=running.auth)

    running_task = await eventually(status, lambda t: t.nbRemainingItems == 12)
    assert running_task.status == common_pb2.TASK_STATUS_IN_PROGRESS
    assert (running_task.taskId, running_task.nbItems) == ("k1", 321)
    assert running_task.type == common_pb2.TASK_TYPE_PUSH_FAILED_TRIPS
    assert not running_task.HasField("completedAt")

    await produce(
        running.servers,
        topic,
        [
            (
                key,
                task_envelope(
                    "k1",
                    tenant,
                    task_completed=events.TaskCompleted(task_id="k1", completed_at=_now()),
                ),
            ),
        ],
    )
    done = await eventually(status, lambda t: t.status == common_pb2.TASK_STATUS_COMPLETED)
    assert done.nbRemainingItems == 0
    assert done.HasField("completedAt")


async def test_an_unknown_task_is_not_found(running: Running) -> None:
    stub = tasks_pb2_grpc.TaskServiceStub(running.channel)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="nope"), metadata=running.auth)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert "task_not_found" in str(missing.value.trailing_metadata())
