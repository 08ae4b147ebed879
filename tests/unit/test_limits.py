"""What one call may ask of an instance: request and metadata size, calls at once, calls a
second per key, ids within their bound; the statements of a call bounded by its deadline;
health and reflection free of keys and limits (docs/rules.md#limits)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from podium.v1 import (
    challenges_pb2,
    driver_ranking_pb2,
    paths_pb2,
    tasks_pb2,
    tasks_pb2_grpc,
)

from service.app.ports import ReadModel
from tests.api import KEY, api, channel_to, empty_read_model, guard, query_deps

AUTH = (("x-api-key", KEY),)


def details(error: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, float | None]:
    """The error's ErrorInfo and its RetryInfo delay in seconds (None: no RetryInfo)."""
    status = rpc_status.from_call(error)
    assert status is not None
    info, delay = error_details_pb2.ErrorInfo(), None
    for detail in status.details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            delay = retry.retry_delay.ToTimedelta().total_seconds()
        elif not detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            assert detail.Unpack(info)
    assert info.domain == "podium"
    return info, delay


async def get_task(
    channel: grpc.aio.Channel,
    task_id: str = "t1",
    metadata: tuple[tuple[str, str], ...] = AUTH,
    deadline: float | None = None,
) -> Any:
    stub = tasks_pb2_grpc.TaskServiceStub(channel)
    return await stub.GetTask(
        tasks_pb2.GetTaskRequest(task_id=task_id), metadata=metadata, timeout=deadline
    )


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    return failed.value


async def test_a_request_message_over_the_limit_is_request_too_large() -> None:
    async with api(gate=guard(max_request_bytes=1000)) as port, channel_to(port) as channel:
        error = await refused(get_task(channel, "t" * 1500))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, delay = details(error)
    assert (info.reason, info.metadata["max_bytes"], delay) == ("request_too_large", "1000", None)
    assert len(error.details() or "") < 100


async def test_metadata_over_the_limit_is_request_too_large() -> None:
    async with api(gate=guard(max_request_bytes=1000)) as port, channel_to(port) as channel:
        error = await refused(get_task(channel, metadata=(*AUTH, ("x-junk", "j" * 2000))))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details(error)[0].reason == "request_too_large"


async def test_a_message_beyond_grpcs_own_cap_is_refused_by_grpc_with_the_same_code() -> None:
    async with api(gate=guard(max_request_bytes=1000)) as port, channel_to(port) as channel:
        error = await refused(get_task(channel, "t" * (2 << 20)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@contextlib.contextmanager
def held_reads(gate: threading.Event, entered: threading.Event) -> Iterator[Any]:
    def read(statement_timeout: float | None = None) -> Any:
        entered.set()
        gate.wait(10)
        return empty_read_model()

    yield read


async def test_calls_beyond_the_instance_limit_are_too_many_calls_with_a_retry_delay() -> None:
    gate, entered = threading.Event(), threading.Event()
    with held_reads(gate, entered) as read:
        async with (
            api(query_deps(read), guard(max_concurrent_calls=1)) as port,
            channel_to(port) as channel,
        ):
            first = asyncio.ensure_future(get_task(channel, "t1"))
            await asyncio.to_thread(entered.wait, 10)
            error = await refused(get_task(channel, "t2"))
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest()
            )
            gate.set()
            with pytest.raises(grpc.aio.AioRpcError):
                await first  # not found: the empty state
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, delay = details(error)
    assert info.reason == "too_many_calls"
    assert delay == 0.25
    assert health.status == health_pb2.HealthCheckResponse.SERVING  # answered all the same


async def test_a_key_over_its_rate_is_rate_limited_with_the_time_to_its_next_token() -> None:
    async with api(gate=guard(rate=1)) as port, channel_to(port) as channel:
        first = await refused(get_task(channel))
        error = await refused(get_task(channel))
    assert first.code() == grpc.StatusCode.NOT_FOUND
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, delay = details(error)
    assert info.reason == "rate_limited"
    assert delay is not None
    assert 0.5 < delay <= 1


async def test_unknown_keys_are_refused_before_any_rate_is_counted() -> None:
    async with api(gate=guard(rate=1)) as port, channel_to(port) as channel:
        for _ in range(3):
            error = await refused(get_task(channel, metadata=(("x-api-key", "pod_x"),)))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (await refused(get_task(channel))).code() == grpc.StatusCode.NOT_FOUND


async def test_a_refused_key_waits_out_its_delay_without_holding_a_calls_place() -> None:
    gate, entered = threading.Event(), threading.Event()
    with held_reads(gate, entered) as read:
        async with (
            api(query_deps(read), guard(max_concurrent_calls=1, refusal_delay=0.3)) as port,
            channel_to(port) as channel,
        ):
            loop = asyncio.get_running_loop()
            started = loop.time()
            unknown = asyncio.ensure_future(
                refused(get_task(channel, metadata=(("x-api-key", "pod_x"),)))
            )
            known = asyncio.ensure_future(get_task(channel, "t1"))
            await asyncio.to_thread(entered.wait, 10)  # the known key's call runs meanwhile
            gate.set()
            error = await unknown
            took = loop.time() - started
            with pytest.raises(grpc.aio.AioRpcError) as not_found:
                await known
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert took >= 0.3
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_refused_keys_delay_ends_before_the_calls_deadline() -> None:
    async with api(gate=guard(refusal_delay=30)) as port, channel_to(port) as channel:
        error = await refused(get_task(channel, metadata=(("x-api-key", "pod_x"),), deadline=1.5))
        hurried = await refused(get_task(channel, metadata=(("x-api-key", "pod_x"),), deadline=0.2))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert hurried.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("/podium.v1.TaskService/GetTask", tasks_pb2.GetTaskRequest(task_id="t" * 201), "task_id"),
        (
            "/podium.v1.DriverRankingService/GetDriverRanking",
            driver_ranking_pb2.GetDriverRankingRequest(
                type="RANKING_TYPE_SAFETY", group_label="g" * 5000
            ),
            "group_label",
        ),
        (
            "/podium.v1.ChallengeService/GetChallengeRanking",
            challenges_pb2.GetChallengeRankingRequest(challenge_id="c", group="\x00"),
            "group",
        ),
        (
            "/podium.v1.ChallengeService/GetChallengeProgress",
            challenges_pb2.GetChallengeProgressRequest(challenge_id="🦀" * 151),
            "challenge_id",
        ),
        (
            "/podium.v1.PathService/GetPathSessionStats",
            paths_pb2.GetPathSessionStatsRequest(session_id="s", user_email_or_id="u" * 321),
            "user_email_or_id",
        ),
    ],
)
async def test_an_id_out_of_its_bounds_is_invalid_id_and_only_its_start_is_echoed(
    method: str, request_message: Any, field: str
) -> None:
    async with api() as port, channel_to(port) as channel:
        call: Any = channel.unary_unary(method)
        error = await refused(call(request_message.SerializeToString(), metadata=AUTH))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    info, _ = details(error)
    assert (info.reason, info.metadata["field"]) == ("invalid_id", field)
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[-1].Unpack(bad_request)
    [violation] = bad_request.field_violations
    assert (violation.field, violation.description) == (field, error.details())
    assert len(error.details() or "") < 150


async def test_an_email_as_long_as_emails_may_be_is_looked_up_not_refused() -> None:
    request = paths_pb2.GetPathSessionStatsRequest(session_id="s", user_email_or_id="u" * 320)
    async with api() as port, channel_to(port) as channel:
        call: Any = channel.unary_unary("/podium.v1.PathService/GetPathSessionStats")
        error = await refused(call(request.SerializeToString(), metadata=AUTH))
    assert details(error)[0].reason == "path_session_not_found"


async def test_a_calls_deadline_bounds_its_statements_and_a_call_without_one_gets_the_default() -> (
    None
):
    timeouts: list[float | None] = []

    @contextlib.contextmanager
    def read(statement_timeout: float | None = None) -> Iterator[ReadModel]:
        timeouts.append(statement_timeout)
        with empty_read_model() as model:
            yield model

    async with api(query_deps(read)) as port, channel_to(port) as channel:
        await refused(get_task(channel, "t1", deadline=2))
        await refused(get_task(channel, "t2"))
    first, second = timeouts
    assert first is not None
    assert 1 < first <= 2.1  # the deadline as the server sees it may be a little later
    assert second == 10.0


async def test_health_needs_no_key_and_ignores_the_request_limits() -> None:
    async with api(gate=guard(max_request_bytes=100)) as port, channel_to(port) as channel:
        junk = (("x-junk", "j" * 1000),)
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), metadata=junk
        )
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_key_that_cannot_be_looked_up_is_internal_with_an_error_id_not_unknown() -> None:
    def unreachable(key: str) -> Any:
        raise ConnectionError("db.internal.example:5432 refused")

    async with api(gate=guard(unreachable)) as port, channel_to(port) as channel:
        error = await refused(get_task(channel))
    assert error.code() == grpc.StatusCode.INTERNAL
    info, _ = details(error)
    assert info.reason == "internal"
    assert "db.internal" not in (error.details() or "")
