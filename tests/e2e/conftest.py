"""A running Podium (in process) against the real broker and each database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio

from consumers.local_broker import LocalBroker
from service.bootstrap import Podium
from service.clock import SystemClock
from service.config import Settings


@dataclass
class Running:
    """A server shared by a module's tests; each test works in a tenant of its own."""

    podium: Podium
    settings: Settings
    key: str
    channel: grpc.aio.Channel
    tenant: str = "acme"

    def for_new_tenant(self, scopes: str = "ranking,challenges,tasks,paths") -> Running:
        tenant = f"tenant-{uuid.uuid4().hex[:8]}"
        key = self.podium.storage.create_key(tenant, scopes, SystemClock().now())
        return Running(self.podium, self.settings, key, self.channel, tenant)

    @property
    def servers(self) -> str:
        return self.settings.kafka_bootstrap_servers or ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.podium.port}"

    @property
    def auth(self) -> tuple[tuple[str, str]]:
        return (("x-api-key", self.key),)


def isolated_settings(broker: LocalBroker, database_url: str, **extra: str) -> Settings:
    """Own topics and consumer group per test, so tests sharing the broker never meet. A
    `podium serve` given these drains for a moment only on SIGTERM (no load balancer
    waits for it; tests/e2e/test_rollouts.py tests the drain itself)."""
    run = uuid.uuid4().hex[:8]
    return Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "PODIUM_GRPC_ADDRESS": "127.0.0.1:0",
            "PODIUM_TOPIC_PREFIX": f"t{run}.",
            "PODIUM_CONSUMER_GROUP": f"g{run}",
            "PODIUM_TOPIC_PARTITIONS": "2",
            "PODIUM_DRAIN_SECONDS": "0.1",
            **extra,
        }
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def server(broker: LocalBroker, shared_database_url: str) -> AsyncIterator[Running]:
    """Joining a consumer group takes the local broker seconds, so one server per
    database kind serves every end-to-end test; each test works in a tenant of its own."""
    settings = isolated_settings(broker, shared_database_url)
    podium = Podium(settings)
    await podium.start()
    key = podium.storage.create_key("acme", "ranking,challenges,tasks,paths", SystemClock().now())
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{podium.port}")
    try:
        await asyncio.wait_for(podium.ready.wait(), 60)
        yield Running(podium, settings, key, channel)
    finally:
        await channel.close()
        await podium.stop()


@pytest.fixture
def running(server: Running) -> Running:
    """The module's server, seen from a fresh tenant."""
    return server.for_new_tenant()
