"""The `x-api-key` interceptor: who calls, for which tenant, with which scopes.

Health and reflection answer without a key. The principal reaches the servicers through a
context variable set around the method's behaviour.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from service.domain.auth import Principal
from service.domain.errors import FeatureDisabled, PodiumError, Unauthenticated
from service.grpc.errors import abort

API_KEY_HEADER = "x-api-key"

SCOPE_OF_SERVICE = {
    "podium.v1.DriverRankingService": "ranking",
    "podium.v1.ChallengeService": "challenges",
    "podium.v1.TaskService": "tasks",
    "podium.v1.PathService": "paths",
}

CURRENT_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def current_principal() -> Principal:
    return CURRENT_PRINCIPAL.get()


class PrincipalCache:
    """Looks keys up in the database, remembering answers for a while so a busy caller does
    not cost a query per call (a new key works at once; nothing revokes keys yet)."""

    def __init__(self, find: Callable[[str], Principal | None], ttl_seconds: float = 60.0) -> None:
        self._find = find
        self._ttl = ttl_seconds
        self._known: dict[str, tuple[float, Principal | None]] = {}

    async def principal(self, key: str) -> Principal | None:
        now = time.monotonic()
        cached = self._known.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await asyncio.to_thread(self._find, key)
        # Unknown keys are remembered briefly only, so a key created a moment later works.
        self._known[key] = (now + (self._ttl if found else 2.0), found)
        return found


def service_of(method: str) -> str:
    return method.lstrip("/").split("/", 1)[0]


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, principals: PrincipalCache) -> None:
        self._principals = principals

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        scope = SCOPE_OF_SERVICE.get(service_of(details.method))
        if scope is None or handler is None:
            return handler
        key = _metadata_value(details.invocation_metadata, API_KEY_HEADER)
        principal = await self._principals.principal(key) if key else None
        if principal is None:
            return _refusal(handler, Unauthenticated())
        if scope not in principal.scopes:
            return _refusal(handler, FeatureDisabled(scope))
        return _as(handler, principal)


def _metadata_value(metadata: Any, name: str) -> str | None:
    for key, value in metadata or ():
        if key == name:
            return value if isinstance(value, str) else value.decode()
    return None


def _refusal(handler: Handler, error: PodiumError) -> Handler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await abort(context, error)

    return grpc.unary_unary_rpc_method_handler(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _as(handler: Handler, principal: Principal) -> Handler:
    behaviour: Any = handler.unary_unary

    async def as_principal(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        token = CURRENT_PRINCIPAL.set(principal)
        try:
            return await behaviour(request, context)
        finally:
            CURRENT_PRINCIPAL.reset(token)

    return grpc.unary_unary_rpc_method_handler(
        as_principal,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
