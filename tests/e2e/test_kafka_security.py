"""The Kafka security settings reach the real clients: SASL is offered to the broker (the
local one supports none, and says so), and the password shows nowhere in what Podium logs;
`podium produce` and `podium demo` reach a broker that speaks only TLS with the consumer's
settings."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.connection import kafka_options
from consumers.local_broker import LocalBroker, free_port
from service.bootstrap import Podium
from service.config import Settings
from tests.certificates import Authority
from tests.databases import empty_database
from tests.e2e.conftest import isolated_settings
from tests.processes import ServeProcess
from tests.proxy import ThreadedTcpProxy

pytestmark = [pytest.mark.e2e]

PASSWORD = "hunter2-very-secret"
PODIUM = str(Path(sys.executable).parent / "podium")
COMMAND_SECONDS = 120


async def test_sasl_settings_reach_the_broker_and_the_password_is_never_logged(
    broker: LocalBroker, tmp_path: Path
) -> None:
    with empty_database("sqlite", tmp_path) as url:
        settings = replace(
            isolated_settings(broker, url),
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="podium",
            kafka_sasl_password=PASSWORD,
        )
        async with ServeProcess(
            settings, tmp_path / "serve.log", env={"PODIUM_LOG_FORMAT": "json"}
        ) as serve:
            code = await serve.exited(within=60)
            output = serve.log()
    assert code == 1
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any("UnsupportedSaslMechanism" in line["message"] for line in lines)
    assert lines[-1]["level"] == "CRITICAL"
    assert "KafkaConnectionError" in lines[-1]["exc_info"]
    assert PASSWORD not in output


# --- producers: `podium produce` and `podium demo` connect as the consumers do ---------------


@dataclass(frozen=True)
class TlsBroker:
    """A broker reached only over TLS: a TLS-terminating proxy in front, whose port the
    broker advertises, so every connection after bootstrapping comes back through it."""

    bootstrap_servers: str
    ca_file: Path


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    authority = Authority(tmp_path, "kafka-ca")
    server = authority.issue("kafka", server=True)
    listener = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    listener.load_cert_chain(server.cert, server.key)
    broker_port = free_port()
    with (
        ThreadedTcpProxy("127.0.0.1", broker_port, tls=listener) as proxy,
        LocalBroker(broker_port, advertised_port=proxy.port),
    ):
        yield TlsBroker(proxy.address, authority.cert)


def tls_environment(broker: TlsBroker, **extra: str) -> dict[str, str]:
    """The consumer's settings for that broker: TLS, its CA, topics of the test's own."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PODIUM_", "KAFKA_"))},
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "PODIUM_KAFKA_SECURITY_PROTOCOL": "SSL",
        "PODIUM_KAFKA_SSL_CAFILE": str(broker.ca_file),
        "PODIUM_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.",
        "PODIUM_TOPIC_PARTITIONS": "1",
        **extra,
    }


async def podium(env: Mapping[str, str], *args: str, stdin: bytes = b"") -> tuple[int, str]:
    """A `podium` command as an operator runs it: its exit code and what it printed."""
    process = await asyncio.create_subprocess_exec(
        PODIUM,
        *args,
        env=dict(env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(stdin), COMMAND_SECONDS)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def catalog_values(env: Mapping[str, str]) -> list[bytes]:
    """The catalog topic's record values, read with the consumer's connection settings."""
    settings = Settings.from_env(env)
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(settings.topic("catalog"), 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        batch = await consumer.getmany(partition, timeout_ms=5_000)
        return [record.value or b"" for record in batch.get(partition, [])]
    finally:
        await consumer.stop()


PROFILE = (
    '{"eventId": "e1", "tenantId": "acme", "occurredAt": "2026-11-20T08:00:00Z", '
    '"userUpserted": {"userId": "ann", "groups": ["north"]}}'
)


async def test_podium_produce_sends_over_tls_with_the_consumers_settings(
    tls_broker: TlsBroker,
) -> None:
    """With the consumer's TLS settings the line reaches its topic; without the CA that
    signed the broker's certificate (the system's CAs instead) nothing is sent."""
    env = tls_environment(tls_broker)
    code, output = await podium(env, "produce", stdin=PROFILE.encode())
    assert (code, output.splitlines()[-1]) == (
        0,
        f"podium produce: 1 event(s) sent to {tls_broker.bootstrap_servers} "
        f"(1 {env['PODIUM_TOPIC_PREFIX']}catalog); 0 line(s) refused",
    )
    assert await catalog_values(env) == [PROFILE.encode()]
    untrusted = {k: v for k, v in env.items() if k != "PODIUM_KAFKA_SSL_CAFILE"}
    code, output = await podium(untrusted, "produce", stdin=PROFILE.encode())
    assert code == 1  # a runtime failure (README, "The podium command")
    assert f"podium: cannot send to Kafka at {tls_broker.bootstrap_servers}" in output


async def test_podium_demo_sends_over_tls_to_a_podium_consuming_over_tls(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    with empty_database("sqlite", tmp_path) as url:
        env = tls_environment(tls_broker, DATABASE_URL=url, PODIUM_GRPC_ADDRESS="127.0.0.1:0")
        podium_server = Podium(Settings.from_env(env))
        await podium_server.start()
        try:
            await asyncio.wait_for(podium_server.ready.wait(), 60)
            address = {"PODIUM_GRPC_ADDRESS": f"127.0.0.1:{podium_server.port}"}
            code, output = await podium({**env, **address}, "demo", "--within", "60")
        finally:
            await podium_server.stop()
    assert code == 0, output
    assert f"events sent to {tls_broker.bootstrap_servers}" in output
    assert "folded by Podium and answered" in output
