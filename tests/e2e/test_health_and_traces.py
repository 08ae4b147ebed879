"""Health per service, watched the way orchestrators watch it (`grpc.health.v1` Watch), and
the spans a traced Podium leaves for calls and batches."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from podium.v1 import (
    driver_ranking_pb2,
    driver_ranking_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

from consumers.local_broker import LocalBroker
from service.bootstrap import Podium
from service.clock import SystemClock
from tests.builders import TENANT, produce, trip_envelope
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.proxy import ThreadedTcpProxy
from tests.services_up import POSTGRES_URL
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e]

Status = health_pb2.HealthCheckResponse
POSTGRES_ADDRESS = POSTGRES_URL.split("@", 1)[1].split("/", 1)[0]


async def check(channel: grpc.aio.Channel, service: str) -> grpc.StatusCode | int:
    try:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    except grpc.aio.AioRpcError as error:
        return error.code()
    return int(answer.status)


async def test_ingest_health_is_watched_from_catch_up_through_a_database_outage(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """podium.ingest: NOT_SERVING until the first catch-up, SERVING then, NOT_SERVING while
    the database refuses a batch, SERVING once it takes it; "" and podium.api answer beside."""
    host, port = POSTGRES_ADDRESS.split(":")
    with (
        empty_database("postgresql", tmp_path) as url,
        ThreadedTcpProxy(host, int(port)) as proxy,
    ):
        settings = isolated_settings(broker, url.replace(POSTGRES_ADDRESS, proxy.address))
        podium = Podium(settings)
        await podium.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{podium.port}") as channel:
                watch = health_pb2_grpc.HealthStub(channel).Watch(
                    health_pb2.HealthCheckRequest(service="podium.ingest")
                )

                async def next_status() -> int:
                    answer = await asyncio.wait_for(watch.read(), 60)
                    assert isinstance(answer, health_pb2.HealthCheckResponse)
                    return int(answer.status)

                assert await next_status() == Status.NOT_SERVING
                assert await next_status() == Status.SERVING
                for service in ("", "podium.api", "podium.ingest"):
                    assert await check(channel, service) == Status.SERVING
                assert await check(channel, "podium.nothing") == grpc.StatusCode.NOT_FOUND
                proxy.cut("refuse")
                await produce(
                    broker.bootstrap_servers,
                    settings.topic("trips"),
                    [(b"a", trip_envelope("t", "a"))],
                )
                assert await next_status() == Status.NOT_SERVING
                assert await check(channel, "podium.api") == Status.SERVING
                proxy.restore()
                assert await next_status() == Status.SERVING
                watch.cancel()
        finally:
            await podium.stop()


def _traceparent(trace_id: int, span_id: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-01"


async def _spans_until(
    exporter: InMemorySpanExporter, wanted: Callable[[ReadableSpan], bool], within: float = 30
) -> ReadableSpan:
    found = await eventually(
        lambda: [span for span in exporter.get_finished_spans() if wanted(span)],
        within=within,
        every=0.05,
        what="such a span",
    )
    return found[0]


async def test_calls_and_batches_make_spans_linked_to_their_callers_and_producers(
    broker: LocalBroker, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    producer_trace, producer_span = random.getrandbits(128), random.getrandbits(64)
    caller_trace, caller_span = random.getrandbits(128), random.getrandbits(64)
    with empty_database("sqlite", tmp_path) as url:
        settings = isolated_settings(broker, url)
        podium = Podium(settings, tracing=provider)
        await podium.start()
        try:
            key = podium.storage.create_key(TENANT, "ranking,tasks", SystemClock().now())
            await asyncio.wait_for(podium.ready.wait(), 60)
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
            await producer.start()
            try:
                header = _traceparent(producer_trace, producer_span).encode()
                value = trip_envelope("traced", "ann").SerializeToString()
                await producer.send_and_wait(
                    settings.topic("trips"), value, key=b"ann", headers=[("traceparent", header)]
                )
            finally:
                await producer.stop()
            batch = await _spans_until(
                exporter,
                lambda s: (
                    s.name == "apply batch"
                    and any(link.context.trace_id == producer_trace for link in s.links)
                ),
            )
            assert batch.kind == SpanKind.CONSUMER
            [link] = [link for link in batch.links if link.context.trace_id == producer_trace]
            assert link.context.span_id == producer_span
            async with grpc.aio.insecure_channel(f"127.0.0.1:{podium.port}") as channel:
                await driver_ranking_pb2_grpc.DriverRankingServiceStub(channel).GetDriverRanking(
                    driver_ranking_pb2.GetDriverRankingRequest(type="RANKING_TYPE_SAFETY"),
                    metadata=(
                        ("x-api-key", key),
                        ("traceparent", _traceparent(caller_trace, caller_span)),
                    ),
                )
                with pytest.raises(grpc.aio.AioRpcError):
                    await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                        tasks_pb2.GetTaskRequest(task_id="nope"), metadata=(("x-api-key", key),)
                    )
            ranking = await _spans_until(
                exporter, lambda s: s.name == "podium.v1.DriverRankingService/GetDriverRanking"
            )
            assert ranking.kind == SpanKind.SERVER
            assert ranking.context is not None
            assert ranking.parent is not None
            assert (ranking.context.trace_id, ranking.parent.span_id) == (
                caller_trace,
                caller_span,
            )
            assert ranking.attributes is not None
            assert ranking.attributes["rpc.grpc.status_code"] == 0
            missing = await _spans_until(exporter, lambda s: s.name.endswith("TaskService/GetTask"))
            assert missing.status.status_code == StatusCode.ERROR
            assert missing.attributes is not None
            assert missing.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
        finally:
            await podium.stop()
