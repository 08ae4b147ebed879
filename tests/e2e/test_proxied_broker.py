"""The broker behind the fault proxy: clients reach it only through the proxy, a refusal stops
them within a bounded time, and a restore lets the same clients carry on."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from tests.builders import consumed
from tests.conftest import ProxiedBroker

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 2_000  # what a client waits on a request before giving up (aiokafka's is 40 s)
BOUND = 15.0  # no step of the test waits longer than this


async def test_clients_reach_the_broker_through_the_proxy_and_feel_its_cuts(
    proxied_broker: ProxiedBroker,
) -> None:
    servers = proxied_broker.bootstrap_servers
    assert servers == f"127.0.0.1:{proxied_broker.proxy.port}"
    assert proxied_broker.broker.advertised_port == proxied_broker.proxy.port
    topic = f"proxied-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, request_timeout_ms=TIMEOUT_MS, linger_ms=0
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=None,
        auto_offset_reset="earliest",
        request_timeout_ms=TIMEOUT_MS,
    )
    async with asyncio.timeout(BOUND):
        await producer.start()
    try:
        async with asyncio.timeout(BOUND):
            await producer.send_and_wait(topic, b"before")
            await consumer.start()
        assert [r.value for r in await consumed(consumer, 1, within=BOUND)] == [b"before"]
        assert proxied_broker.proxy.connections >= 2  # the advertised port: no client goes around

        proxied_broker.proxy.cut("refuse")
        started = time.monotonic()
        with pytest.raises((KafkaError, TimeoutError)) as failed:
            async with asyncio.timeout(BOUND):
                await producer.send_and_wait(topic, b"during")
        # aiokafka gives up on the batch once its request timeout has passed (NodeNotReadyError)
        assert time.monotonic() - started < TIMEOUT_MS / 1000 + 5, failed.value

        proxied_broker.proxy.restore()
        async with asyncio.timeout(BOUND):
            await producer.send_and_wait(topic, b"after")
        assert [r.value for r in await consumed(consumer, 1, within=BOUND)] == [b"after"]
    finally:
        async with asyncio.timeout(BOUND):
            await consumer.stop()
            await producer.stop()
