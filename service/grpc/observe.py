"""What every query call leaves behind for operators: a count by method and the status code
it really ended with (refusals of keys and limits included), and its latency."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from service.grpc.intercept import Behaviour, Context, Continuation, Handler, around, is_query
from service.metrics import Metrics


class CallMetrics(grpc.aio.ServerInterceptor):
    """The outermost interceptor, so that no refusal escapes it. Health and reflection are
    not counted (probes would drown the calls); nor are methods that do not exist (their
    names are the caller's to choose, a label without bound)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None or not is_query(details) or handler.unary_unary is None:
            return handler
        method = details.method.lstrip("/")
        return around(handler, lambda behaviour: self._observed(behaviour, method))

    def _observed(self, behaviour: Behaviour, method: str) -> Behaviour:
        async def observed(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                answer = await behaviour(request, context)
                code = ended_with(context, grpc.StatusCode.OK)
                return answer
            except asyncio.CancelledError:
                code = ended_with(context, grpc.StatusCode.CANCELLED)
                raise
            except BaseException:
                code = ended_with(context, grpc.StatusCode.UNKNOWN)
                raise
            finally:
                self._metrics.requests.labels(method, code.name).inc()
                self._metrics.request_seconds.labels(method).observe(time.perf_counter() - started)

        return observed


def ended_with(context: Context, otherwise: grpc.StatusCode) -> grpc.StatusCode:
    """The code the call was aborted or set with, else `otherwise`."""
    code: Any = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return otherwise
