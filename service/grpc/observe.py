"""What every query call leaves behind for operators: a count by method and the status code
it really ended with (refusals of keys and limits included), its latency and, when tracing is
on, its span."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import grpc
from opentelemetry.trace import Tracer

from service.grpc.intercept import (
    Behaviour,
    Context,
    Continuation,
    Handler,
    around,
    is_query,
    is_streaming,
)
from service.metrics import Metrics
from service.tracing import call_span, end_call


class CallMetrics(grpc.aio.ServerInterceptor):
    """The outermost interceptor, so that no refusal escapes it. Health and reflection are
    not counted (probes would drown the calls); nor are methods that do not exist (their
    names are the caller's to choose, a label without bound). A stream (a watcher) is counted
    when it ends, with its code, but its length is not a latency: it stays out of the
    histogram."""

    def __init__(self, metrics: Metrics, tracer: Tracer | None = None) -> None:
        self._metrics = metrics
        self._tracer = tracer

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(details)
        if handler is None or not is_query(details):
            return handler
        method = details.method.lstrip("/")
        metadata = details.invocation_metadata
        timed = not is_streaming(handler)
        return around(handler, lambda behaviour: self._observed(behaviour, method, metadata, timed))

    def _observed(self, behaviour: Behaviour, method: str, metadata: Any, timed: bool) -> Behaviour:
        async def observed(request: Any, context: Context) -> Any:
            traced = (
                contextlib.nullcontext(None)
                if self._tracer is None
                else call_span(self._tracer, method, metadata)
            )
            with traced as span:
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
                    seconds = time.perf_counter() - started
                    self._metrics.requests.labels(method, code.name).inc()
                    if timed:
                        self._metrics.request_seconds.labels(method).observe(seconds)
                    if span is not None:
                        end_call(span, code.name, code.value[0])

        return observed


def ended_with(context: Context, otherwise: grpc.StatusCode) -> grpc.StatusCode:
    """The code the call was aborted or set with, else `otherwise`."""
    code: Any = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return otherwise
