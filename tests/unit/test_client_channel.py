"""The client package's channel against an in-process API (docs/clients.md): the key goes
with every call, on asyncio and blocking channels alike; the service config retries an
UNAVAILABLE answer and a RESOURCE_EXHAUSTED one after the server's pushback, and not a
refusal whose pushback says not to; a refusal's details come unpacked."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import grpc
import podium_client
import pytest
from google.protobuf import descriptor_pool
from google.rpc import error_details_pb2
from podium.v1 import (
    challenges_pb2,  # noqa: F401  (registers the services the config names)
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
    paths_pb2,  # noqa: F401
    tasks_pb2,
    tasks_pb2_grpc,
)

from service.metrics import Metrics
from tests.api import KEY, api, guard, query_deps

RANKING = "podium.v1.DriverRankingService/GetDriverRanking"
SAFETY = driver_ranking_pb2.GetDriverRankingRequest(type="RANKING_TYPE_SAFETY")


def calls(metrics: Metrics, method: str, code: str) -> float:
    counted = metrics.registry.get_sample_value(
        "podium_grpc_requests_total", {"method": method, "code": code}
    )
    return counted or 0


def ready_from_the_second_call() -> Iterator[bool]:
    yield False
    while True:
        yield True


async def test_the_key_goes_with_every_call_on_both_kinds_of_channel() -> None:
    async with api() as port:
        target = f"127.0.0.1:{port}"
        async with podium_client.channel(target, api_key=KEY, insecure=True) as channel:
            stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
            answer = await stub.GetDriverRanking(SAFETY)
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                    tasks_pb2.GetTaskRequest(task_id="t1")
                )

        def blocking() -> str:
            with podium_client.sync_channel(target, api_key=KEY, insecure=True) as channel:
                stub = tasks_pb2_grpc.TaskServiceStub(channel)
                try:
                    stub.GetTask(tasks_pb2.GetTaskRequest(task_id="t1"))
                except grpc.RpcError as error:
                    return str(error.code())
                return "answered"

        blocking_code = await asyncio.to_thread(blocking)
    assert answer.type == SAFETY.type
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert blocking_code == str(grpc.StatusCode.NOT_FOUND)


async def test_a_call_that_brings_its_own_key_is_sent_with_it_alone() -> None:
    async with (
        api() as port,
        podium_client.channel(f"127.0.0.1:{port}", api_key=KEY, insecure=True) as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                tasks_pb2.GetTaskRequest(task_id="t1"), metadata=(("x-api-key", "pod_other"),)
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_unavailable_answer_is_retried_after_its_pushback_and_succeeds() -> None:
    metrics = Metrics()
    readiness = ready_from_the_second_call()
    deps = query_deps(is_ready=lambda: next(readiness))
    async with (
        api(deps, guard(metrics=metrics)) as port,
        podium_client.channel(f"127.0.0.1:{port}", api_key=KEY, insecure=True) as channel,
    ):
        stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
        answer = await stub.GetDriverRanking(SAFETY)
    assert answer.type == SAFETY.type
    assert (calls(metrics, RANKING, "UNAVAILABLE"), calls(metrics, RANKING, "OK")) == (1, 1)


async def test_a_rate_limited_call_waits_out_the_pushback_then_succeeds() -> None:
    """One call a second: the second call is refused with the time to the next token as its
    pushback. Attempts on the service config's own backoff (0.1 s, 0.2 s, 0.4 s at most: 0.7 s
    in all) would all come before that token, be refused again and fail the call; one attempt
    after the pushback gets it."""
    metrics = Metrics()
    async with (
        api(gate=guard(rate=1, metrics=metrics)) as port,
        podium_client.channel(f"127.0.0.1:{port}", api_key=KEY, insecure=True) as channel,
    ):
        stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
        first = await stub.GetDriverRanking(SAFETY)
        second = await stub.GetDriverRanking(SAFETY)
    assert first == second
    assert calls(metrics, RANKING, "RESOURCE_EXHAUSTED") == 1
    assert calls(metrics, RANKING, "OK") == 2


async def test_a_request_too_large_is_not_retried() -> None:
    metrics = Metrics()
    async with (
        api(gate=guard(max_request_bytes=1000, metrics=metrics)) as port,
        podium_client.channel(f"127.0.0.1:{port}", api_key=KEY, insecure=True) as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                tasks_pb2.GetTaskRequest(task_id="t" * 1500)
            )
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert calls(metrics, "podium.v1.TaskService/GetTask", "RESOURCE_EXHAUSTED") == 1


async def test_a_refusals_details_come_unpacked() -> None:
    async with (
        api() as port,
        podium_client.channel(f"127.0.0.1:{port}", api_key=KEY, insecure=True) as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await driver_ranking_pb2_grpc.DriverRankingServiceStub(channel).GetDriverRanking(
                driver_ranking_pb2.GetDriverRankingRequest()
            )
    info, bad_request = podium_client.error_details(refused.value)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    assert (info.reason, bad_request.field_violations[0].field) == ("invalid_rank_type", "type")


def test_the_service_config_names_only_methods_podium_serves_and_is_the_shipped_json() -> None:
    config = podium_client.service_config()
    pool = descriptor_pool.Default()
    for method_config in config["methodConfig"]:
        for name in method_config["name"]:
            service = pool.FindServiceByName(name["service"])
            if "method" in name:
                assert service.FindMethodByName(name["method"]) is not None, name
    shipped = resources.files("podium_client").joinpath("service_config.json").read_text()
    assert config == json.loads(shipped)
    config["methodConfig"].clear()
    assert podium_client.service_config()["methodConfig"]


def test_docs_clients_shows_the_service_config_the_package_ships() -> None:
    clients = (Path(__file__).parents[2] / "docs" / "clients.md").read_text()
    [shown] = re.findall(r"```json\n(.*?)```", clients, re.DOTALL)
    assert json.loads(shown) == podium_client.service_config()
