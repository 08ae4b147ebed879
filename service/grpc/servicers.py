"""Thin servicers: each method checks readiness, converts the request, runs one use case
through the answer cache, and converts the answer. The API key was checked by the
interceptor; errors become statuses in `service.grpc.errors`.

Handlers return serialized bytes (the answer cache keeps bytes); the method handlers send
them as they are.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import grpc
from google.protobuf.message import Message
from podium.v1 import challenges_pb2, driver_ranking_pb2, paths_pb2, tasks_pb2

from service.app import queries
from service.app.ports import ReadModel, StorageUnavailable
from service.app.state_versions import month_key, profiles_key, tenant_key
from service.clock import Clock
from service.domain import boards
from service.domain.auth import Principal
from service.domain.errors import InternalError, PodiumError, StateNotReady, StorageDown
from service.domain.events import ScoreKind
from service.domain.ranking import Month, Profile
from service.domain.rules import Rules
from service.grpc import convert, page_tokens
from service.grpc.answers import Answers, Assembled, Loaded, Memo
from service.grpc.auth import current_principal
from service.grpc.errors import abort
from service.grpc.state_versions import StateVersions, newest_arrival
from service.grpc.watchers import Watchers, moved_or_after

log = logging.getLogger(__name__)

RETRY_WHILE_CATCHING_UP = timedelta(seconds=2)
RETRY_WHILE_STORAGE_DOWN = timedelta(seconds=1)


WATCH_INTERVAL_SECONDS = 1.0
"""A watcher gets at most one message a second."""


@dataclass(frozen=True)
class QueryDeps:
    answers: Answers
    versions: StateVersions
    clock: Clock
    rules: Rules
    is_ready: Callable[[], bool]
    profiles: Memo[list[Profile]] = field(default_factory=Memo)
    """A ranking's profiles by (tenant, group, profiles version): a month's tallies change
    with every batch of trips, its drivers' profiles seldom."""
    assembled: Assembled = field(default_factory=Assembled)
    watchers: Watchers = field(default_factory=Watchers)
    watch_interval: float = WATCH_INTERVAL_SECONDS


Send = Callable[[bytes], Awaitable[None]]
Handler = Callable[[Any, Principal, QueryDeps], Awaitable[bytes]]
StreamHandler = Callable[[Any, Principal, QueryDeps, Send], Awaitable[None]]
Run = Callable[[Any, Principal, QueryDeps, Send], Awaitable[bytes | None]]


# --- driver rankings ---------------------------------------------------------------------------


async def month_board(
    deps: QueryDeps, tenant: str, kind: ScoreKind, group: str, month: Month, now: datetime
) -> Loaded[queries.MonthBoard]:
    """A month's board, read once per state version for every method and caller that asks
    (the read counts the month's tallies and reads its drivers' profiles; profiles change far
    less often, so they are kept apart by their own version)."""
    membership = queries.membership_as_of(month.freezes_at(deps.rules.late_event_grace), now)
    profiles = deps.versions.state(profiles_key(tenant))
    tallies = deps.versions.state(month_key(tenant, month))

    def load(read: ReadModel) -> queries.MonthBoard:
        people = deps.profiles.get(
            (tenant, group, membership, profiles),
            lambda: queries.group_profiles(read, tenant, group, membership),
        )
        return queries.month_board(read, tenant, kind, group, month, deps.rules, now, people)

    key = ("month_board", tenant, kind, group, month, membership)
    reflects = (profiles_key(tenant), month_key(tenant, month))
    return await deps.answers.value(key, (profiles, tallies), load, reflects)


async def get_driver_ranking(
    request: driver_ranking_pb2.GetDriverRankingRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """Each month is serialized on its own, so the previous month (which rarely changes) is
    not serialized again whenever a trip of the current month arrives."""
    tenant, group, kind = who.tenant_id, request.group_label, convert.ranking_type(request.type)
    now = deps.clock.now()
    months = [
        await month_board(deps, tenant, kind, group, month, now)
        for month in queries.ranking_months(now)
    ]
    current, previous = [
        await deps.answers.made(
            ("month", tenant, kind, group, loaded.value.month),
            loaded,
            functools.partial(convert.month_ranking_message, loaded.value.ranking),
        )
        for loaded in months
    ]
    as_of = max((m.as_of for m in (current, previous) if m.as_of is not None), default=None)
    return deps.assembled.get(
        ("driver_ranking", tenant, kind, group, months[0].value.month, as_of),
        (current.data, previous.data),
        lambda: convert.driver_ranking_bytes(kind, current.data, previous.data, as_of),
    )


async def list_month_ranking(
    request: driver_ranking_pb2.ListMonthRankingRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """A page is cut from the month's board (a binary search and a slice), never read."""
    tenant, group, kind = who.tenant_id, request.group_label, convert.ranking_type(request.type)
    size = boards.checked_page_size(request.page_size)
    now = deps.clock.now()
    asked_month = (request.month.year, request.month.month_number)
    month_asked = asked_month if request.HasField("month") else None
    asked = (tenant, kind, group, month_asked, request.not_ranked)
    after = None
    if request.page_token:
        key_length = boards.OTHER_KEY_LENGTH if request.not_ranked else boards.RANKED_KEY_LENGTH
        continued = page_tokens.decode(request.page_token, asked, key_length)
        month, after = continued.month, continued.after
    else:
        month = convert.month_of(request, now)
    loaded = await month_board(deps, tenant, kind, group, month, now)
    page = boards.page(loaded.value.board, not_ranked=request.not_ranked, after=after, size=size)
    token = "" if page.after is None else page_tokens.encode(asked, month, page.after)
    answer = convert.month_page_response(kind, loaded.value, page, token)
    return convert.stamped(answer, loaded.as_of).SerializeToString()


async def get_driver_rank(
    request: driver_ranking_pb2.GetDriverRankRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """A look-up in the month's board, whatever its size."""
    tenant, group, kind = who.tenant_id, request.group_label, convert.ranking_type(request.type)
    neighbors = boards.checked_neighbors(request.neighbors)
    now = deps.clock.now()
    month = convert.month_of(request, now)
    loaded = await month_board(deps, tenant, kind, group, month, now)
    found = queries.driver_rank(loaded.value, request.user_id, neighbors, deps.rules)
    answer = convert.driver_rank_response(kind, loaded.value, found)
    return convert.stamped(answer, loaded.as_of).SerializeToString()


async def watch_driver_ranking(
    request: driver_ranking_pb2.WatchDriverRankingRequest,
    who: Principal,
    deps: QueryDeps,
    send: Send,
) -> None:
    """The watchers of one top share one look-out (`service.grpc.watchers`) reading the same
    cached board: a thousand watchers cost what one does. A message goes out when the top or
    the ranked count differs from the last one this watcher had (a newer `asOf` alone is no
    change), a second apart at least."""
    tenant, group, kind = who.tenant_id, request.group_label, convert.ranking_type(request.type)
    top = boards.checked_top(request.top)
    seen: list[tuple[Loaded[queries.MonthBoard], bytes, bytes]] = []

    async def look() -> tuple[bytes, bytes]:
        now = deps.clock.now()
        loaded = await month_board(deps, tenant, kind, group, Month.of(now), now)
        if not seen or seen[-1][0] is not loaded:
            content = convert.top_drivers_response(kind, loaded.value, top).SerializeToString()
            stamp = convert.stamped(driver_ranking_pb2.WatchDriverRankingResponse(), loaded.as_of)
            seen[:] = [(loaded, content, content + stamp.SerializeToString())]
        return seen[-1][1], seen[-1][2]

    async def wake() -> None:
        await moved_or_after(deps.versions.moved_since(deps.versions.generation))

    async with deps.watchers.watch(("top", tenant, kind, group, top), look, wake) as watching:
        while True:
            await send(await watching.next())
            await asyncio.sleep(deps.watch_interval)


# --- challenges --------------------------------------------------------------------------------


async def challenge_board(
    deps: QueryDeps, tenant: str, challenge_id: str, group: str, now: datetime
) -> Loaded[queries.ChallengeBoard]:
    """A challenge's groups are read as of its freeze once it froze: the board is read again
    at least once a minute, so the freeze shows within a minute even if nothing else changes."""
    state = deps.versions.state(tenant_key(tenant))

    def load(read: ReadModel) -> queries.ChallengeBoard:
        return queries.challenge_board(read, tenant, challenge_id, group, now, deps.rules)

    minute = int(now.timestamp()) // 60
    key = ("challenge_board", tenant, challenge_id, group, minute)
    return await deps.answers.value(key, state, load, [tenant_key(tenant)])


async def get_challenge_ranking(
    request: challenges_pb2.GetChallengeRankingRequest, who: Principal, deps: QueryDeps
) -> bytes:
    tenant, challenge_id, group = who.tenant_id, request.challenge_id, request.group
    loaded = await challenge_board(deps, tenant, challenge_id, group, deps.clock.now())

    def make() -> Message:
        answer = convert.challenge_ranking_response(loaded.value.ranking)
        return convert.stamped(answer, loaded.as_of)

    key = ("challenge_ranking", tenant, challenge_id, group)
    return (await deps.answers.made(key, loaded, make)).data


async def get_challenge_rank(
    request: challenges_pb2.GetChallengeRankRequest, who: Principal, deps: QueryDeps
) -> bytes:
    tenant, challenge_id, group = who.tenant_id, request.challenge_id, request.group
    neighbors = boards.checked_neighbors(request.neighbors)
    loaded = await challenge_board(deps, tenant, challenge_id, group, deps.clock.now())
    found = queries.challenge_rank(loaded.value, request.user_id, neighbors)
    answer = convert.challenge_rank_response(loaded.value, found)
    return convert.stamped(answer, loaded.as_of).SerializeToString()


async def get_challenge_progress(
    request: challenges_pb2.GetChallengeProgressRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """Progress exists only once the challenge has ended; its groups are read as of the
    freeze once it froze (rebuilt at least once a minute, as the ranking)."""
    now, tenant = deps.clock.now(), who.tenant_id
    state = deps.versions.state(tenant_key(tenant))

    def build(read: ReadModel) -> Message:
        answer = queries.challenge_progress(
            read, tenant, request.challenge_id, request.group, now, deps.rules
        )
        return convert.stamped(convert.challenge_progress_response(answer), arrival(read, tenant))

    minute = int(now.timestamp()) // 60
    key = ("challenge_progress", tenant, request.challenge_id, request.group, minute)
    return await deps.answers.get(key, state, build)


def arrival(read: ReadModel, tenant: str) -> datetime | None:
    """The arrival time of the tenant's newest event in the read model's snapshot: what the
    answer's other reads reflect."""
    return newest_arrival(*read.state_versions([tenant_key(tenant)]).values())


# --- tasks and paths ---------------------------------------------------------------------------


async def get_task(request: tasks_pb2.GetTaskRequest, who: Principal, deps: QueryDeps) -> bytes:
    tenant = who.tenant_id
    state = deps.versions.state(tenant_key(tenant))

    def build(read: ReadModel) -> Message:
        answer = convert.task_response(queries.get_task(read, tenant, request.task_id))
        return convert.stamped(answer, arrival(read, tenant))

    return await deps.answers.get(("task", tenant, request.task_id), state, build)


async def get_path_session_stats(
    request: paths_pb2.GetPathSessionStatsRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """Due dates and the session's start and end make the answer depend on the time too: it
    is cached for the current second only."""
    now, tenant = deps.clock.now(), who.tenant_id
    state = deps.versions.state(tenant_key(tenant))

    def build(read: ReadModel) -> Message:
        answer = queries.path_session_stats(
            read, tenant, request.session_id, request.user_email_or_id, now
        )
        return convert.stamped(convert.path_stats_response(answer), arrival(read, tenant))

    second = int(now.timestamp())
    key = ("path_stats", tenant, request.session_id, request.user_email_or_id, second)
    return await deps.answers.get(key, state, build)


# --- routing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    request: type[Message]
    run: Run
    """Answers the request (a unary method), or sends its messages (a streaming one)."""
    streaming: bool = False


def unary(request: type[Message], handler: Handler) -> Route:
    async def run(request: Any, who: Principal, deps: QueryDeps, send: Send) -> bytes:
        return await handler(request, who, deps)

    return Route(request, run)


def streaming(request: type[Message], handler: StreamHandler) -> Route:
    return Route(request, handler, streaming=True)


ROUTES: dict[str, dict[str, Route]] = {
    "podium.v1.DriverRankingService": {
        "GetDriverRanking": unary(driver_ranking_pb2.GetDriverRankingRequest, get_driver_ranking),
        "ListMonthRanking": unary(driver_ranking_pb2.ListMonthRankingRequest, list_month_ranking),
        "GetDriverRank": unary(driver_ranking_pb2.GetDriverRankRequest, get_driver_rank),
        "WatchDriverRanking": streaming(
            driver_ranking_pb2.WatchDriverRankingRequest, watch_driver_ranking
        ),
    },
    "podium.v1.ChallengeService": {
        "GetChallengeRanking": unary(
            challenges_pb2.GetChallengeRankingRequest, get_challenge_ranking
        ),
        "GetChallengeRank": unary(challenges_pb2.GetChallengeRankRequest, get_challenge_rank),
        "GetChallengeProgress": unary(
            challenges_pb2.GetChallengeProgressRequest, get_challenge_progress
        ),
    },
    "podium.v1.PathService": {
        "GetPathSessionStats": unary(paths_pb2.GetPathSessionStatsRequest, get_path_session_stats),
    },
    "podium.v1.TaskService": {
        "GetTask": unary(tasks_pb2.GetTaskRequest, get_task),
    },
}


def generic_handlers(deps: QueryDeps) -> list[grpc.GenericRpcHandler]:
    return [
        grpc.method_handlers_generic_handler(
            service,
            {
                name: _method_handler(f"{service}/{name}", route, deps)
                for name, route in methods.items()
            },
        )
        for service, methods in ROUTES.items()
    ]


def _method_handler(method: str, route: Route, deps: QueryDeps) -> grpc.RpcMethodHandler[Any, Any]:
    """Responses are sent as the bytes the handlers give (already serialized)."""
    make = (
        grpc.unary_stream_rpc_method_handler
        if route.streaming
        else grpc.unary_unary_rpc_method_handler
    )
    return make(
        _behaviour(method, route, deps),
        request_deserializer=route.request.FromString,
        response_serializer=bytes,
    )


def _behaviour(
    method: str, route: Route, deps: QueryDeps
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes | None]]:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> bytes | None:
        try:
            if not deps.is_ready():
                raise StateNotReady(RETRY_WHILE_CATCHING_UP)
            return await route.run(request, current_principal(), deps, context.write)
        except PodiumError as error:
            await abort(context, error)
        except StorageUnavailable as failure:
            error_id = uuid.uuid4().hex[:16]
            log.warning(
                "storage unavailable %s in %s (key %s): %s", error_id, method, _key(), failure
            )
            await abort(context, StorageDown(error_id, RETRY_WHILE_STORAGE_DOWN))
        except Exception:
            error_id = uuid.uuid4().hex[:16]
            log.exception("internal error %s in %s (key %s)", error_id, method, _key())
            await abort(context, InternalError(error_id))

    return behaviour


def _key() -> str:
    """The calling key's id, for the log (all an operator has to find the caller by)."""
    return current_principal().key_id or "-"
