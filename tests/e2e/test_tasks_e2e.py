"""Task events produced to the broker, status read through GetTask."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from podium.events.v1 import tasks_pb2 as events
from podium.v1 import common_pb2, tasks_pb2, tasks_pb2_grpc

from tests.builders import produce, task_envelope
from tests.e2e.conftest import Running
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def _now() -> timestamp_pb2.Timestamp:
    return _at(datetime.now(UTC))


def _at(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
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


async def test_a_finished_task_stays_finished_whatever_order_its_events_come_in(
    running: Running,
) -> None:
    """docs/rules.md#tasks: a report dated after the task failed changes nothing, and is
    listed as ignored when it comes after the failure; a task that failed before it started
    takes no later start or report."""
    now, tenant = datetime.now(UTC), running.tenant

    def event(task_id: str, minutes_ago: int, **oneof: Any) -> tuple[bytes, Any]:
        envelope: Any = task_envelope(task_id, tenant, **oneof)
        envelope.occurred_at.CopyFrom(_at(now - timedelta(minutes=minutes_ago)))
        return (task_id.encode(), envelope)

    def lifecycle(task_id: str, *, failed: int, started: int) -> list[tuple[bytes, Any]]:
        created = events.TaskCreated(
            task_id=task_id, type="TASK_TYPE_PUSH_FAILED_TRIPS", nb_items=200, created_at=_at(now)
        )
        return [
            event(task_id, 60, task_created=created),
            event(
                task_id,
                started,
                task_started=events.TaskStarted(
                    task_id=task_id, started_at=_at(now - timedelta(minutes=started))
                ),
            ),
            event(
                task_id,
                45,
                task_progressed=events.TaskProgressed(task_id=task_id, nb_remaining_items=120),
            ),
            event(
                task_id,
                failed,
                task_failed=events.TaskFailed(
                    task_id=task_id, failed_at=_at(now - timedelta(minutes=failed)), reason="quota"
                ),
            ),
        ]

    def late_report(task_id: str) -> tuple[bytes, Any]:
        report = events.TaskProgressed(task_id=task_id, nb_remaining_items=12)
        return event(task_id, 30, task_progressed=report)

    failed_then_reported = [*lifecycle("k1", failed=40, started=50), late_report("k1")]
    reported_then_failed = [late_report("k2"), *lifecycle("k2", failed=40, started=50)]
    created, started, reported, failed = lifecycle("k3", failed=55, started=50)
    never_started = [created, failed, started, reported]
    topic = running.settings.topic("tasks")
    await produce(
        running.servers, topic, failed_then_reported + reported_then_failed + never_started
    )
    stub = tasks_pb2_grpc.TaskServiceStub(running.channel)

    async def task(task_id: str) -> tasks_pb2.GetTaskResponse:
        request = tasks_pb2.GetTaskRequest(task_id=task_id)
        return await stub.GetTask(request, metadata=running.auth)

    for task_id, remaining in (("k1", 120), ("k2", 120), ("k3", 200)):
        found = await eventually(
            partial(task, task_id), lambda t: t.status == common_pb2.TASK_STATUS_FAILED
        )
        assert found.nbRemainingItems == remaining, task_id
    with running.podium.storage.read() as read:
        ignored = read.ignored_events(tenant, "terminal_state", None)
    listed = sorted(entry.event_id.split("-")[0] for entry in ignored)
    # k2's report came before the failure, when it still counted; k3's start and report
    # came after it.
    assert listed == ["k1", "k3", "k3"]
    assert all("FAILED since" in entry.reason for entry in ignored)
