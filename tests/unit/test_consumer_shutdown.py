"""Stopping the consumer when aiokafka's fetcher re-raises a cancellation it was handed."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer

from consumers.consumer import stop_consumer


class FakeClient:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class ConsumerWhoseFetcherRaises:
    """Like aiokafka 0.14 when a fetch sleeps in its retry back-off as the consumer stops."""

    def __init__(self) -> None:
        self._client = FakeClient()

    async def stop(self) -> None:
        raise asyncio.CancelledError


def _as_consumer(fake: ConsumerWhoseFetcherRaises) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, cast(Any, fake))


async def test_a_stray_cancellation_from_the_fetcher_still_closes_the_client() -> None:
    fake = ConsumerWhoseFetcherRaises()
    await stop_consumer(_as_consumer(fake))
    assert fake._client.closed


async def test_a_cancellation_of_the_consumer_task_itself_is_passed_on() -> None:
    fake = ConsumerWhoseFetcherRaises()
    started = asyncio.Event()

    async def cancelled_while_consuming() -> None:
        try:
            started.set()
            await asyncio.sleep(10)
        finally:  # the loop stops its consumer on the way out, as ConsumerLoop.run does
            await stop_consumer(_as_consumer(fake))

    task = asyncio.create_task(cancelled_while_consuming())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not fake._client.closed
