"""The answer cache: one for every answer the API gives.

It keeps two things, in one least-recently-used store under one budget of memory:
- values, by the versions of the state they reflect: what a declared query
  (`service.app.answers`) reads, a month's board or a task. A value whose versions moved is
  made anew from the one kept (`Query.update`: a board applies what changed) or read anew;
- bytes, by the values they were made from: a serialized answer (or a part of one) is made
  once per value, on a worker thread, and may reuse what the previous bytes of the same key
  kept (a board's serialized entries).

One build per key at a time, whatever the version: under steady ingest the version moves
every batch, and a build per version would run several at once, each slowing the others (and
every call) down. While one runs, callers get the previous value or bytes if they are recent
enough, or wait for this one.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, cast

from google.protobuf.message import Message

from service.app.answers import Query
from service.app.ports import ReadModel, StateVersion
from service.grpc.state_versions import newest_arrival

V = TypeVar("V")
T = TypeVar("T")

Monotonic = Callable[[], float]

WHILE_REBUILDING_SECONDS = 1.0
"""While the next answer is being built, callers get the previous one if it is younger than
this (`PODIUM_MAX_STALENESS_SECONDS`), rather than all waiting for the build."""

FRESH_ENOUGH_SECONDS = 0.5
"""A cached value younger than this is served even if the state moved on since: under steady
ingest a big answer is then made at most twice a second, and a query still reflects an event
within a second (batch commit + version poll + this)."""

BUILD_COST_FACTOR = 4
"""A value's own window is at most this many times what it took to build, so a cheap one is
made anew as soon as the state moves."""

BUDGET_BYTES = 256 * 2**20
"""What the cache may hold (`PODIUM_BOARD_CACHE_MB`): the least recently used values and
bytes leave first beyond it."""

BIG_VALUE_BYTES = 2**20
"""A value this big (a board of a thousand drivers or more) is reported as kept."""

STATEMENT_TIMEOUT_SECONDS = 10.0
"""The longest an answer's statements may run when its call has no deadline
(`PODIUM_STATEMENT_TIMEOUT_SECONDS`); a call's remaining deadline shortens it."""

CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "call_deadline", default=None
)
"""When the current call's deadline passes, in the event loop's time (None: no deadline);
set by `service.grpc.limits.CallLimits`."""

Count = Callable[[str], None]
"""Counts one event of an answer of a kind (the first part of its key: `month_board`, ...)."""


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


@dataclass(frozen=True, slots=True)
class Loaded(Generic[V]):
    """A value as read: the arrival time of the newest event it reflects, the versions it
    reflects (read in its read model's snapshot), a serial no other value or bytes have, and
    when (on the monotonic clock) its read began."""

    value: V
    as_of: datetime | None
    serial: int
    read_at: float
    versions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Made:
    """Bytes made from values: their `as_of` (the newest of theirs), their `read_at` (the
    oldest), a serial, and what the maker keeps for the next bytes of the same key."""

    data: bytes
    as_of: datetime | None
    serial: int
    read_at: float
    kept: object = None


Source = Loaded[Any] | Made


class Encoded(NamedTuple):
    """What a maker gives: the bytes, and what it keeps for the next ones of the same key."""

    data: bytes
    kept: object = None


Make = Callable[[object], Encoded]
"""Makes bytes, given what the previous bytes of the same key kept (None at first)."""


def message(make: Callable[[], Message]) -> Make:
    """A maker of one message, serialized."""
    return lambda _: Encoded(make().SerializeToString())


class _Entry(NamedTuple):
    version: Hashable
    stored_at: float
    item: Any
    window: float
    size: int
    build_seconds: float
    """The longest build of this key so far: a kept board updated in a few milliseconds keeps
    the window its first, whole read earned, rather than being made anew at every batch."""


class AnswerCache:
    def __init__(
        self,
        read_models: TimedReadModels,
        versions: Callable[[str], StateVersion],
        *,
        while_rebuilding: float = WHILE_REBUILDING_SECONDS,
        fresh_enough: float = FRESH_ENOUGH_SECONDS,
        budget_bytes: int = BUDGET_BYTES,
        executor: Executor | None = None,
        statement_timeout: float = STATEMENT_TIMEOUT_SECONDS,
        on_hit: Count = _uncounted,
        on_build: Count = _uncounted,
        on_big_value: Callable[[], None] = lambda: None,
        clock: Monotonic = time.monotonic,
    ) -> None:
        """`versions`: the state's versions as this instance knows them now (`StateVersions`).
        `on_hit` counts, by kind of answer, what was served from the cache (something
        standing in included), `on_build` what was built; `on_big_value` is told of a big
        value (a board) just kept, which lives long."""
        self._read_models = read_models
        self._versions = versions
        self._while_rebuilding = while_rebuilding
        self._fresh_enough = fresh_enough
        self._budget = budget_bytes
        self._executor = executor
        self._statement_timeout = statement_timeout
        self._on_hit, self._on_build = on_hit, on_build
        self._on_big_value = on_big_value
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._held = 0
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}
        self._serials = itertools.count(1)

    @property
    def held_bytes(self) -> int:
        """About what the cache holds now."""
        return self._held

    async def value(self, query: Query[V]) -> Loaded[V]:
        """The value `query` reads, for the versions this instance knows of what it
        reflects."""
        version = tuple(self._versions(key) for key in query.reflects)
        cache_key = ("value", query.key)
        found = self._fresh(cache_key, version)
        if found is not None:
            self._on_hit(answer_kind(query.key))
            return cast(Loaded[V], found)
        kept = self._entries.get(cache_key)
        previous = None if kept is None else cast(Loaded[V], kept.item)
        timeout = self._timeout()

        def build() -> tuple[Loaded[V], int]:
            with self._read_models(statement_timeout=timeout) as model:
                read_at = self._clock()
                states = model.state_versions(query.reflects)
                now = {key: state.number for key, state in states.items()}
                value = None
                if previous is not None:
                    value = query.update(model, previous.value, previous.versions, now)
                if value is None:
                    value = query.load(model)
            loaded = Loaded(value, newest_arrival(*states.values()), self._serial(), read_at, now)
            return loaded, query.size(value)

        return cast(Loaded[V], await self._get(query.key, cache_key, version, build))

    async def made(
        self, key: Hashable, sources: Sequence[Source], make: Make, *, inline: bool = False
    ) -> Made:
        """The bytes `make` makes from `sources` (values, or bytes made before), made once
        for those very sources. While newer ones are made, callers get the previous bytes if
        the values they came from were read within the staleness bound. `inline`: made at
        once on the event loop (a join of bytes made before, cheaper than a thread's turn)."""
        version = tuple(source.serial for source in sources)
        cache_key = ("made", key)
        found = self._fresh(cache_key, version)
        if found is not None:
            self._on_hit(answer_kind(key))
            return cast(Made, found)
        kept = self._entries.get(cache_key)
        previous = None if kept is None else cast(Made, kept.item).kept
        as_of = max((s.as_of for s in sources if s.as_of is not None), default=None)
        read_at = min((s.read_at for s in sources), default=self._clock())

        def build() -> tuple[Made, int]:
            data, keeps = make(previous)
            size = len(data) * (2 if keeps is not None else 1)
            return Made(data, as_of, self._serial(), read_at, keeps), size

        if inline:
            made, size = build()
            self._on_build(answer_kind(key))
            self._put(cache_key, _Entry(version, self._clock(), made, 0.0, size, 0.0))
            return made

        def young(_: Any) -> bool:
            """The sources asked for are recent: until their bytes are made, the previous
            ones (saying their own `as_of`) stand for them."""
            return self._clock() - read_at < self._while_rebuilding

        return cast(Made, await self._get(key, cache_key, version, build, young, exact=True))

    async def settled(self) -> None:
        """Wait for the builds under way (a clean stop, or a test that must see their end)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def _get(
        self,
        key: Hashable,
        cache_key: Hashable,
        version: Hashable,
        build: Callable[[], tuple[T, int]],
        still_good: Callable[[Any], bool] = lambda _: True,
        *,
        exact: bool = False,
    ) -> T:
        """The item for `cache_key` at `version`, built (once at a time) when not kept; the
        kept one stands in while it is built if it is recent and `still_good`."""
        flight = self._in_flight.get(cache_key)
        if flight is None:
            flight = asyncio.ensure_future(self._build(key, cache_key, version, build, exact))
            self._in_flight[cache_key] = flight
        entry = self._entries.get(cache_key)
        if (
            entry is None
            or self._clock() - entry.stored_at >= self._while_rebuilding
            or not still_good(entry.item)
        ):
            return cast(T, await asyncio.shield(flight))
        self._on_hit(answer_kind(key))
        return cast(T, entry.item)

    async def _build(
        self,
        key: Hashable,
        cache_key: Hashable,
        version: Hashable,
        build: Callable[[], tuple[T, int]],
        exact: bool,
    ) -> T:
        """On a worker thread: a big answer's reading and serializing would otherwise hold up
        every call on the event loop."""

        def run() -> tuple[T, int, float]:
            started = self._clock()
            item, size = build()
            return item, size, self._clock() - started

        try:
            loop = asyncio.get_running_loop()
            item, size, seconds = await loop.run_in_executor(self._executor, run)
            self._on_build(answer_kind(key))
            before = self._entries.get(cache_key)
            seconds = max(seconds, 0.0 if before is None else before.build_seconds)
            window = 0.0 if exact else min(self._fresh_enough, BUILD_COST_FACTOR * seconds)
            self._put(cache_key, _Entry(version, self._clock(), item, window, size, seconds))
            if not exact and size >= BIG_VALUE_BYTES:
                self._on_big_value()
            return item
        finally:
            self._in_flight.pop(cache_key, None)

    def _fresh(self, cache_key: Hashable, version: Hashable) -> Any:
        """The item kept for `cache_key` if it is of `version`, or young enough to stand for
        it; None otherwise."""
        entry = self._entries.get(cache_key)
        if entry is None:
            return None
        if entry.version != version and self._clock() - entry.stored_at >= entry.window:
            return None
        self._entries.move_to_end(cache_key)
        return entry.item

    def _put(self, cache_key: Hashable, entry: _Entry) -> None:
        """Keep `entry` as the most recently used, letting the least recently used go while
        the cache holds more than its budget (the newest entry stays whatever its size)."""
        old = self._entries.pop(cache_key, None)
        if old is not None:
            self._held -= old.size
        self._entries[cache_key] = entry
        self._held += entry.size
        while self._held > self._budget and len(self._entries) > 1:
            _, gone = self._entries.popitem(last=False)
            self._held -= gone.size

    def _serial(self) -> int:
        return next(self._serials)

    def _timeout(self) -> float:
        """What is left of the call's deadline, at most the default. A build shared by
        several callers runs under the deadline of the one that started it."""
        deadline = CALL_DEADLINE.get()
        if deadline is None:
            return self._statement_timeout
        left = deadline - asyncio.get_running_loop().time()
        return max(0.001, min(self._statement_timeout, left))
