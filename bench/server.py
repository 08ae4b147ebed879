"""The server under test: a real `podium serve` process, configured through its environment
as an operator would, so its figures (and its peak memory) are its own and not the bench's."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.config import Settings

READY_TIMEOUT_SECONDS = 600.0
"""Catching up on a large backlog (the growth run) takes minutes before SERVING."""


@dataclass
class Stopped:
    exit_code: int | None
    peak_memory_mib: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(settings: Settings, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "PODIUM_TOPIC_PREFIX": settings.topic_prefix,
        "PODIUM_CONSUMER_GROUP": settings.consumer_group,
        "PODIUM_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "PODIUM_GRPC_ADDRESS": f"127.0.0.1:{port}",
    }


class PodiumServe:
    """`async with PodiumServe(settings) as server:` runs `podium serve` until the block ends;
    `server.stopped` then tells its exit code and peak resident memory."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._log = Path(f"/tmp/podium-serve-{self.port}.log")
        self._process: asyncio.subprocess.Process | None = None
        self.stopped: Stopped | None = None

    async def __aenter__(self) -> PodiumServe:
        podium = Path(sys.executable).parent / "podium"
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(podium),
                "serve",
                env=environment(self._settings, self.port),
                stdout=log,
                stderr=log,
            )
        await self._wait_until_serving()
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self._process
        if process is None:
            return
        peak = peak_memory_mib(process.pid)
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 60)
        self.stopped = Stopped(code, peak)

    async def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        async with grpc.aio.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.returncode is not None:
                    raise RuntimeError(f"podium serve exited: {self._tail()}")
                try:
                    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"podium serve not SERVING after {READY_TIMEOUT_SECONDS} s")

    def _tail(self) -> str:
        return self._log.read_text(errors="replace")[-2000:]


def peak_memory_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
