"""A rollout through `podium serve` as a process: on SIGTERM health goes NOT_SERVING while
calls are still answered for `PODIUM_DRAIN_SECONDS` (so load balancers take the instance out
first), then it stops taking calls and exits 0; a second signal cuts the drain short."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from podium.v1 import driver_ranking_pb2, driver_ranking_pb2_grpc

from consumers.local_broker import LocalBroker
from service.bootstrap import storage
from service.clock import SystemClock
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import NOT_SERVING, UNKNOWN, ServeProcess

pytestmark = [pytest.mark.e2e]


async def ranking_answers(process: ServeProcess, key: str) -> bool:
    stub = driver_ranking_pb2_grpc.DriverRankingServiceStub(process.channel())
    answer = await stub.GetDriverRanking(
        driver_ranking_pb2.GetDriverRankingRequest(type="RANKING_TYPE_SAFETY"),
        metadata=(("x-api-key", key),),
        timeout=5,
    )
    return answer.currentMonth.year > 0  # an answer, not an error


def new_key(database_url: str) -> str:
    with storage(database_url) as store:
        key: str = store.create_key("acme", "ranking", SystemClock().now())
        return key


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_sigterm_drains_while_answering_then_exits_0(
    broker: LocalBroker, tmp_path: Path, kind: str
) -> None:
    with empty_database(kind, tmp_path) as url:
        settings = isolated_settings(broker, url, PODIUM_DRAIN_SECONDS="10")
        async with ServeProcess(settings, tmp_path / "serve.log") as podium:
            await podium.serving()
            key = new_key(url)
            assert await ranking_answers(podium, key)
            podium.send(signal.SIGTERM)
            await podium.until_health("", NOT_SERVING, within=10)
            await podium.until_health("podium.ingest", NOT_SERVING, within=10)
            assert await ranking_answers(podium, key)  # a balancer's last calls: answered
            assert await podium.exited(within=60) == 0, podium.tail()
            assert await podium.health() == UNKNOWN  # nothing listens any more
            assert podium.count_in_log("draining: NOT_SERVING") == 1


async def test_a_second_signal_cuts_the_drain_short(broker: LocalBroker, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'podium.db'}"
    settings = isolated_settings(broker, url, PODIUM_DRAIN_SECONDS="3600")
    async with ServeProcess(settings, tmp_path / "serve.log") as podium:
        await podium.serving()
        podium.send(signal.SIGTERM)
        await podium.until_health("", NOT_SERVING, within=10)
        podium.send(signal.SIGINT)  # Ctrl-C again, as at a terminal
        assert await podium.exited(within=60) == 0, podium.tail()


async def test_serve_names_its_database_and_never_its_password(
    broker: LocalBroker, tmp_path: Path
) -> None:
    with empty_database("postgresql", tmp_path) as url:
        with_password = url.replace("postgres@", "postgres:s3cret@")
        settings = isolated_settings(broker, with_password)
        async with ServeProcess(settings, tmp_path / "serve.log") as podium:
            await podium.serving()
            assert await podium.terminate() == 0
        log = podium.log()
    assert '"state in postgresql://127.0.0.1:5432/test"' in log
    assert "s3cret" not in log
