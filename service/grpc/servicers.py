"""Thin servicers: each method checks readiness, converts the request into a declared query
of `service.app.answers`, asks the answer cache (`service.grpc.cache`) for its value, and
converts the answer. The API key was checked by the interceptor; errors become statuses in
`service.grpc.errors`.

Handlers return serialized bytes (the answer cache keeps bytes); the method handlers send
them as they are.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeVar, cast

import grpc
from google.protobuf.message import Message
from podium.v1 import challenges_pb2, driver_ranking_pb2, paths_pb2, tasks_pb2

from service.app import answers, queries
from service.app.ports import StorageUnavailable
from service.clock import Clock
from service.domain import boards
from service.domain.auth import Principal
from service.domain.challenges import PROGRESS_KEY_LENGTH
from service.domain.errors import InternalError, PodiumError, StateNotReady, StorageDown
from service.domain.events import ScoreKind
from service.domain.ranking import Month
from service.domain.rules import Rules
from service.grpc import convert, page_tokens
from service.grpc.auth import current_principal
from service.grpc.cache import AnswerCache, Encoded, Loaded, Make, message
from service.grpc.errors import abort
from service.grpc.state_versions import StateVersions
from service.grpc.watchers import Watchers, moved_or_after

log = logging.getLogger(__name__)

V = TypeVar("V")

RETRY_WHILE_CATCHING_UP = timedelta(seconds=2)
RETRY_WHILE_STORAGE_DOWN = timedelta(seconds=1)


WATCH_INTERVAL_SECONDS = 1.0
"""A watcher gets at most one message a second."""


@dataclass(frozen=True)
class QueryDeps:
    answers: AnswerCache
    versions: StateVersions
    clock: Clock
    rules: Rules
    is_ready: Callable[[], bool]
    watchers: Watchers = field(default_factory=Watchers)
    watch_interval: float = WATCH_INTERVAL_SECONDS


Send = Callable[[bytes], Awaitable[None]]
Handler = Callable[[Any, Principal, QueryDeps], Awaitable[bytes]]
StreamHandler = Callable[[Any, Principal, QueryDeps, Send], Awaitable[None]]
Run = Callable[[Any, Principal, QueryDeps, Send], Awaitable[bytes | None]]


def _kind_and_group(request: Any) -> tuple[ScoreKind, str]:
    return convert.ranking_type(request.type), request.group_label


# --- driver rankings ---------------------------------------------------------------------------


async def get_driver_ranking(
    request: driver_ranking_pb2.GetDriverRankingRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """Each month is serialized on its own (the previous month, which rarely changes, is not
    serialized again when a trip of the current month arrives), then the two are joined."""
    kind, group = _kind_and_group(request)
    ranking = answers.driver_ranking(who.tenant_id, kind, group, deps.rules, deps.clock.now())
    months = [await deps.answers.value(month) for month in ranking.months]
    current, previous = [
        await deps.answers.made(
            ("month", *month.key[1:]), (loaded,), _month_ranking(loaded.value.ranking)
        )
        for month, loaded in zip(ranking.months, months, strict=True)
    ]

    def join(_: object) -> Encoded:
        as_of = max((m.as_of for m in (current, previous) if m.as_of is not None), default=None)
        return Encoded(convert.driver_ranking_bytes(kind, current.data, previous.data, as_of))

    key = ("driver_ranking", *ranking.months[0].key[1:])
    return (await deps.answers.made(key, (current, previous), join, inline=True)).data


def _month_ranking(ranking: queries.MonthRanking) -> Make:
    def make(kept: object) -> Encoded:
        data, pieces = convert.month_ranking_bytes(ranking, cast(convert.MonthPieces, kept))
        return Encoded(data, pieces)

    return make


async def list_month_ranking(
    request: driver_ranking_pb2.ListMonthRankingRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """A page is cut from the month's board (a binary search and a slice), never read, and
    made once per board."""
    tenant, (kind, group) = who.tenant_id, _kind_and_group(request)
    size = boards.checked_page_size(request.page_size)
    now = deps.clock.now()
    asked_month = (request.month.year, request.month.month_number)
    month_asked = asked_month if request.HasField("month") else None
    asked = (tenant, kind, group, month_asked, request.not_ranked)
    after, month = None, None
    if request.page_token:
        key_length = boards.OTHER_KEY_LENGTH if request.not_ranked else boards.RANKED_KEY_LENGTH
        continued = page_tokens.decode(request.page_token, asked, (key_length,), with_month=True)
        after, month = continued.after, continued.month
    month = month or convert.month_of(request, now)
    query = answers.MonthBoardQuery(tenant, kind, group, month, deps.rules, now)
    loaded = await deps.answers.value(query)
    not_ranked = request.not_ranked

    def page() -> Message:
        cut = boards.page(loaded.value.board, not_ranked=not_ranked, after=after, size=size)
        token = "" if cut.after is None else page_tokens.encode(asked, cut.after, month)
        answer = convert.month_page_response(kind, loaded.value, cut, token)
        return convert.stamped(answer, loaded.as_of)

    where = (month_asked, not_ranked, after, size)  # the token is bound to month_asked too
    return await _page_bytes(deps, "month_page", query, loaded, where, page)


async def get_driver_rank(
    request: driver_ranking_pb2.GetDriverRankRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """A look-up in the month's board, whatever its size."""
    tenant, (kind, group) = who.tenant_id, _kind_and_group(request)
    neighbors = boards.checked_neighbors(request.neighbors)
    now = deps.clock.now()
    month = convert.month_of(request, now)
    query = answers.MonthBoardQuery(tenant, kind, group, month, deps.rules, now)
    loaded = await deps.answers.value(query)
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
    tenant, (kind, group) = who.tenant_id, _kind_and_group(request)
    top = boards.checked_top(request.top)

    async def look() -> tuple[bytes, bytes]:
        now = deps.clock.now()
        query = answers.MonthBoardQuery(tenant, kind, group, Month.of(now), deps.rules, now)
        loaded = await deps.answers.value(query)
        content = await deps.answers.made(
            ("top", *query.key[1:], top),
            (loaded,),
            message(lambda: convert.top_drivers_response(kind, loaded.value, top)),
            inline=True,  # a hundred drivers at most
        )
        stamp = convert.stamped(driver_ranking_pb2.WatchDriverRankingResponse(), loaded.as_of)
        return content.data, content.data + stamp.SerializeToString()

    async def wake() -> None:
        await moved_or_after(deps.versions.moved_since(deps.versions.generation))

    async with deps.watchers.watch(("top", tenant, kind, group, top), look, wake) as watching:
        while True:
            await send(await watching.next())
            await asyncio.sleep(deps.watch_interval)


# --- challenges --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PageAsked:
    """A page of a challenge's list: its size, the key it starts after (None: the first
    page), and what its token is bound to (the method, tenant, challenge and group)."""

    size: int
    after: boards.SortKey | None
    bound_to: tuple[str, ...]

    def token(self, after: boards.SortKey | None) -> str:
        """The next page's token: empty when no page follows."""
        return "" if after is None else page_tokens.encode(self.bound_to, after)


class _Paged(Protocol):
    @property
    def challenge_id(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def page_size(self) -> int: ...
    @property
    def page_token(self) -> str: ...


def _page_asked(
    method: str, request: _Paged, who: Principal, key_lengths: tuple[int, ...]
) -> _PageAsked | None:
    """The page a challenge's request asks for; None when it asks for none (no page_size, no
    page_token): the whole answer, as before pages existed."""
    if not request.page_size and not request.page_token:
        return None
    size = boards.checked_page_size(request.page_size)
    bound_to = (method, who.tenant_id, request.challenge_id, request.group)
    after = None
    if request.page_token:
        after = page_tokens.decode(request.page_token, bound_to, key_lengths).after
    return _PageAsked(size, after, bound_to)


async def get_challenge_ranking(
    request: challenges_pb2.GetChallengeRankingRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """The whole ranking is made once per value; a page is cut from the challenge's board
    (ranked users, then the others), as a month's is."""
    lengths = (boards.RANKED_KEY_LENGTH, boards.OTHER_KEY_LENGTH)
    asked = _page_asked("GetChallengeRanking", request, who, lengths)
    query = answers.ChallengeBoardQuery(
        who.tenant_id, request.challenge_id, request.group, deps.rules, deps.clock.now()
    )
    loaded = await deps.answers.value(query)
    if asked is not None:

        def page() -> Message:
            board = loaded.value
            cut = boards.page_through(board.board, after=asked.after, size=asked.size)
            answer = convert.challenge_ranking_response(board.ranking, cut, asked.token(cut.after))
            return convert.stamped(answer, loaded.as_of)

        where = (asked.after, asked.size)
        return await _page_bytes(deps, "challenge_ranking_page", query, loaded, where, page)

    def make() -> Message:
        answer = convert.challenge_ranking_response(loaded.value.ranking)
        return convert.stamped(answer, loaded.as_of)

    return (
        await deps.answers.made(("challenge_ranking", *query.key[1:]), (loaded,), message(make))
    ).data


async def get_challenge_rank(
    request: challenges_pb2.GetChallengeRankRequest, who: Principal, deps: QueryDeps
) -> bytes:
    neighbors = boards.checked_neighbors(request.neighbors)
    query = answers.ChallengeBoardQuery(
        who.tenant_id, request.challenge_id, request.group, deps.rules, deps.clock.now()
    )
    loaded = await deps.answers.value(query)
    found = queries.challenge_rank(loaded.value, request.user_id, neighbors)
    answer = convert.challenge_rank_response(loaded.value, found)
    return convert.stamped(answer, loaded.as_of).SerializeToString()


async def get_challenge_progress(
    request: challenges_pb2.GetChallengeProgressRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """The whole progress is made once per value; a page is cut from its lines by their
    keys."""
    asked = _page_asked("GetChallengeProgress", request, who, (PROGRESS_KEY_LENGTH,))
    query = answers.ChallengeProgressQuery(
        who.tenant_id, request.challenge_id, request.group, deps.rules, deps.clock.now()
    )
    if asked is None:
        return await _answer(deps, query, convert.challenge_progress_response)
    loaded = await deps.answers.value(query)

    def page() -> Message:
        value = loaded.value
        lines, after = boards.sliced(value.progress.users, value.keys, asked.after, asked.size)
        answer = convert.challenge_progress_response(value, lines, asked.token(after))
        return convert.stamped(answer, loaded.as_of)

    where = (asked.after, asked.size)
    return await _page_bytes(deps, "challenge_progress_page", query, loaded, where, page)


async def _page_bytes(
    deps: QueryDeps,
    kind: str,
    query: answers.Query[V],
    loaded: Loaded[V],
    where: tuple[Hashable, ...],
    make: Callable[[], Message],
) -> bytes:
    """A page's bytes, made once per value it is cut from (a page read by many callers, the
    first one above all, is served as a whole answer is), on the event loop: a page is at
    most 1,000 entrants. `where`: what else than the query its bytes depend on (where it
    starts, its size, what its token is bound to)."""
    key = (kind, *query.key[1:], *where)
    return (await deps.answers.made(key, (loaded,), message(make), inline=True)).data


async def _answer(
    deps: QueryDeps, query: answers.Query[V], to_message: Callable[[V], Any]
) -> bytes:
    """The bytes of a small answer: its value converted and stamped with its `as_of`."""
    loaded = await deps.answers.value(query)

    def make() -> Message:
        answer: Message = convert.stamped(to_message(loaded.value), loaded.as_of)
        return answer

    return (await deps.answers.made(query.key, (loaded,), message(make))).data


# --- tasks and paths ---------------------------------------------------------------------------


async def get_task(request: tasks_pb2.GetTaskRequest, who: Principal, deps: QueryDeps) -> bytes:
    query = answers.TaskQuery(who.tenant_id, request.task_id)
    return await _answer(deps, query, convert.task_response)


async def get_path_session_stats(
    request: paths_pb2.GetPathSessionStatsRequest, who: Principal, deps: QueryDeps
) -> bytes:
    query = answers.PathStatsQuery(
        who.tenant_id, request.session_id, request.user_email_or_id, deps.clock.now()
    )
    return await _answer(deps, query, convert.path_stats_response)


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
