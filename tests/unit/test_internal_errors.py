"""Anything unexpected answers INTERNAL, and a database failing the answer UNAVAILABLE, with a
generic message and an error id that the log has too, never the failure's own text; each is
counted with its real code."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from podium.v1 import tasks_pb2, tasks_pb2_grpc

from service.app.ports import ReadModel, StorageUnavailable
from service.grpc.cache import TimedReadModels
from service.metrics import Metrics
from tests.api import KEY, api, channel_to, guard, query_deps

SECRET = "SELECT * FROM tasks WHERE tenant_id = 'acme' -- db.internal.example:5432"


def broken_database(statement_timeout: float | None = None) -> AbstractContextManager[ReadModel]:
    raise RuntimeError(SECRET)


def unreachable_database(
    statement_timeout: float | None = None,
) -> AbstractContextManager[ReadModel]:
    raise StorageUnavailable(SECRET)


@contextlib.asynccontextmanager
async def server(
    metrics: Metrics, database: TimedReadModels = broken_database
) -> AsyncIterator[grpc.aio.Channel]:
    async with (
        api(query_deps(database), guard(metrics=metrics)) as port,
        channel_to(port) as channel,
    ):
        yield channel


async def test_an_unexpected_failure_is_internal_with_an_error_id_and_no_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    async with server(metrics) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                tasks_pb2.GetTaskRequest(task_id="k1"), metadata=(("x-api-key", KEY),)
            )
    error = failed.value
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "SELECT" not in (error.details() or "")
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("internal", "podium")
    error_id = info.metadata["error_id"]
    assert error_id in (error.details() or "")
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged
    assert logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None
    counted = metrics.registry.get_sample_value(
        "podium_grpc_requests_total",
        {"method": "podium.v1.TaskService/GetTask", "code": "INTERNAL"},
    )
    assert counted == 1


async def test_a_database_failing_the_answer_is_unavailable_to_retry_with_an_error_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    async with server(metrics, unreachable_database) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                tasks_pb2.GetTaskRequest(task_id="k1"), metadata=(("x-api-key", KEY),)
            )
    error = failed.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "SELECT" not in (error.details() or "")
    status = rpc_status.from_call(error)
    assert status is not None
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert status.details[1].Unpack(retry)
    assert (info.reason, retry.retry_delay.seconds) == ("storage_unavailable", 1)
    error_id = info.metadata["error_id"]
    [logged] = [r for r in caplog.records if error_id in r.getMessage()]
    assert SECRET in logged.getMessage()
    counted = metrics.registry.get_sample_value(
        "podium_grpc_requests_total",
        {"method": "podium.v1.TaskService/GetTask", "code": "UNAVAILABLE"},
    )
    assert counted == 1
