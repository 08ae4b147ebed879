"""Thin servicers: each method checks readiness, converts the request, runs one use case
through the answer cache, and converts the answer. The API key was checked by the
interceptor; errors become statuses in `service.grpc.errors`.

Handlers return serialized bytes (the answer cache keeps bytes); the method handlers send
them as they are.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.message import Message

from service.app import queries
from service.app.ports import ReadModel, StorageUnavailable
from service.app.state_versions import month_key, profiles_key, tenant_key
from service.clock import Clock
from service.domain.auth import Principal
from service.domain.errors import InternalError, PodiumError, StateNotReady, StorageDown
from service.domain.ranking import Month, Profile
from service.domain.rules import Rules
from service.gen.podium.v1 import challenges_pb2, driver_ranking_pb2, paths_pb2, tasks_pb2
from service.grpc import convert
from service.grpc.answers import Answers, Assembled, Memo
from service.grpc.auth import current_principal
from service.grpc.errors import abort
from service.grpc.state_versions import StateVersions

log = logging.getLogger(__name__)

RETRY_WHILE_CATCHING_UP = timedelta(seconds=2)
RETRY_WHILE_STORAGE_DOWN = timedelta(seconds=1)


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


Handler = Callable[[Any, Principal, QueryDeps], Awaitable[bytes]]


async def get_driver_ranking(
    request: driver_ranking_pb2.GetDriverRankingRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """Each month is cached on its own, so the previous month (which rarely changes) is not
    rebuilt whenever a trip of the current month arrives."""
    tenant, group, kind = who.tenant_id, request.group_label, convert.ranking_type(request.type)
    now = deps.clock.now()
    current, previous = queries.ranking_months(now)
    profiles_version = deps.versions.version(profiles_key(tenant))

    async def month(month: Month) -> bytes:
        as_of = queries.membership_as_of(month.freezes_at(deps.rules.late_event_grace), now)

        def build(read: ReadModel) -> Message:
            people = deps.profiles.get(
                (tenant, group, as_of, profiles_version),
                lambda: queries.group_profiles(read, tenant, group, as_of),
            )
            answer = queries.month_ranking(
                read, tenant, kind, group, month, deps.rules, now, people
            )
            return convert.month_ranking_message(answer)

        version = (profiles_version, deps.versions.version(month_key(tenant, month)))
        key = ("month", tenant, kind, group, month, as_of)
        return await deps.answers.get(key, version, build)

    months = (await month(current), await month(previous))
    return deps.assembled.get(
        ("driver_ranking", tenant, kind, group, current),
        months,
        lambda: convert.driver_ranking_bytes(kind, *months),
    )


async def get_task(request: tasks_pb2.GetTaskRequest, who: Principal, deps: QueryDeps) -> bytes:
    tenant = who.tenant_id

    def build(read: ReadModel) -> Message:
        return convert.task_response(queries.get_task(read, tenant, request.task_id))

    key = ("task", tenant, request.task_id)
    return await deps.answers.get(key, deps.versions.version(tenant_key(tenant)), build)


async def get_challenge_ranking(
    request: challenges_pb2.GetChallengeRankingRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """A challenge's groups are read as of its freeze once it froze: an answer is rebuilt at
    least once a minute, so the freeze shows within a minute even if nothing else changes."""
    now, tenant = deps.clock.now(), who.tenant_id

    def build(read: ReadModel) -> Message:
        answer = queries.challenge_ranking(
            read, tenant, request.challenge_id, request.group, now, deps.rules
        )
        return convert.challenge_ranking_response(answer)

    minute = int(now.timestamp()) // 60
    key = ("challenge_ranking", tenant, request.challenge_id, request.group, minute)
    return await deps.answers.get(key, deps.versions.version(tenant_key(tenant)), build)


async def get_challenge_progress(
    request: challenges_pb2.GetChallengeProgressRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """Progress exists only once the challenge has ended; its groups are read as of the
    freeze once it froze (rebuilt at least once a minute, as the ranking)."""
    now, tenant = deps.clock.now(), who.tenant_id

    def build(read: ReadModel) -> Message:
        answer = queries.challenge_progress(
            read, tenant, request.challenge_id, request.group, now, deps.rules
        )
        return convert.challenge_progress_response(answer)

    minute = int(now.timestamp()) // 60
    key = ("challenge_progress", tenant, request.challenge_id, request.group, minute)
    return await deps.answers.get(key, deps.versions.version(tenant_key(tenant)), build)


async def get_path_session_stats(
    request: paths_pb2.GetPathSessionStatsRequest, who: Principal, deps: QueryDeps
) -> bytes:
    """Due dates and the session's start and end make the answer depend on the time too: it
    is cached for the current second only."""
    now, tenant = deps.clock.now(), who.tenant_id

    def build(read: ReadModel) -> Message:
        answer = queries.path_session_stats(
            read, tenant, request.session_id, request.user_email_or_id, now
        )
        return convert.path_stats_response(answer)

    second = int(now.timestamp())
    key = ("path_stats", tenant, request.session_id, request.user_email_or_id, second)
    return await deps.answers.get(key, deps.versions.version(tenant_key(tenant)), build)


@dataclass(frozen=True)
class Route:
    request: type[Message]
    handler: Handler


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
                    response_serializer=bytes,
                )
                for name, route in methods.items()
            },
        )
        for service, methods in ROUTES.items()
    ]


def _behaviour(
    method: str, route: Route, deps: QueryDeps
) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]]:
    async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        try:
            if not deps.is_ready():
                raise StateNotReady(RETRY_WHILE_CATCHING_UP)
            return await route.handler(request, current_principal(), deps)
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
