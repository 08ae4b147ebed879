"""`podium health`: one line and exit code 0 when the instance is SERVING, 1 when it is not
or does not answer; it reaches the API as the instance's own settings serve it (plaintext,
TLS, mutual TLS with a client certificate), or the plaintext health listener
(`PODIUM_HEALTH_ADDRESS`) that probes without a certificate use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import migrations
from consumers.local_broker import free_port
from service.bootstrap import Podium
from service.cli import main
from service.clock import SystemClock
from service.config import Settings
from tests.certificates import Authority, Pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Pem, Pem, Pem]:
    """The CA, the server's certificate, a client it signed, and a client another CA signed."""
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = Authority(folder, "podium-ca"), Authority(folder, "stranger-ca")
    return (
        ca,
        ca.issue("server", server=True),
        ca.issue("probe", server=False),
        stranger.issue("stranger", server=False),
    )


@contextlib.asynccontextmanager
async def api_instance(env: Mapping[str, str]) -> AsyncIterator[Podium]:
    """`podium serve --role api` in this process, its state marked caught up (SERVING)."""
    settings = Settings.from_env(env)
    podium = Podium(settings, role="api")
    migrations.upgrade(podium.storage.engine)
    podium.storage.mark_caught_up(settings.consumer_group, SystemClock().now())
    await podium.start()
    try:
        await asyncio.wait_for(podium.ready.wait(), 30)
        yield podium
    finally:
        await podium.stop()


async def podium_health(
    env: Mapping[str, str], capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str]:
    code = await asyncio.to_thread(main, ["health", "--timeout", "3", *argv], env)
    return code, capsys.readouterr().out


def base_env(tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'podium.db'}",
        "PODIUM_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
    }


async def test_a_serving_instance_answers_serving_and_a_stopped_one_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = base_env(tmp_path)
    address = env["PODIUM_GRPC_ADDRESS"]
    async with api_instance(env):
        assert await podium_health(env, capsys) == (0, f"podium at {address}: SERVING\n")
        assert await podium_health(env, capsys, "--service", "podium.api") == (
            0,
            f"podium.api at {address}: SERVING\n",
        )
        # An API-only instance runs no ingest: its health service is not there.
        code, said = await podium_health(env, capsys, "--service", "podium.ingest")
        assert (code, said) == (1, f"podium.ingest at {address}: SERVICE_UNKNOWN\n")
    assert await podium_health(env, capsys) == (
        1,
        f"podium at {address}: UNREACHABLE (UNAVAILABLE)\n",
    )


async def test_under_mutual_tls_it_presents_its_client_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pki: tuple[Authority, Pem, Pem, Pem]
) -> None:
    ca, server, probe, stranger = pki
    env = {
        **base_env(tmp_path),
        "PODIUM_TLS_CERT_FILE": str(server.cert),
        "PODIUM_TLS_KEY_FILE": str(server.key),
        "PODIUM_TLS_CLIENT_CA_FILE": str(ca.cert),
        "PODIUM_HEALTH_TLS_CA_FILE": str(ca.cert),
    }
    with_probe = {
        **env,
        "PODIUM_HEALTH_TLS_CERT_FILE": str(probe.cert),
        "PODIUM_HEALTH_TLS_KEY_FILE": str(probe.key),
    }
    with_stranger = {
        **env,
        "PODIUM_HEALTH_TLS_CERT_FILE": str(stranger.cert),
        "PODIUM_HEALTH_TLS_KEY_FILE": str(stranger.key),
    }
    async with api_instance(env):
        assert (await podium_health(with_probe, capsys))[0] == 0
        # The server's own certificate is for servers only: refused as a client's.
        assert (await podium_health(env, capsys))[0] == 1
        code, said = await podium_health(with_stranger, capsys)
        assert (code, said.split(": ")[1]) == (1, "UNREACHABLE (UNAVAILABLE)\n")


async def test_the_health_listener_serves_probes_without_a_certificate_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pki: tuple[Authority, Pem, Pem, Pem]
) -> None:
    ca, server, _, _ = pki
    health_address = f"127.0.0.1:{free_port()}"
    env = {
        **base_env(tmp_path),
        "PODIUM_TLS_CERT_FILE": str(server.cert),
        "PODIUM_TLS_KEY_FILE": str(server.key),
        "PODIUM_TLS_CLIENT_CA_FILE": str(ca.cert),
        "PODIUM_HEALTH_ADDRESS": health_address,
    }
    async with api_instance(env) as podium:
        assert await podium_health(env, capsys, "--service", "podium.api") == (
            0,
            f"podium.api at {health_address}: SERVING\n",
        )
        async with grpc.aio.insecure_channel(health_address) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            get_task = channel.unary_unary(
                "/podium.v1.TaskService/GetTask",
                request_serializer=bytes,
                response_deserializer=bytes,
            )
            with pytest.raises(grpc.aio.AioRpcError) as other:
                await get_task(b"", timeout=5)
            assert other.value.code() == grpc.StatusCode.UNIMPLEMENTED
            await podium.drain()  # as on SIGTERM: the probe's listener says so too
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
