"""Stopping `podium serve` mid-stream and starting it again loses nothing and counts nothing
twice: the ranking equals the one of an uninterrupted run over the same topics."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from podium.v1 import driver_ranking_pb2, driver_ranking_pb2_grpc
from sqlalchemy import func, select

import migrations
from consumers.local_broker import LocalBroker, free_port
from service.adapters.database import create_database_engine
from service.adapters.tables import trips
from service.bootstrap import Podium, Storage
from service.clock import SystemClock
from service.config import Settings
from tests.builders import TENANT, produce, trip_envelope, user_envelope
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e]

DRIVERS = 30
TRIPS = 1500
PODIUM = str(Path(sys.executable).parent / "podium")


def _environment(settings: Settings, port: int) -> dict[str, str]:
    small_batches = replace(settings, grpc_address=f"127.0.0.1:{port}", batch_max_records=100)
    return {**os.environ, **small_batches.to_env()}


async def _serve(settings: Settings, port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        PODIUM,
        "serve",
        env=_environment(settings, port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def _trip_count(database_url: str) -> int:
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(trips)).scalar_one())
    finally:
        engine.dispose()


async def _until_trips(database_url: str, count: int) -> None:
    await eventually(
        lambda: asyncio.to_thread(_trip_count, database_url),
        lambda folded: folded >= count,
        within=60,
        what=f"{count} trips folded",
    )


async def _ranking(address: str, key: str) -> bytes:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(channel)
        answer = await stub.GetDriverRanking(
            driver_ranking_pb2.GetDriverRankingRequest(type="RANKING_TYPE_SAFETY"),
            metadata=(("x-api-key", key),),
        )
    return answer.SerializeToString(deterministic=True)


def _trip(n: int) -> tuple[bytes, Message]:
    driver = f"d{n % DRIVERS}"
    return driver.encode(), trip_envelope(
        f"trip{n}", driver, km=1 + n % 7, safety=n * 37 % 101 / 10.1
    )


async def _stream(servers: str, settings: Settings) -> None:
    """About ten seconds of trips, so a stop falls in the middle of them."""
    drivers = [(f"d{i}".encode(), user_envelope(f"d{i}")) for i in range(DRIVERS)]
    await produce(servers, settings.topic("catalog"), drivers)
    for start in range(0, TRIPS, 50):
        await produce(
            servers, settings.topic("trips"), [_trip(n) for n in range(start, start + 50)]
        )
        await asyncio.sleep(0.3)


async def _serving(port: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        await eventually(
            lambda: health.Check(health_pb2.HealthCheckRequest()),
            lambda answer: answer.status == health_pb2.HealthCheckResponse.SERVING,
            within=60,
            what="podium serve SERVING",
        )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_restart_mid_stream_equals_an_uninterrupted_run(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    with (
        empty_database(kind, tmp_path) as restarted_url,
        empty_database(kind, tmp_path) as steady_url,
    ):
        restarted = isolated_settings(broker, restarted_url)
        steady = Settings.from_env(
            {
                "DATABASE_URL": steady_url,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "PODIUM_GRPC_ADDRESS": "127.0.0.1:0",
                "PODIUM_TOPIC_PREFIX": restarted.topic_prefix,
                "PODIUM_CONSUMER_GROUP": restarted.consumer_group + "-steady",
                "PODIUM_TOPIC_PARTITIONS": "2",
            }
        )
        port = free_port()
        first = await _serve(restarted, port)
        await _serving(port)
        stream = asyncio.create_task(_stream(broker.bootstrap_servers, restarted))
        await _until_trips(restarted_url, TRIPS // 5)  # stop once a part of the stream is in
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 60) == 0
        folded_before_restart = await asyncio.to_thread(_trip_count, restarted_url)
        second = await _serve(restarted, port)
        try:
            uninterrupted = Podium(steady)
            await uninterrupted.start()
            try:
                await stream
                await _until_trips(restarted_url, TRIPS)
                await _until_trips(steady_url, TRIPS)
                engine = create_database_engine(restarted_url)
                migrations.upgrade(engine)
                key = Storage(engine).create_key(TENANT, "ranking", SystemClock().now())
                engine.dispose()
                steady_key = uninterrupted.storage.create_key(
                    TENANT, "ranking", SystemClock().now()
                )
                await asyncio.wait_for(uninterrupted.ready.wait(), 30)
                await _serving(port)
                assert await _ranking(f"127.0.0.1:{port}", key) == await _ranking(
                    f"127.0.0.1:{uninterrupted.port}", steady_key
                )
            finally:
                await uninterrupted.stop()
        finally:
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), 60) == 0
        assert 0 < folded_before_restart < TRIPS, "the stop did not fall mid-stream"
