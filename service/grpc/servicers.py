"""Thin servicers: check readiness, translate the request, run the use case, translate back.

Handlers return either a protobuf message or bytes already serialized (from the response
cache); the method handlers below serialize whichever they get.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.message import Message
from sqlalchemy import Connection, Engine

from service.app import queries
from service.app.scopes import month_scope, profiles_scope
from service.clock import Clock
from service.domain.auth import Principal
from service.domain.errors import PodiumError, StateNotReady
from service.domain.ranking import Month, Profile
from service.domain.rules import Rules
from service.gen.podium.v1 import challenges_pb2, driver_ranking_pb2, paths_pb2, tasks_pb2
from service.grpc import convert
from service.grpc.auth import current_principal
from service.grpc.errors import abort, status_code_of
from service.grpc.freshness import (
    WHILE_REBUILDING_SECONDS,
    Assembled,
    Memo,
    ResponseCache,
    VersionWatcher,
)
from service.metrics import Metrics

RETRY_WHILE_CATCHING_UP = timedelta(seconds=2)

Reply = Message | bytes


@dataclass(frozen=True)
class QueryDeps:
    engine: Engine
    clock: Clock
    rules: Rules
    is_ready: Callable[[], bool]
    versions: VersionWatcher
    cache: ResponseCache
    metrics: Metrics
    in_flight: dict[tuple[Any, ...], asyncio.Future[bytes]] = field(default_factory=dict)
    """The build under way for each answer: at most one at a time, whatever its version."""
    assembled: Assembled = field(default_factory=Assembled)
    profiles: Memo[list[Profile]] = field(default_factory=Memo)
    """A ranking's profiles by (tenant, group, profiles version): a month's tallies change
    with every batch of trips, its drivers' profiles seldom."""

    async def cached(
        self, key: tuple[Any, ...], version: Hashable, build: Callable[[Connection], Message]
    ) -> bytes:
        """The serialized answer for `key` at a state version, built once however many calls
        ask for it at the same time. Read the version before calling: if a batch lands while
        the answer is built, the entry is already stale when stored, and is rebuilt.

        One build per answer at a time: under steady ingest the version moves every batch,
        and starting a build per version would run several at once, each slowing the others
        (and every call) down. While one runs, callers get the previous answer, or wait for
        this one if there is none; the next call after it lands builds the newer state."""
        data = self.cache.get(key, version)
        if data is not None:
            return data
        flight = self.in_flight.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._build(key, version, build))
            self.in_flight[key] = flight
        recent = self.cache.recent(key, WHILE_REBUILDING_SECONDS)
        return recent if recent is not None else await asyncio.shield(flight)

    async def _build(
        self, key: tuple[Any, ...], version: Hashable, build: Callable[[Connection], Message]
    ) -> bytes:
        """Query, convert and serialize on a worker thread: a big answer's protobuf building
        would otherwise hold up every call on the event loop."""

        def run() -> tuple[bytes, float]:
            started = time.perf_counter()
            with self.engine.connect() as connection:
                data = build(connection).SerializeToString()
            return data, time.perf_counter() - started

        try:
            data, seconds = await asyncio.to_thread(run)
            self.cache.put(key, version, data, build_seconds=seconds)
            return data
        finally:
            self.in_flight.pop(key, None)


Handler = Callable[[Any, Principal, QueryDeps], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    request: type[Message]
    handler: Handler


async def get_driver_ranking(
    request: driver_ranking_pb2.GetDriverRankingRequest, who: Principal, deps: QueryDeps
) -> Reply:
    """Each month's ranking is cached on its own, so the previous month (which rarely changes)
    is not rebuilt whenever a trip of the current month arrives."""
    tenant, group = who.tenant_id, request.group_label
    kind = queries.ranking_type(request.type)
    current = Month.of(deps.clock.now())
    profiles_version = deps.versions.version(profiles_scope(tenant))

    async def month(month: Month) -> bytes:
        key = ("month_ranking", tenant, kind, group, month)
        version = (profiles_version, deps.versions.version(month_scope(tenant, month)))

        def build(c: Connection) -> Message:
            people = deps.profiles.get(
                (tenant, group, profiles_version),
                lambda: queries.group_profiles(c, tenant, group),
            )
            answer = queries.month_ranking(c, tenant, kind, group, month, deps.rules, people)
            return convert.month_ranking_message(answer)

        return await deps.cached(key, version, build)

    months = (await month(current), await month(current.previous()))

    def join() -> bytes:
        head = driver_ranking_pb2.GetDriverRankingResponse(type=f"RANKING_TYPE_{kind.name}")
        return b"".join(
            (
                head.SerializeToString(),
                length_delimited(CURRENT_MONTH_FIELD, months[0]),
                length_delimited(PREVIOUS_MONTH_FIELD, months[1]),
            )
        )

    return deps.assembled.get(("driver_ranking", tenant, kind, group, current), months, join)


CURRENT_MONTH_FIELD = driver_ranking_pb2.GetDriverRankingResponse.CURRENTMONTH_FIELD_NUMBER
PREVIOUS_MONTH_FIELD = driver_ranking_pb2.GetDriverRankingResponse.PREVIOUSMONTH_FIELD_NUMBER


def length_delimited(field_number: int, payload: bytes) -> bytes:
    """A message field in protobuf's wire format, so cached sub-answers join without parsing."""
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


async def get_task(request: tasks_pb2.GetTaskRequest, who: Principal, deps: QueryDeps) -> Reply:
    tenant = who.tenant_id

    def build(c: Connection) -> Message:
        return convert.task_response(queries.get_task(c, tenant, request.task_id))

    key = ("task", tenant, request.task_id)
    return await deps.cached(key, deps.versions.version(tenant), build)


async def get_challenge_ranking(
    request: challenges_pb2.GetChallengeRankingRequest, who: Principal, deps: QueryDeps
) -> Reply:
    tenant = who.tenant_id
    key = ("challenge_ranking", tenant, request.challenge_id, request.group)

    def build(c: Connection) -> Message:
        answer = queries.challenge_ranking(
            c, tenant, request.challenge_id, request.group, deps.rules
        )
        return convert.challenge_ranking_response(answer)

    return await deps.cached(key, deps.versions.version(tenant), build)


async def get_challenge_progress(
    request: challenges_pb2.GetChallengeProgressRequest, who: Principal, deps: QueryDeps
) -> Reply:
    # Progress exists only once the challenge has ended, and time only moves on: a cached
    # answer stays right until the state changes.
    now, tenant = deps.clock.now(), who.tenant_id
    key = ("challenge_progress", tenant, request.challenge_id, request.group)

    def build(c: Connection) -> Message:
        answer = queries.challenge_progress(
            c, tenant, request.challenge_id, request.group, now, deps.rules
        )
        return convert.challenge_progress_response(answer)

    return await deps.cached(key, deps.versions.version(tenant), build)


async def get_path_session_stats(
    request: paths_pb2.GetPathSessionStatsRequest, who: Principal, deps: QueryDeps
) -> Reply:
    # Due dates and the session's start and end make the answer depend on the time too: it is
    # cached for the current second only.
    now, tenant = deps.clock.now(), who.tenant_id
    second = int(now.timestamp())
    key = ("path_stats", tenant, request.session_id, request.user_email_or_id, second)

    def build(c: Connection) -> Message:
        answer = queries.path_session_stats(
            c, tenant, request.session_id, request.user_email_or_id, now
        )
        return convert.path_stats_response(answer)

    return await deps.cached(key, deps.versions.version(tenant), build)


ROUTES: dict[str, dict[str, Route]] = {
    "podium.v1.DriverRankingService": {
        "GetDriverRanking": Route(driver_ranking_pb2.GetDriverRankingRequest, get_driver_ranking),
    },
    "podium.v1.ChallengeService": {
        "GetChallengeRanking": Route(
            challenges_pb2.GetChallengeRankingRequest, get_challenge_ranking
        ),
        "GetChallengeProgress": Route(
            challenges_pb2.GetChallengeProgressRequest, get_challenge_progress
        ),
    },
    "podium.v1.PathService": {
        "GetPathSessionStats": Route(paths_pb2.GetPathSessionStatsRequest, get_path_session_stats),
    },
    "podium.v1.TaskService": {
        "GetTask": Route(tasks_pb2.GetTaskRequest, get_task),
    },
}


def generic_handlers(deps: QueryDeps) -> list[grpc.GenericRpcHandler]:
    return [
        grpc.method_handlers_generic_handler(
            service,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    _behaviour(f"{service}/{name}", route, deps),
                    request_deserializer=route.request.FromString,
                    response_serializer=_serialize,
                )
                for name, route in methods.items()
            },
        )
        for service, methods in ROUTES.items()
    ]


def _serialize(reply: Reply) -> bytes:
    return reply if isinstance(reply, bytes) else reply.SerializeToString()


def _behaviour(
    method: str, route: Route, deps: QueryDeps
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Reply]]:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Reply:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if not deps.is_ready():
                raise StateNotReady(RETRY_WHILE_CATCHING_UP)
            return await route.handler(request, current_principal(), deps)
        except PodiumError as error:
            code = status_code_of(error)
            await abort(context, error)
        finally:
            deps.metrics.requests.labels(method, code.name).inc()
            deps.metrics.request_seconds.labels(method).observe(time.perf_counter() - started)

    return behaviour
