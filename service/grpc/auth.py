"""The `x-api-key` interceptor: who calls, for which tenant, with which scopes, and at what
rate (docs/rules.md#api-keys).

Health and reflection answer without a key. The principal reaches the servicers through a
context variable set around the method's behaviour. Keys are looked up through a bounded
cache; a revoked key is refused once the keys' state version moves (API instances poll it
every tenth of a second) and at the latest when its cache entry ends; an expired one at its
expiry, checked at every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import grpc

from service.clock import Clock
from service.domain.auth import ApiKey, Principal, hash_key, well_formed
from service.domain.errors import (
    FeatureDisabled,
    InternalError,
    PodiumError,
    RateLimited,
    Unauthenticated,
)
from service.grpc.errors import abort
from service.grpc.intercept import (
    Behaviour,
    Context,
    Continuation,
    Handler,
    around,
    is_query,
    metadata_value,
    service_of,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

API_KEY_HEADER = "x-api-key"

SCOPE_OF_SERVICE = {
    "podium.v1.DriverRankingService": "ranking",
    "podium.v1.ChallengeService": "challenges",
    "podium.v1.TaskService": "tasks",
    "podium.v1.PathService": "paths",
}

CURRENT_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")

Monotonic = Callable[[], float]
Run = Callable[[Callable[[], T]], Awaitable[T]]
"""Runs a blocking function off the event loop (on the API's own workers)."""

KEY_CACHE_ENTRIES = 10_000
"""Keys remembered at most, unknown ones included; the least recently used go first."""
KNOWN_KEY_SECONDS = 60.0
"""How long a stored key's record is trusted without asking the database again. Revocation
does not wait for it: it moves the keys' version, which empties the cache."""
UNKNOWN_KEY_SECONDS = 5.0
"""How long an unknown key is remembered (creating a key also empties the cache)."""
REFUSAL_DELAY_SECONDS = 1.0
"""An unknown, revoked or expired key is refused after this long: a client trying keys one
after the other (a flood of random keys) then costs the instance a sleeping call a second
each rather than all it can answer. A call with a usable key never waits."""
REFUSAL_MARGIN_SECONDS = 0.25
"""A refusal's delay ends this long before the call's deadline at the latest, so that the
caller gets UNAUTHENTICATED, not DEADLINE_EXCEEDED: room for the answer to travel back and
for a busy instance."""
MAX_DELAYED_REFUSALS = 1_000
"""Refusals waiting out their delay at most; beyond, refusals answer at once (the delay
must not become a way to pile up calls in memory)."""
STALE_VERSIONS_SECONDS = 4.0
"""When the keys' version could not be read for this long, the cache is not trusted (every
call asks the database): a revocation then still reaches this instance within 5 s."""


def current_principal() -> Principal:
    return CURRENT_PRINCIPAL.get()


async def _in_thread(work: Callable[[], T]) -> T:
    return await asyncio.to_thread(work)


@dataclass(frozen=True, slots=True)
class _Entry:
    key: ApiKey | None
    generation: int
    until: float


class KeyCache:
    """Presented keys and what the database said of them, bounded in size and time, unknown
    keys included. Entries are kept by the key's SHA-256, never the key itself; a string not
    shaped like a key is refused without a look-up or an entry; concurrent look-ups of one
    key share one query."""

    def __init__(
        self,
        find: Callable[[str], ApiKey | None],
        generation: Callable[[], int | None] = lambda: 0,
        *,
        run: Run[ApiKey | None] = _in_thread,
        max_entries: int = KEY_CACHE_ENTRIES,
        known_seconds: float = KNOWN_KEY_SECONDS,
        unknown_seconds: float = UNKNOWN_KEY_SECONDS,
        clock: Monotonic = time.monotonic,
    ) -> None:
        """`generation`: the keys' state version, or None when it may be stale."""
        self._find = find
        self._generation = generation
        self._run = run
        self._max = max_entries
        self._known_seconds = known_seconds
        self._unknown_seconds = unknown_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[ApiKey | None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def key(self, presented: str) -> ApiKey | None:
        """The stored key a caller presented, usable or not; None if there is none."""
        if not well_formed(presented):
            return None
        digest = hash_key(presented)
        generation = self._generation()
        entry = self._entries.get(digest)
        if entry is not None and entry.generation == generation and self._clock() < entry.until:
            self._entries.move_to_end(digest)
            return entry.key
        flight = self._in_flight.get(digest)
        if flight is None:
            flight = asyncio.ensure_future(self._look_up(presented, digest, generation))
            self._in_flight[digest] = flight
        return await asyncio.shield(flight)

    async def _look_up(self, presented: str, digest: str, generation: int | None) -> ApiKey | None:
        try:
            found = await self._run(lambda: self._find(presented))
        finally:
            self._in_flight.pop(digest, None)
        if generation is not None:
            seconds = self._known_seconds if found else self._unknown_seconds
            self._entries[digest] = _Entry(found, generation, self._clock() + seconds)
            self._entries.move_to_end(digest)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return found


class KeyUses:
    """When each key was last used, written at most once a minute per key and off the
    request path: a call only notes it in memory; `flush` writes what is due."""

    def __init__(
        self,
        record: Callable[[Mapping[str, datetime]], None],
        *,
        run: Run[None] = _in_thread,
        every: timedelta = timedelta(minutes=1),
    ) -> None:
        self._record = record
        self._run = run
        self._every = every
        self._pending: dict[str, datetime] = {}
        self._written: dict[str, datetime] = {}

    def used(self, key_id: str, now: datetime) -> None:
        written = self._written.get(key_id)
        if written is None or now - written >= self._every:
            self._pending[key_id] = now

    async def flush(self) -> None:
        due, self._pending = self._pending, {}
        if not due:
            return
        try:
            await self._run(lambda: self._record(due))
        except Exception:
            log.warning("could not record when %d key(s) were last used", len(due), exc_info=True)
            for key_id, at in due.items():
                self._pending.setdefault(key_id, at)
            return
        latest = max(due.values())
        self._written = {
            k: at for k, at in self._written.items() if latest - at < self._every
        } | due

    async def run(self, every_seconds: float = 5.0) -> None:
        """Flush every few seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(every_seconds)
                await self.flush()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush())


class TokenBuckets:
    """A token bucket per key: `rate` calls a second, in bursts of up to `burst` calls (a
    rate of 0: no limit). Buckets exist only for stored keys, and the least recently used
    go beyond `max_keys`."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Monotonic = time.monotonic,
        max_keys: int = KEY_CACHE_ENTRIES,
    ) -> None:
        self._rate = rate
        self._burst = max(1.0, rate if burst is None else burst)
        self._clock = clock
        self._max = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key_id: str) -> float:
        """Take a token: 0 when the call may go on, else the seconds until one is there."""
        if self._rate <= 0:
            return 0.0
        now = self._clock()
        tokens, at = self._buckets.get(key_id, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1:
            tokens -= 1
            wait = 0.0
        else:
            wait = (1 - tokens) / self._rate
        self._buckets[key_id] = (tokens, now)
        self._buckets.move_to_end(key_id)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return wait


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates, checks the scope, then the key's rate; sets the principal."""

    def __init__(
        self,
        keys: KeyCache,
        clock: Clock,
        rates: TokenBuckets | None = None,
        uses: KeyUses | None = None,
        refusal_delay: float = REFUSAL_DELAY_SECONDS,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._rates = rates or TokenBuckets(0)
        self._uses = uses
        self._refusal_delay = refusal_delay
        self._delayed = 0
        self._logged: dict[str, datetime] = {}
        """When a stored key's refusal was last logged (stored keys only: bounded)."""

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None or not is_query(details):
            return handler
        scope = SCOPE_OF_SERVICE.get(service_of(details.method))
        if scope is None:
            return handler
        presented = metadata_value(details.invocation_metadata, API_KEY_HEADER)
        return around(handler, lambda behaviour: self._checked(behaviour, scope, presented))

    def _checked(self, behaviour: Behaviour, scope: str, presented: str | None) -> Behaviour:
        async def as_principal(request: Any, context: Context) -> Any:
            try:
                principal = await self._principal(presented)
            except Exception:  # the key could not be looked up (the database is away)
                error_id = uuid.uuid4().hex[:16]
                log.exception("internal error %s looking a key up", error_id)
                await abort(context, InternalError(error_id))
            error = self._refusal(principal, scope)
            if principal is None:
                await self._delay_refusal(context.time_remaining())
            if error is not None:
                await abort(context, error)
            assert principal is not None
            token = CURRENT_PRINCIPAL.set(principal)
            try:
                return await behaviour(request, context)
            finally:
                CURRENT_PRINCIPAL.reset(token)

        return as_principal

    async def _delay_refusal(self, time_left: float | None) -> None:
        """Wait out the refusal's delay, ending before the call's deadline (`time_left`)."""
        delay = self._refusal_delay
        if time_left is not None:
            delay = min(delay, time_left - REFUSAL_MARGIN_SECONDS)
        if delay <= 0 or self._delayed >= MAX_DELAYED_REFUSALS:
            return
        self._delayed += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self._delayed -= 1

    async def _principal(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        key = await self._keys.key(presented)
        now = self._clock.now()
        if key is None:
            return None
        if not key.usable(now):
            self._note_refused(key, now)
            return None
        if self._uses is not None:
            self._uses.used(key.key_id, now)
        return key.principal

    def _note_refused(self, key: ApiKey, now: datetime) -> None:
        """Log a stored key's refusal by its id, once a minute per key at most."""
        last = self._logged.get(key.key_id)
        if last is not None and now - last < timedelta(minutes=1):
            return
        self._logged[key.key_id] = now
        why = "revoked" if key.revoked_at is not None else "expired"
        log.info("refused key %s of tenant %s: %s", key.key_id, key.tenant_id, why)

    def _refusal(self, principal: Principal | None, scope: str) -> PodiumError | None:
        if principal is None:
            return Unauthenticated()
        if scope not in principal.scopes:
            return FeatureDisabled(scope)
        wait = self._rates.take(principal.key_id)
        if wait > 0:
            return RateLimited(timedelta(seconds=wait))
        return None
