"""What an API instance knows of the state's versions: read every tenth of a second, so a
cached answer is known stale soon after consumers (here or in another instance) change it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

VERSION_POLL_SECONDS = 0.1


class StateVersions:
    def __init__(self, read_versions: Callable[[], dict[str, int]]) -> None:
        self._read = read_versions
        self._versions: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def version(self, key: str) -> int:
        """The version of a part of the state (`service.app.state_versions` names them)."""
        return self._versions.get(key, 0)

    async def refresh(self) -> None:
        self._versions = await asyncio.to_thread(self._read)

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
