"""Per-tenant state versions, and the cache of serialized answers they keep honest."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
V = TypeVar("V")

VERSION_POLL_SECONDS = 0.1
"""How often an API instance learns that consumers changed a tenant's state."""

WHILE_REBUILDING_SECONDS = 5.0
"""While the next answer is being built, callers get the previous one if it is younger than
this, rather than all waiting for the build. A 10,000-driver month takes about 100 ms to
build, but several seconds when the machine is saturated; callers then keep getting an
answer at once (a few seconds old at worst) instead of queueing behind the build."""

FRESH_ENOUGH_SECONDS = 0.25
"""A cached answer younger than this is served even if the state moved on since: under steady
ingest a big answer is then rebuilt at most four times a second, and a query still reflects an
event well within a second (batch commit + version poll + this)."""

BUILD_COST_FACTOR = 4
"""An answer's own window is at most this many times what it took to build: the window bounds
the time spent rebuilding expensive answers, and a cheap one need not wait for it."""


class VersionWatcher:
    def __init__(self, read_versions: Callable[[], dict[str, int]]) -> None:
        self._read = read_versions
        self._versions: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def version(self, scope: str) -> int:
        """The version of a tenant, or of a finer scope (`service.app.scopes`)."""
        return self._versions.get(scope, 0)

    async def refresh(self) -> None:
        self._versions = await asyncio.to_thread(self._read)

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="version-watcher")

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


class ResponseCache:
    """Serialized responses by request, valid while their tenant's version is unchanged.

    Big answers (a 10,000-driver ranking) cost milliseconds to build and serialize; serving
    the same bytes until the state changes is what lets the API keep up.
    """

    def __init__(self, max_entries: int = 512, fresh_enough: float = FRESH_ENOUGH_SECONDS) -> None:
        self._entries: OrderedDict[Hashable, tuple[Hashable, float, bytes, float]] = OrderedDict()
        self._max = max_entries
        self._fresh_enough = fresh_enough

    def get(self, key: Hashable, version: Hashable) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        built_version, built_at, data, window = entry
        if built_version != version and time.monotonic() - built_at >= window:
            return None
        self._entries.move_to_end(key)
        return data

    def recent(self, key: Hashable, max_age: float) -> bytes | None:
        """Whatever answer is cached for `key` if it is younger than `max_age` seconds."""
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[1] >= max_age:
            return None
        return entry[2]

    def put(
        self, key: Hashable, version: Hashable, data: bytes, build_seconds: float | None = None
    ) -> None:
        """`build_seconds`: what building `data` took (unknown: the whole window applies)."""
        window = self._fresh_enough
        if build_seconds is not None:
            window = min(window, BUILD_COST_FACTOR * build_seconds)
        _keep(self._entries, key, (version, time.monotonic(), data, window), self._max)


class Memo(Generic[T]):
    """Values loaded once per key, the key naming the state version they were read at (so a
    new version loads anew and old ones fall out); shared by the worker threads."""

    def __init__(self, max_entries: int = 64) -> None:
        self._entries: OrderedDict[Hashable, T] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = load()
        with self._lock:
            _keep(self._entries, key, value, self._max)
        return value


class Assembled:
    """Responses joined from cached answers, kept while those answers are the very same
    objects: a 1 MB ranking (two months) is joined once per new month answer instead of
    being copied anew, into freshly allocated memory, for every call."""

    def __init__(self, max_entries: int = 512) -> None:
        self._entries: OrderedDict[Hashable, tuple[tuple[bytes, ...], bytes]] = OrderedDict()
        self._max = max_entries

    def get(self, key: Hashable, parts: tuple[bytes, ...], join: Callable[[], bytes]) -> bytes:
        entry = self._entries.get(key)
        if entry is not None and _same_objects(entry[0], parts):
            self._entries.move_to_end(key)
            return entry[1]
        data = join()
        _keep(self._entries, key, (parts, data), self._max)
        return data


def _same_objects(these: tuple[bytes, ...], those: tuple[bytes, ...]) -> bool:
    return len(these) == len(those) and all(a is b for a, b in zip(these, those, strict=True))


def _keep(entries: OrderedDict[Hashable, V], key: Hashable, value: V, max_entries: int) -> None:
    """Store `value` as the most recently used entry, letting the least recently used go."""
    entries[key] = value
    entries.move_to_end(key)
    while len(entries) > max_entries:
        entries.popitem(last=False)
