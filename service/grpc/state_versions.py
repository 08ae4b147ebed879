"""What an API instance knows of the state's versions: read every tenth of a second, so a
cached answer is known stale soon after consumers (here or in another instance) change it,
and a watcher learns of a change within that."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime

from service.app.ports import StateVersion

log = logging.getLogger(__name__)

VERSION_POLL_SECONDS = 0.1
NEVER_MOVED = StateVersion(0, None)


class StateVersions:
    def __init__(
        self, read_versions: Callable[[], dict[str, StateVersion]], executor: Executor | None = None
    ) -> None:
        self._read = read_versions
        self._executor = executor
        self._versions: dict[str, StateVersion] = {}
        self._read_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self.generation = 0
        """Moves on by one whenever the versions read differ from the ones before."""
        self._moved = asyncio.Event()

    def version(self, key: str) -> int:
        """The version of a part of the state (`service.app.state_versions` names them)."""
        return self._versions.get(key, NEVER_MOVED).number

    def state(self, key: str) -> StateVersion:
        """The version of a part of the state with the arrival time of its newest event."""
        return self._versions.get(key, NEVER_MOVED)

    def as_of(self, *keys: str) -> datetime | None:
        """The arrival time of the newest event reflected in these parts of the state (None:
        no event moved them)."""
        return newest_arrival(*(self.state(key) for key in keys))

    async def moved_since(self, generation: int) -> None:
        """Return once the versions have moved since `generation` (at once if they have)."""
        while self.generation == generation:
            await self._moved.wait()

    def age(self) -> float:
        """Seconds since the versions were last read."""
        return time.monotonic() - self._read_at

    async def refresh(self) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        versions = await loop.run_in_executor(self._executor, self._read)
        if versions != self._versions:
            self._versions = versions
            self.generation += 1
            self._moved.set()
            self._moved = asyncio.Event()
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
            except Exception as error:  # keep the last versions and try again
                log.warning("reading the state versions failed (%s); retrying", error)
                await asyncio.sleep(1)


def newest_arrival(*states: StateVersion) -> datetime | None:
    """The arrival time of the newest event reflected in these versions (None: none)."""
    return max((state.as_of for state in states if state.as_of is not None), default=None)
