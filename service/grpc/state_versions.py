"""What an API instance knows of the state's versions: read every tenth of a second, so a
cached answer is known stale soon after consumers (here or in another instance) change it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor

VERSION_POLL_SECONDS = 0.1


class StateVersions:
    def __init__(
        self, read_versions: Callable[[], dict[str, int]], executor: Executor | None = None
    ) -> None:
        self._read = read_versions
        self._executor = executor
        self._versions: dict[str, int] = {}
        self._read_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def version(self, key: str) -> int:
        """The version of a part of the state (`service.app.state_versions` names them)."""
        return self._versions.get(key, 0)

    def age(self) -> float:
        """Seconds since the versions were last read."""
        return time.monotonic() - self._read_at

    async def refresh(self) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        self._versions = await loop.run_in_executor(self._executor, self._read)
        self._read_at = started

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="state-versions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(VERSION_POLL_SECONDS)
            try:
                await self.refresh()
            except Exception:  # a database hiccup: keep the last versions and try again
                await asyncio.sleep(1)
