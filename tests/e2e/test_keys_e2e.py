"""Keys through the running service: a revoked key is refused by every instance within 5 s,
an expiring key at its expiry, and an operator sees when a key was last used."""

from __future__ import annotations

import asyncio
import io
import time
from contextlib import redirect_stdout
from dataclasses import replace
from datetime import timedelta

import grpc
import pytest
from podium.v1 import tasks_pb2, tasks_pb2_grpc

from service import cli
from service.app.keys import list_keys
from service.bootstrap import Podium
from service.clock import SystemClock
from tests.e2e.conftest import Running
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

REVOKED_WITHIN_SECONDS = 5.0


async def answer(address: str, key: str) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await tasks_pb2_grpc.TaskServiceStub(channel).GetTask(
                tasks_pb2.GetTaskRequest(task_id="nothing"), metadata=(("x-api-key", key),)
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def until_refused(addresses: list[str], key: str, within: float) -> float:
    """Seconds from now until a round of calls that every instance refused began (a refusal
    itself takes a second: see `REFUSAL_DELAY_SECONDS`)."""
    started = time.monotonic()

    async def a_round() -> tuple[float, list[grpc.StatusCode]]:
        began = time.monotonic()
        return began, await asyncio.gather(*(answer(address, key) for address in addresses))

    began, _ = await eventually(
        a_round,
        lambda round_: all(code == grpc.StatusCode.UNAUTHENTICATED for code in round_[1]),
        within=within,
        every=0.05,
        what="every instance refusing the key",
    )
    return began - started


async def test_a_revoked_key_is_refused_by_every_instance_within_five_seconds(
    running: Running,
) -> None:
    other = Podium(replace(running.settings, grpc_address="127.0.0.1:0"), role="api")
    await other.start()
    try:
        await asyncio.wait_for(other.ready.wait(), 30)
        addresses = [running.address, f"127.0.0.1:{other.port}"]
        for address in addresses:
            assert await answer(address, running.key) == grpc.StatusCode.NOT_FOUND
        [key] = list_keys(running.podium.storage.keys(), running.tenant)
        out = io.StringIO()
        with redirect_stdout(out):
            code = await asyncio.to_thread(
                cli.main, ["keys", "revoke", key.key_id], running.settings.to_env()
            )
        assert code == 0
        took = await until_refused(addresses, running.key, REVOKED_WITHIN_SECONDS)
    finally:
        await other.stop()
    assert took < REVOKED_WITHIN_SECONDS


async def test_a_key_is_refused_from_its_expiry(running: Running) -> None:
    """Accepted (and cached) before its expiry, refused by the first call after it: no
    cache outlives the expiry, however long the calls take on a loaded machine."""
    clock = SystemClock()
    lifetime = timedelta(seconds=3)
    expiry = clock.now() + lifetime
    key = running.podium.storage.create_key(
        running.tenant, "tasks", expiry - lifetime, expires_in=lifetime
    )
    assert await answer(running.address, key) == grpc.StatusCode.NOT_FOUND
    assert clock.now() < expiry, "the first call outlasted the key: nothing was cached"
    await asyncio.sleep(max((expiry - clock.now()).total_seconds(), 0) + 0.01)
    assert await answer(running.address, key) == grpc.StatusCode.UNAUTHENTICATED


async def test_an_operator_sees_when_a_key_was_last_used(running: Running) -> None:
    assert await answer(running.address, running.key) == grpc.StatusCode.NOT_FOUND
    podium_uses = running.podium.key_uses
    assert podium_uses is not None
    await podium_uses.flush()  # what the instance does every few seconds
    [key] = list_keys(running.podium.storage.keys(), running.tenant)
    assert key.last_used_at is not None
    assert SystemClock().now() - key.last_used_at < timedelta(seconds=30)
