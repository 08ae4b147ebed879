"""TLS and mutual TLS on the API: a client with a certificate the configured CA signed is
served; one signed by another CA, one without a certificate, and a plaintext one are not;
an operator's grpcurl gets through with -cacert, -cert and -key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import podium_client
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from podium.v1 import tasks_pb2, tasks_pb2_grpc

from service.bootstrap import server_credentials
from service.config import Settings, SettingsError
from tests.api import KEY, api
from tests.certificates import Authority, Pem

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Pem, Pem, Pem]:
    """The CA, the server's certificate, a client it signed, and a client another CA signed."""
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = Authority(folder, "podium-ca"), Authority(folder, "stranger-ca")
    return (
        ca,
        ca.issue("server", server=True),
        ca.issue("trusted-client", server=False),
        stranger.issue("untrusted-client", server=False),
    )


def tls_settings(ca: Authority, server: Pem, *, mutual: bool) -> Settings:
    env = {"PODIUM_TLS_CERT_FILE": str(server.cert), "PODIUM_TLS_KEY_FILE": str(server.key)}
    if mutual:
        env["PODIUM_TLS_CLIENT_CA_FILE"] = str(ca.cert)
    return Settings.from_env(env)


@contextlib.asynccontextmanager
async def tls_api(settings: Settings) -> AsyncIterator[str]:
    async with api(credentials=server_credentials(settings)) as port:
        yield f"127.0.0.1:{port}"


async def health(channel: grpc.aio.Channel) -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    return int(answer.status)


def client(ca: Authority, pem: Pem | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.cert.read_bytes(),
        private_key=None if pem is None else pem.key_bytes(),
        certificate_chain=None if pem is None else pem.cert_bytes(),
    )


async def test_a_client_with_a_certificate_the_ca_signed_is_served(
    pki: tuple[Authority, Pem, Pem, Pem],
) -> None:
    ca, server, trusted, _ = pki
    async with (
        tls_api(tls_settings(ca, server, mutual=True)) as address,
        grpc.aio.secure_channel(address, client(ca, trusted)) as channel,
    ):
        assert await health(channel) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                tasks_pb2.GetTaskRequest(task_id="t1"), metadata=(("x-api-key", KEY),)
            )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_client_packages_channel_presents_its_certificate_and_trusts_the_ca(
    pki: tuple[Authority, Pem, Pem, Pem],
) -> None:
    ca, server, trusted, _ = pki
    async with (
        tls_api(tls_settings(ca, server, mutual=True)) as address,
        podium_client.channel(
            address,
            api_key=KEY,
            root_certificates=ca.cert.read_bytes(),
            certificate_chain=trusted.cert_bytes(),
            private_key=trusted.key_bytes(),
        ) as channel,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                tasks_pb2.GetTaskRequest(task_id="t1")
            )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("who", ["untrusted", "no certificate", "plaintext"])
async def test_other_clients_are_refused_when_client_certificates_are_required(
    pki: tuple[Authority, Pem, Pem, Pem], who: str
) -> None:
    ca, server, _, untrusted = pki
    async with tls_api(tls_settings(ca, server, mutual=True)) as address:
        channel = (
            grpc.aio.insecure_channel(address)
            if who == "plaintext"
            else grpc.aio.secure_channel(
                address, client(ca, untrusted if who == "untrusted" else None)
            )
        )
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_with_tls_but_no_client_ca_any_tls_client_is_served_and_plaintext_is_not(
    pki: tuple[Authority, Pem, Pem, Pem],
) -> None:
    ca, server, _, _ = pki
    async with tls_api(tls_settings(ca, server, mutual=False)) as address:
        async with grpc.aio.secure_channel(address, client(ca, None)) as channel:
            assert await health(channel) == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(address) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health(plaintext)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def grpcurl(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        GRPCURL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_an_operator_reaches_the_mutual_tls_api_with_grpcurl(
    pki: tuple[Authority, Pem, Pem, Pem],
) -> None:
    ca, server, trusted, untrusted = pki
    async with tls_api(tls_settings(ca, server, mutual=True)) as address:
        tls = ("-cacert", str(ca.cert), "-cert", str(trusted.cert), "-key", str(trusted.key))
        listed = await grpcurl(*tls, address, "list")
        checked = await grpcurl(*tls, address, "grpc.health.v1.Health/Check")
        queried = await grpcurl(
            *tls, "-H", f"x-api-key: {KEY}", "-d", '{"task_id": "t1"}',
            address, "podium.v1.TaskService/GetTask",
        )  # fmt: skip
        stranger = ("-cacert", str(ca.cert), "-cert", str(untrusted.cert))
        refused = await grpcurl(
            *stranger, "-key", str(untrusted.key), "-connect-timeout", "2", address, "list"
        )
    assert listed[0] == 0, listed[1]
    assert "podium.v1.TaskService" in listed[1].split()
    assert json.loads(checked[1]) == {"status": "SERVING"}
    assert "Code: NotFound" in queried[1]
    assert '"reason":"task_not_found"' in queried[1].replace(" ", "")
    assert refused[0] != 0


def test_a_certificate_without_its_key_or_a_client_ca_without_tls_stops_start_up() -> None:
    with pytest.raises(SettingsError, match="PODIUM_TLS_KEY_FILE"):
        Settings.from_env({"PODIUM_TLS_CERT_FILE": "server.crt"})
    with pytest.raises(SettingsError, match="PODIUM_TLS_CLIENT_CA_FILE"):
        Settings.from_env({"PODIUM_TLS_CLIENT_CA_FILE": "ca.pem"})


def test_an_unreadable_certificate_stops_start_up_naming_its_setting(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "PODIUM_TLS_CERT_FILE": str(tmp_path / "missing.crt"),
            "PODIUM_TLS_KEY_FILE": str(tmp_path / "missing.key"),
        }
    )
    with pytest.raises(SettingsError, match="PODIUM_TLS_CERT_FILE"):
        server_credentials(settings)
