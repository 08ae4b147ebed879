"""WatchDriverRanking on a live API over the in-memory ports: the top first, then a message
only when the top or the ranked count changes; watchers have a limit of their own and hold
no call's place."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from podium.v1 import (
    common_pb2,
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

from service.app.ports import ReadModel, StateVersion
from service.grpc.state_versions import StateVersions
from service.grpc.watchers import Watchers
from service.metrics import Metrics
from tests.api import KEY, NOW, api, channel_to, guard, query_deps
from tests.builders import apply, trip, user
from tests.fakes import FakePorts
from tests.waiting import eventually

AUTH = (("x-api-key", KEY),)
WATCH = driver_ranking_pb2.WatchDriverRankingRequest(
    type=common_pb2.RANKING_TYPE_SAFETY, group_label="north", top=2
)
Stream = AsyncIterator[driver_ranking_pb2.WatchDriverRankingResponse]


class Reads:
    """The fake read model, counting the reads so a test can wait for the next one."""

    def __init__(self, ports: FakePorts) -> None:
        self._ports = ports
        self.count = 0
        self._next = threading.Condition()

    def __call__(self, statement_timeout: float | None = None) -> AbstractContextManager[ReadModel]:
        with self._next:
            self.count += 1
            self._next.notify_all()
        return self._ports.read()

    async def past(self, count: int) -> None:
        def wait() -> None:
            with self._next:
                assert self._next.wait_for(lambda: self.count > count, 10)

        await asyncio.to_thread(wait)


@contextlib.asynccontextmanager
async def watching(
    ports: FakePorts,
    *,
    max_watchers: int = 100,
    max_concurrent_calls: int = 256,
    metrics: Metrics | None = None,
) -> AsyncIterator[tuple[StateVersions, Reads, grpc.aio.Channel]]:
    """Messages a watcher may get are not spaced: a test sees each state it makes."""
    versions, reads = StateVersions(lambda: _versions(ports)), Reads(ports)
    await versions.refresh()
    deps = query_deps(reads, versions=versions, watchers=Watchers(max_watchers), watch_interval=0.0)
    gate = guard(max_concurrent_calls=max_concurrent_calls, metrics=metrics)
    async with api(deps, gate) as port, channel_to(port) as channel:
        yield versions, reads, channel


def _versions(ports: FakePorts) -> dict[str, StateVersion]:
    with ports.read() as read:
        return read.state_versions()


def drivers(ports: FakePorts, *scores: tuple[str, float], arrived: datetime = NOW) -> None:
    """Drivers of `north` with five 10 km trips each at these safety scores (all ranked)."""
    events = [user(name, "north", at=arrived) for name, _ in scores]
    for name, score in scores:
        events += [
            trip(f"{name}-{i}", name, safety=score, ended_at=NOW, arrived_at=arrived)
            for i in range(5)
        ]
    apply(ports, *events)


def top(message: driver_ranking_pb2.WatchDriverRankingResponse) -> list[tuple[str, int]]:
    return [(d.userId, d.rank) for d in message.driverRanked]


async def test_the_top_comes_first_then_only_its_changes_each_with_its_as_of() -> None:
    ports = FakePorts()
    drivers(ports, ("ann", 9.0), ("bob", 8.0), ("cyd", 7.0))
    async with watching(ports) as (versions, reads, channel):
        stream: Stream = aiter(
            driver_ranking_pb2_grpc.DriverRankingServiceStub(channel).WatchDriverRanking(
                WATCH, metadata=AUTH
            )
        )
        first = await asyncio.wait_for(anext(stream), 10)
        assert (top(first), first.driverRankedNumber) == ([("ann", 1), ("bob", 2)], 3)
        assert (first.year, first.monthNumber) == (2026, 11)

        # cyd improves but stays third: the top and the count are the same, no message
        later = NOW + timedelta(minutes=1)
        apply(ports, trip("cyd-extra", "cyd", safety=7.5, ended_at=NOW, arrived_at=later))
        seen = reads.count
        await versions.refresh()
        await reads.past(seen)  # the watcher read the board cyd changed
        # dan comes in first: a message, and it is the next one
        drivers(ports, ("dan", 9.5), arrived=later + timedelta(minutes=1))
        await versions.refresh()
        changed = await asyncio.wait_for(anext(stream), 10)
    assert (top(changed), changed.driverRankedNumber) == ([("dan", 1), ("ann", 2)], 4)
    assert first.asOf.ToDatetime(UTC) == NOW
    assert changed.asOf.ToDatetime(UTC) == later + timedelta(minutes=1)


async def test_watchers_beyond_the_instance_limit_are_refused_and_hold_no_calls_place() -> None:
    ports = FakePorts()
    drivers(ports, ("ann", 9.0))
    async with watching(ports, max_watchers=1, max_concurrent_calls=1) as (_, _reads, channel):
        stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
        watcher: Stream = aiter(stub.WatchDriverRanking(WATCH, metadata=AUTH))
        await asyncio.wait_for(anext(watcher), 10)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await anext(aiter(stub.WatchDriverRanking(WATCH, metadata=AUTH)))
        with pytest.raises(grpc.aio.AioRpcError) as not_found:  # a call still gets in
            await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                tasks_pb2.GetTaskRequest(task_id="t1"), metadata=AUTH
            )
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(refused.value) == "too_many_watchers"
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("asked", [0, 101, -1])
async def test_a_top_outside_1_to_100_is_invalid_and_counted_so(asked: int) -> None:
    metrics = Metrics()
    method = "podium.v1.DriverRankingService/WatchDriverRanking"

    def counted() -> float | None:
        return metrics.registry.get_sample_value(
            "podium_grpc_requests_total", {"method": method, "code": "INVALID_ARGUMENT"}
        )

    async with watching(FakePorts(), metrics=metrics) as (_, _reads, channel):
        request = driver_ranking_pb2.WatchDriverRankingRequest(type=WATCH.type, top=asked)
        stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await anext(aiter(stub.WatchDriverRanking(request, metadata=AUTH)))
        # the status reaches the caller before the server's handler ends and counts it
        await eventually(counted, lambda n: n is not None, within=10, what="the refusal counted")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason(refused.value) == "invalid_top"
    assert counted() == 1
    timed = metrics.registry.get_sample_value(
        "podium_grpc_request_seconds_count", {"method": method}
    )
    assert timed is None  # a stream's length is no latency


def reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return str(info.reason)
