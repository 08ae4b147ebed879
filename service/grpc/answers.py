"""Answers as serialized bytes: cached by the state version they were built from, built once
for all the callers that ask at the same time, on a worker thread."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, cast

from google.protobuf.message import Message

from service.app.ports import ReadModel
from service.grpc.state_versions import newest_arrival

T = TypeVar("T")
V = TypeVar("V")

Monotonic = Callable[[], float]

WHILE_REBUILDING_SECONDS = 1.0
"""While the next answer is being built, callers get the previous one if it is younger than
this (`PODIUM_MAX_STALENESS_SECONDS`), rather than all waiting for the build: a
10,000-driver month takes tens of milliseconds to build, and much more when the machine is
saturated; callers then get an answer at once, at most this old."""

FRESH_ENOUGH_SECONDS = 0.5
"""A cached answer younger than this is served even if the state moved on since: under steady
ingest a big answer is then rebuilt at most twice a second, and a query still reflects an
event within a second (batch commit + version poll + this)."""

VALUES_KEPT = 16
"""Values kept for answers to be made from: each may be big (a 100,000-driver month's board
is some tens of MB)."""

BUILD_COST_FACTOR = 4
"""An answer's own window is at most this many times what it took to build: an answer up to
an eighth of a second to build then spends at most a quarter of the time rebuilding under
steady ingest (a 10,000-driver month's board takes about a tenth), and a cheap one need not
wait for the window."""

STATEMENT_TIMEOUT_SECONDS = 10.0
"""The longest an answer's statements may run when its call has no deadline
(`PODIUM_STATEMENT_TIMEOUT_SECONDS`); a call's remaining deadline shortens it."""

CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "call_deadline", default=None
)
"""When the current call's deadline passes, in the event loop's time (None: no deadline);
set by `service.grpc.limits.CallLimits`."""

Build = Callable[[ReadModel], Message]

Count = Callable[[str], None]
"""Counts one event of an answer of a kind (the first part of its key: `month`, `task`, ...)."""


def _uncounted(kind: str) -> None:
    return None


def answer_kind(key: Hashable) -> str:
    """The kind of answer a cache key names: its first part, by convention a short name."""
    first = key[0] if isinstance(key, tuple) and key else key
    return first if isinstance(first, str) else "other"


class TimedReadModels(Protocol):
    """Opens the read model for one answer, its statements bounded by `statement_timeout`
    seconds where the database can (PostgreSQL)."""

    def __call__(
        self, *, statement_timeout: float | None = None
    ) -> AbstractContextManager[ReadModel]: ...


class Flights(Generic[T]):
    """Values cached by key and state version, one build per key at a time, whatever its
    version: under steady ingest the version moves every batch, and starting a build per
    version would run several at once, each slowing the others (and every call) down. While
    one runs, callers get the previous value, or wait for this one if there is none; the next
    call after it lands builds the newer state."""

    def __init__(
        self,
        cache: ResponseCache[T],
        *,
        while_rebuilding: float = WHILE_REBUILDING_SECONDS,
        executor: Executor | None = None,
        on_hit: Count = _uncounted,
        on_build: Count = _uncounted,
    ) -> None:
        """`executor`: the API's own workers (None: asyncio's default ones). `on_hit` counts
        a value served from the cache (the previous one while rebuilding included),
        `on_build` one built."""
        self._on_hit = on_hit
        self._on_build = on_build
        self._cache = cache
        self._while_rebuilding = while_rebuilding
        self._executor = executor
        self._in_flight: dict[Hashable, asyncio.Future[T]] = {}

    async def get(
        self,
        key: Hashable,
        version: Hashable,
        produce: Callable[[], T],
        still_good: Callable[[T], bool] = lambda _: True,
    ) -> T:
        """The value for `key` at a state version, made by `produce` on a worker thread when
        it is not cached. Read the version before calling: if a batch lands while the value
        is built, the entry is already stale when stored, and is rebuilt. `still_good` says
        whether a previous value may stand in while this one is built (beyond its age)."""
        value = self._cache.get(key, version)
        if value is not None:
            self._on_hit(answer_kind(key))
            return value
        flight = self._in_flight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._build(key, version, produce))
            self._in_flight[key] = flight
        recent = self._cache.recent(key, self._while_rebuilding)
        if recent is None or not still_good(recent):
            return await asyncio.shield(flight)
        self._on_hit(answer_kind(key))
        return recent

    async def settled(self) -> None:
        """Wait for the builds under way (a clean stop, or a test that must see their end)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def _build(self, key: Hashable, version: Hashable, produce: Callable[[], T]) -> T:
        """On a worker thread: a big answer's protobuf building would otherwise hold up every
        call on the event loop."""

        def run() -> tuple[T, float]:
            started = time.perf_counter()
            value = produce()
            return value, time.perf_counter() - started

        try:
            loop = asyncio.get_running_loop()
            value, seconds = await loop.run_in_executor(self._executor, run)
            self._on_build(answer_kind(key))
            self._cache.put(key, version, value, build_seconds=seconds)
            return value
        finally:
            self._in_flight.pop(key, None)


@dataclass(frozen=True, slots=True)
class Loaded(Generic[V]):
    """A value read for answers to be made from, with the arrival time of the newest event
    it reflects, a number no other load has, which what is made from it is cached by, and
    when (on the monotonic clock) its read began."""

    value: V
    as_of: datetime | None
    serial: int
    read_at: float


@dataclass(frozen=True, slots=True)
class Made:
    """An answer made from a loaded value: its bytes, and the value's `as_of` and `read_at`
    (an answer standing in for a newer one says how current it is itself)."""

    data: bytes
    as_of: datetime | None
    read_at: float


class Answers:
    """Serialized answers, and the values several answers are made from (a month's board),
    each cached by the state version it was read at (see `Flights`).

    Big answers (a 10,000-driver ranking) are costly to build and serialize (bench/RESULTS.md);
    serving the same bytes until the state changes is what lets the API keep up.
    """

    def __init__(
        self,
        read_models: TimedReadModels,
        cache: ResponseCache[bytes],
        *,
        while_rebuilding: float = WHILE_REBUILDING_SECONDS,
        executor: Executor | None = None,
        statement_timeout: float = STATEMENT_TIMEOUT_SECONDS,
        values: ResponseCache[Loaded[Any]] | None = None,
        on_hit: Count = _uncounted,
        on_build: Count = _uncounted,
        clock: Monotonic = time.monotonic,
    ) -> None:
        """`cache`: the answers; `values`: what answers are made from (a few big ones).
        `on_hit` and `on_build` count, by the kind of answer or value, what was served from
        a cache and what was built."""
        self._clock = clock
        self._while_rebuilding = while_rebuilding
        self._read_models = read_models
        self._statement_timeout = statement_timeout
        flights = functools.partial(Flights, executor=executor, on_hit=on_hit, on_build=on_build)
        self._bytes: Flights[bytes] = flights(cache, while_rebuilding=while_rebuilding)
        self._values: Flights[Loaded[Any]] = flights(
            values or ResponseCache(max_entries=VALUES_KEPT), while_rebuilding=while_rebuilding
        )
        self._made: Flights[Made] = flights(
            ResponseCache(max_entries=VALUES_KEPT, fresh_enough=0.0, clock=clock),
            while_rebuilding=while_rebuilding,
        )
        self._serials = itertools.count()

    async def get(self, key: Hashable, version: Hashable, build: Build) -> bytes:
        """The serialized answer `build` makes from the read model."""
        read = self._reading(build)
        return await self._bytes.get(key, version, lambda: read().SerializeToString())

    async def value(
        self,
        key: Hashable,
        version: Hashable,
        load: Callable[[ReadModel], V],
        reflects: Sequence[str] = (),
    ) -> Loaded[V]:
        """A value read from the read model, for answers to be made from; its `as_of` is
        that of the state versions `reflects` names, read in the same snapshot."""

        def loaded(model: ReadModel) -> Loaded[V]:
            read_at = self._clock()
            as_of = newest_arrival(*model.state_versions(reflects).values())
            return Loaded(load(model), as_of, next(self._serials), read_at)

        value = await self._values.get(key, version, self._reading(loaded))
        return cast(Loaded[V], value)

    async def made(self, key: Hashable, source: Loaded[Any], make: Callable[[], Message]) -> Made:
        """The serialized answer `make` makes from `source` (no read), built on a worker
        thread once per source. While a newer source's answer is being made, callers get the
        previous source's (with that source's `as_of`) if the previous source was read within
        the staleness bound: converting a 10,000-driver month takes tens of milliseconds,
        which every caller would otherwise wait for twice a second under steady ingest."""

        def produce() -> Made:
            return Made(make().SerializeToString(), source.as_of, source.read_at)

        def young(made: Made) -> bool:
            return self._clock() - made.read_at < self._while_rebuilding

        return await self._made.get(key, source.serial, produce, still_good=young)

    async def settled(self) -> None:
        """Wait for the builds under way (a clean stop, or a test that must see their end)."""
        for flights in (self._bytes, self._values, self._made):
            await flights.settled()

    def _reading(self, load: Callable[[ReadModel], V]) -> Callable[[], V]:
        """`load` on a read model of its own, its statements bounded by the statement timeout
        of a build started now."""
        timeout = self._timeout()

        def read() -> V:
            with self._read_models(statement_timeout=timeout) as model:
                return load(model)

        return read

    def _timeout(self) -> float:
        """What is left of the call's deadline, at most the default. A build shared by
        several callers runs under the deadline of the one that started it."""
        deadline = CALL_DEADLINE.get()
        if deadline is None:
            return self._statement_timeout
        left = deadline - asyncio.get_running_loop().time()
        return max(0.001, min(self._statement_timeout, left))


class ResponseCache(Generic[T]):
    """Serialized responses (or the values they are made from) by request, valid while their
    state version is unchanged (or for a short window after it moved: see
    `FRESH_ENOUGH_SECONDS`)."""

    def __init__(
        self,
        max_entries: int = 512,
        fresh_enough: float = FRESH_ENOUGH_SECONDS,
        clock: Monotonic = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[Hashable, tuple[Hashable, float, T, float]] = OrderedDict()
        self._max = max_entries
        self._fresh_enough = fresh_enough
        self._clock = clock

    def get(self, key: Hashable, version: Hashable) -> T | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        built_version, built_at, data, window = entry
        if built_version != version and self._clock() - built_at >= window:
            return None
        self._entries.move_to_end(key)
        return data

    def recent(self, key: Hashable, max_age: float) -> T | None:
        """Whatever answer is cached for `key` if it is younger than `max_age` seconds."""
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[1] >= max_age:
            return None
        return entry[2]

    def put(
        self, key: Hashable, version: Hashable, data: T, build_seconds: float | None = None
    ) -> None:
        """`build_seconds`: what building `data` took (unknown: the whole window applies)."""
        window = self._fresh_enough
        if build_seconds is not None:
            window = min(window, BUILD_COST_FACTOR * build_seconds)
        _keep(self._entries, key, (version, self._clock(), data, window), self._max)


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
    """Responses made from cached answers or values, kept while those are the very same
    objects: a big ranking (two months) is joined once per new month answer instead of
    being copied anew, into freshly allocated memory, for every call, and a board's top is
    serialized once for all its watchers."""

    def __init__(self, max_entries: int = 512) -> None:
        self._entries: OrderedDict[Hashable, tuple[tuple[object, ...], bytes]] = OrderedDict()
        self._max = max_entries

    def get(self, key: Hashable, parts: tuple[object, ...], join: Callable[[], bytes]) -> bytes:
        entry = self._entries.get(key)
        if entry is not None and _same_objects(entry[0], parts):
            self._entries.move_to_end(key)
            return entry[1]
        data = join()
        _keep(self._entries, key, (parts, data), self._max)
        return data


def _same_objects(these: tuple[object, ...], those: tuple[object, ...]) -> bool:
    return len(these) == len(those) and all(a is b for a, b in zip(these, those, strict=True))


def _keep(entries: OrderedDict[Hashable, V], key: Hashable, value: V, max_entries: int) -> None:
    """Store `value` as the most recently used entry, letting the least recently used go."""
    entries[key] = value
    entries.move_to_end(key)
    while len(entries) > max_entries:
        entries.popitem(last=False)
