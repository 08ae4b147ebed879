"""Anything unexpected answers INTERNAL with a generic message and an error id that the log
has too, never the failure's own text; it is counted with its real code."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from service.app.ports import ReadModel
from service.domain.auth import Principal
from service.domain.rules import Rules
from service.domain.standings import Thresholds
from service.gen.podium.v1 import tasks_pb2, tasks_pb2_grpc
from service.grpc.answers import Answers, ResponseCache
from service.grpc.auth import PrincipalCache
from service.grpc.server import create_server
from service.grpc.servicers import QueryDeps
from service.grpc.state_versions import StateVersions
from service.metrics import Metrics

SECRET = "SELECT * FROM tasks WHERE tenant_id = 'acme' -- db.internal.example:5432"


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 20, tzinfo=UTC)


@contextlib.contextmanager
def broken_database() -> Iterator[ReadModel]:
    raise RuntimeError(SECRET)
    yield  # pragma: no cover


@contextlib.asynccontextmanager
async def server(metrics: Metrics) -> AsyncIterator[grpc.aio.Channel]:
    deps = QueryDeps(
        answers=Answers(broken_database, ResponseCache()),
        versions=StateVersions(dict),
        clock=Clock(),
        rules=Rules(Thresholds(5, 20_000), timedelta(hours=24)),
        is_ready=lambda: True,
        metrics=metrics,
    )
    principals = PrincipalCache(lambda key: Principal("acme", frozenset({"tasks"})))
    running, port, _ = create_server("127.0.0.1:0", (deps, principals))
    await running.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await running.stop(0)


async def test_an_unexpected_failure_is_internal_with_an_error_id_and_no_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    async with server(metrics) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                tasks_pb2.GetTaskRequest(task_id="k1"), metadata=(("x-api-key", "k"),)
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
