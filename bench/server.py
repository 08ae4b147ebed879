"""The server under test: a real `podium serve` process, configured through its environment
as an operator would, so its figures (and its peak memory) are its own and not the bench's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.config import Settings

READY_TIMEOUT_SECONDS = 900.0
"""Catching up on a large state (the growth run) may take minutes before SERVING."""
STOP_TIMEOUT_SECONDS = 60.0
LOG_TAIL_CHARACTERS = 3000


@dataclass(frozen=True)
class Stopped:
    """How the server ended: its exit code on SIGTERM (None: killed after the timeout) and
    its peak resident memory, read just before the signal."""

    exit_code: int | None
    peak_memory_mib: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(settings: Settings, port: int) -> dict[str, str]:
    """The bench process's environment with Podium's settings replaced by the bench's (no
    drain on SIGTERM: no load balancer needs one)."""
    bench = replace(settings, grpc_address=f"127.0.0.1:{port}", drain_seconds=0.0)
    return {**os.environ, **bench.to_env()}


class PodiumServe:
    """`async with PodiumServe(settings, role) as server:` starts `podium serve --role ROLE`,
    waits until it reports SERVING on grpc.health.v1 (unless it only consumes), and stops it
    with SIGTERM when the block ends; `server.stopped` then tells its exit code and peak
    memory, `server.ready_seconds` how long it took to become SERVING. Its log is kept (and its
    path printed) only if it fails."""

    def __init__(self, settings: Settings, role: str = "all") -> None:
        self._settings = settings
        self._role = role
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._log = Path(tempfile.mkstemp(prefix=f"podium-serve-{self.port}-", suffix=".log")[1])
        self._process: asyncio.subprocess.Process | None = None
        self.ready_seconds = float("nan")
        self.stopped: Stopped | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def __aenter__(self) -> PodiumServe:
        podium = Path(sys.executable).parent / "podium"
        started = time.perf_counter()
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(podium),
                "serve",
                "--role",
                self._role,
                env=environment(self._settings, self.port),
                stdout=log,
                stderr=log,
            )
        try:
            if self._role != "consumers":  # a consumers-only instance serves no gRPC
                await self._wait_until_serving()
        except BaseException:
            await self._kill()
            raise
        self.ready_seconds = time.perf_counter() - started
        return self

    async def __aexit__(self, *exc: object) -> None:
        process = self._process
        if process is None:
            return
        peak = peak_memory_mib(process.pid)
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            await self._kill()
            code = None
        self.stopped = Stopped(code, peak)
        if code == 0:
            self._log.unlink(missing_ok=True)

    async def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        async with grpc.aio.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.returncode is not None:
                    raise RuntimeError(
                        f"podium serve exited with {self._process.returncode} before SERVING; "
                        f"the end of its output ({self._log}):\n{self._tail()}"
                    )
                with contextlib.suppress(grpc.aio.AioRpcError):
                    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(
            f"podium serve not SERVING after {READY_TIMEOUT_SECONDS:.0f} s; "
            f"the end of its output ({self._log}):\n{self._tail()}"
        )

    async def _kill(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    def _tail(self) -> str:
        return self._log.read_text(errors="replace")[-LOG_TAIL_CHARACTERS:]


def peak_memory_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB (NaN once it has exited)."""
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
