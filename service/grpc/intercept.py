"""Helpers the interceptors share: wrap a unary method's behaviour, or replace it with a
refusal (a domain error, turned into a status in `service.grpc.errors`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from service.domain.errors import PodiumError
from service.grpc.errors import abort

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Behaviour: TypeAlias = "Callable[[Any, Context], Awaitable[Any]]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"

QUERY_SERVICE_PREFIX = "podium.v1."
"""Podium's own services: keys and limits apply to them; health and reflection stay free."""


def service_of(method: str) -> str:
    return method.lstrip("/").split("/", 1)[0]


def is_query(details: grpc.HandlerCallDetails) -> bool:
    return service_of(details.method).startswith(QUERY_SERVICE_PREFIX)


def metadata_value(metadata: Any, name: str) -> str | None:
    for key, value in metadata or ():
        if key == name:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


def around(
    handler: Handler,
    wrap: Callable[[Behaviour], Behaviour],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> Handler:
    """The same method with its behaviour wrapped (and its request read by
    `request_deserializer`, when given). Podium's methods take one request and answer one
    response, or stream responses by writing them on the context: either way the behaviour
    is a coroutine taking the request and the context."""
    behaviour: Any = handler.unary_stream if is_streaming(handler) else handler.unary_unary
    return _same_kind(
        handler, wrap(behaviour), request_deserializer or handler.request_deserializer
    )


def refusal(handler: Handler, error: PodiumError) -> Handler:
    """The method answering `error` without running (nor reading its request)."""

    async def refuse(request: Any, context: Context) -> Any:
        await abort(context, error)

    return _same_kind(handler, refuse, _ignored)


def is_streaming(handler: Handler) -> bool:
    return bool(handler.response_streaming)


def _same_kind(
    handler: Handler, behaviour: Behaviour, request_deserializer: Callable[[bytes], Any] | None
) -> Handler:
    make: Any = (
        grpc.unary_stream_rpc_method_handler
        if is_streaming(handler)
        else grpc.unary_unary_rpc_method_handler
    )
    made: Handler = make(
        behaviour,
        request_deserializer=request_deserializer,
        response_serializer=handler.response_serializer,
    )
    return made


def _ignored(data: bytes) -> None:
    return None
