"""OpenTelemetry spans, optional: one per gRPC call and one per applied batch, exported over
OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Unset, there is no tracer at all: no span is
made, nothing is wrapped, nothing costs.

Context travels the W3C way (`traceparent`): a caller's gRPC metadata makes the call's span
its child; a Kafka record's header links the batch span that folded it to the producer's
trace (a batch folds records of many traces, so they are links rather than one parent).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.app.records import Record
from service.config import Settings
from service.metrics import podium_version

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

TRACER_NAME = "podium"
MAX_LINKS = 128
"""Links kept on a batch's span at most (the SDK's own default limit)."""

_PROPAGATOR = TraceContextTextMapPropagator()


def tracer_provider(settings: Settings) -> TracerProvider | None:
    """Spans to `OTEL_EXPORTER_OTLP_ENDPOINT`, batched; None when it is unset. The other
    `OTEL_*` variables (headers, service name, sampling) are read by OpenTelemetry itself.
    The SDK and the exporter are imported only then: a process that does not trace does not
    pay for their import at start (bench/RESULTS.md, issue 26)."""
    if not settings.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_VERSION: podium_version()})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "podium"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint)))
    return provider


def tracer_of(provider: TracerProvider | None) -> Tracer | None:
    return None if provider is None else provider.get_tracer(TRACER_NAME)


@contextlib.contextmanager
def call_span(tracer: Tracer, method: str, metadata: Any) -> Iterator[Span]:
    """A server span for a gRPC call, the caller's span its parent if it sent one."""
    carrier = {
        key: value
        for key, value in metadata or ()
        if isinstance(key, str) and isinstance(value, str)
    }
    service, _, name = method.partition("/")
    with tracer.start_as_current_span(
        method,
        context=_PROPAGATOR.extract(carrier),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def end_call(span: Span, code_name: str, code_value: int) -> None:
    """Mark the call's span with its status code (an error for any but OK)."""
    span.set_attribute("rpc.grpc.status_code", code_value)
    if code_name != "OK":
        span.set_status(Status(StatusCode.ERROR, code_name))


@contextlib.contextmanager
def batch_span(tracer: Tracer, records: Iterable[Record]) -> Iterator[Span]:
    """A consumer span for applying a batch, linked to the traces of its records' producers."""
    records = list(records)
    links = _links(records)
    with tracer.start_as_current_span(
        "apply batch",
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.batch.message_count": len(records),
            "messaging.destination.name": sorted({r.topic for r in records}),
        },
    ) as span:
        yield span


def _links(records: list[Record]) -> list[Link]:
    links: list[Link] = []
    seen: set[tuple[int, int]] = set()
    for record in records:
        context = _producer_context(record.headers)
        if context is None or (context.trace_id, context.span_id) in seen:
            continue
        seen.add((context.trace_id, context.span_id))
        links.append(Link(context))
        if len(links) == MAX_LINKS:
            break
    return links


def _producer_context(headers: Iterable[tuple[str, bytes | None]]) -> Any:
    carrier: Mapping[str, str] = {
        name.lower(): value.decode("ascii", "replace")
        for name, value in headers
        if value is not None and name.lower() in ("traceparent", "tracestate")
    }
    if "traceparent" not in carrier:
        return None
    context = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
    return context if context.is_valid else None
