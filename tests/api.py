"""The gRPC API in process over stand-in ports, for tests of what the server layer does
(limits, keys, errors, TLS) without a broker or a database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import grpc

from service.app.ports import ReadModel
from service.domain.auth import SCOPES, ApiKey
from service.domain.rules import Rules
from service.domain.standings import Thresholds
from service.grpc.auth import KeyCache, TokenBuckets
from service.grpc.cache import AnswerCache, TimedReadModels
from service.grpc.server import Guard, create_server
from service.grpc.servicers import QueryDeps
from service.grpc.state_versions import StateVersions
from service.grpc.watchers import Watchers
from service.metrics import Metrics

NOW = datetime(2026, 11, 20, tzinfo=UTC)
KEY = "pod_0123456789abcdef_" + "k" * 43
"""A well-formed key, known to `known_key`."""
TENANT = "acme"


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


def known_key(
    scopes: frozenset[str] = frozenset(SCOPES), expires_at: datetime | None = None
) -> Callable[[str], ApiKey | None]:
    """Finds `KEY` only, as a key of `TENANT` with these scopes."""
    stored = ApiKey("0123456789abcdef", TENANT, scopes, NOW - timedelta(days=1), expires_at)

    def find(key: str) -> ApiKey | None:
        return stored if key == KEY else None

    return find


@contextlib.contextmanager
def empty_read_model(statement_timeout: float | None = None) -> Iterator[ReadModel]:
    """A read model with nothing in it for any tenant."""
    yield cast(ReadModel, _Empty())


EMPTY: dict[str, Any] = {
    "known_groups": frozenset(),
    "profiles": [],
    "month_tallies": {},
    "challenge_entries": [],
    "state_versions": {},
}
"""What `_Empty` answers (None for anything else: nothing found)."""


class _Empty:
    def __getattr__(self, name: str) -> Any:
        def nothing(*args: Any) -> Any:
            return EMPTY.get(name)

        return nothing


def query_deps(
    read_models: TimedReadModels = empty_read_model,
    *,
    clock: Clock | None = None,
    versions: StateVersions | None = None,
    watchers: Watchers | None = None,
    watch_interval: float = 1.0,
    is_ready: Callable[[], bool] = lambda: True,
) -> QueryDeps:
    versions = versions or StateVersions(dict)
    return QueryDeps(
        answers=AnswerCache(read_models, versions.state),
        versions=versions,
        clock=clock or Clock(),
        rules=Rules(Thresholds(5, Decimal(20)), timedelta(hours=24)),
        is_ready=is_ready,
        watchers=watchers or Watchers(),
        watch_interval=watch_interval,
    )


def guard(
    find: Callable[[str], ApiKey | None] | None = None,
    *,
    clock: Clock | None = None,
    rate: float = 0.0,
    refusal_delay: float = 0.0,
    metrics: Metrics | None = None,
    **limits: Any,
) -> Guard:
    """Refusals of keys answer at once unless `refusal_delay` is given."""
    return Guard(
        keys=KeyCache(find or known_key()),
        clock=clock or Clock(),
        rates=TokenBuckets(rate),
        metrics=metrics or Metrics(),
        refusal_delay=refusal_delay,
        **limits,
    )


@contextlib.asynccontextmanager
async def api(
    deps: QueryDeps | None = None,
    gate: Guard | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> AsyncIterator[int]:
    """A running API on a free port of 127.0.0.1; yields the port."""
    server, port, _ = create_server(
        "127.0.0.1:0", (deps or query_deps(), gate or guard()), credentials
    )
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


@contextlib.asynccontextmanager
async def channel_to(port: int) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
