"""`podium serve` as a real subprocess, for tests that kill, freeze or restart it.

Each process gets its own gRPC port (kept across restarts, so a client's address stays valid)
and writes its log to a file the test can tail when something goes wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from consumers.local_broker import free_port
from service.config import Settings
from tests.waiting import eventually

PODIUM = str(Path(sys.executable).parent / "podium")
SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
UNKNOWN: int = health_pb2.HealthCheckResponse.UNKNOWN
"""What `health` returns when the process does not answer at all."""


class ServeProcess:
    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        role: str = "all",
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.settings = replace(settings, grpc_address=f"127.0.0.1:{self.port}")
        self.log_path = log_path
        self.role = role
        self.extra_env = env or {}
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.aio.Channel | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def channel(self) -> grpc.aio.Channel:
        """A channel to this process, kept across its restarts."""
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.address)
        return self._channel

    def start(self) -> ServeProcess:
        if self.running:
            raise RuntimeError("already running")
        self.starts += 1
        env = {
            **os.environ,
            **self.settings.to_env(),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [PODIUM, "serve", "--role", self.role],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    async def health(self, service: str = "", *, seconds: float = 2.0) -> int:
        """The service's health status, UNKNOWN when the process does not answer."""
        stub = health_pb2_grpc.HealthStub(self.channel())
        try:
            answer = await stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=seconds
            )
        except grpc.aio.AioRpcError:
            return UNKNOWN
        status: int = answer.status
        return status

    async def until_health(
        self, service: str = "", status: int = SERVING, *, within: float = 120.0
    ) -> float:
        """Wait until the service reports `status`; returns the seconds waited."""
        started = time.monotonic()
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
        try:
            await eventually(
                lambda: self.health(service),
                lambda answer: answer == status,
                within=within,
                unless=self.why_gone,
                what=f"{service!r} {name}",
            )
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{self.tail()}") from None
        return time.monotonic() - started

    def why_gone(self) -> str | None:
        """Why nothing more will come of this process, if it ended."""
        return None if self.running else f"podium serve exited with {self.returncode}"

    async def serving(self, *, within: float = 120.0) -> float:
        """Wait until the API serves (the state has caught up once)."""
        return await self.until_health("", SERVING, within=within)

    def send(self, sig: signal.Signals) -> None:
        if self._process is None:
            raise RuntimeError("not started")
        self._process.send_signal(sig)

    async def exited(self, *, within: float = 60.0) -> int:
        """Wait for the process to end by itself, and its exit code."""
        if self._process is None:
            raise RuntimeError("not started")
        return await asyncio.to_thread(self._process.wait, within)

    async def kill(self) -> int:
        """kill -9, and reap it."""
        return await self._end(signal.SIGKILL, within=10)

    async def terminate(self, *, within: float = 60.0) -> int:
        """SIGTERM (a clean stop: the batch in hand commits), and wait for the exit code."""
        return await self._end(signal.SIGTERM, within=within)

    async def _end(self, sig: signal.Signals, *, within: float) -> int:
        process = self._process
        if process is None:
            raise RuntimeError("not started")
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            process.send_signal(sig)
        try:
            return await asyncio.to_thread(process.wait, within)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
            raise AssertionError(
                f"podium serve did not stop on {sig.name}\n{self.tail()}"
            ) from None

    async def __aenter__(self) -> ServeProcess:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the process if it runs (kill -9 if SIGTERM does not do it) and the channel."""
        if self.running:
            with contextlib.suppress(AssertionError):  # it was killed instead
                await self.terminate(within=30)
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def count_in_log(self, text: str) -> int:
        return self.log().count(text)
