"""`podium serve` as a real process, for tests that kill, freeze or restart it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.config import Settings
from service.local_broker import free_port

PODIUM = str(Path(sys.executable).parent / "podium")
SERVING = health_pb2.HealthCheckResponse.SERVING


class ServeProcess:
    """One `podium serve` process on a port of its own; its output is kept in a file so a
    failing test can show it."""

    def __init__(self, settings: Settings, role: str = "all", **extra_env: str) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            **replace(settings, grpc_address=self.address).to_env(),
            **extra_env,
        }
        self._role = role
        self._log = Path(tempfile.mkstemp(prefix="podium-serve-", suffix=".log")[1])
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> ServeProcess:
        with self._log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                PODIUM, "serve", "--role", self._role, env=self._env, stdout=log, stderr=log
            )
        return self

    async def health(self, service: str = "") -> int | None:
        """The health status of `service`, or None when the server does not answer."""
        async with grpc.aio.insecure_channel(self.address) as channel:
            try:
                answer = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=1
                )
            except grpc.aio.AioRpcError:
                return None
        return int(answer.status)

    async def until_health(self, status: int, service: str = "", within: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while await self.health(service) != status:
            if self.process is not None and self.process.returncode is not None:
                raise AssertionError(
                    f"podium serve exited {self.process.returncode}:\n{self.tail()}"
                )
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{service or 'the API'} never became {status}:\n{self.tail()}"
                )
            await asyncio.sleep(0.1)

    async def serving(self, within: float = 60.0) -> ServeProcess:
        await self.until_health(SERVING, "", within)
        return self

    def send(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def kill(self) -> None:
        """kill -9: no chance to finish anything."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def terminate(self, within: float = 60.0) -> int:
        """SIGTERM, and the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"podium serve did not stop on SIGTERM:\n{self.tail()}") from None

    def tail(self, characters: int = 4000) -> str:
        return self.output()[-characters:]

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return self._log.read_text(errors="replace")

    async def __aenter__(self) -> ServeProcess:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.process is not None and self.process.returncode is None:
                self.send(signal.SIGCONT)  # a test may have left it frozen
                await self.terminate()
        self._log.unlink(missing_ok=True)
