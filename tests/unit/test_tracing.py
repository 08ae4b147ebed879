"""Tracing is off unless an OTLP endpoint is set; a batch's span links each producer's trace
once, and ignores headers that are not W3C trace contexts."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.bootstrap import Podium
from service.config import Settings
from service.tracing import batch_span, tracer_provider
from tests.builders import record

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_without_an_otlp_endpoint_there_is_no_tracer_at_all() -> None:
    assert tracer_provider(Settings()) is None
    podium = Podium(Settings(database_url="sqlite://"), role="api")
    try:
        assert podium.tracing is None
    finally:
        podium.storage.close()


def test_with_an_otlp_endpoint_spans_are_exported_as_podium() -> None:
    provider = tracer_provider(Settings(otlp_endpoint="http://127.0.0.1:4317"))
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "podium"
    finally:
        provider.shutdown()


def test_a_batch_span_links_each_producer_trace_once_and_ignores_bad_headers() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    records = [
        record(0, b"v", key=b"k", headers=[("traceparent", TRACE.encode())]),
        record(1, b"v", key=b"k", headers=[("TraceParent", TRACE.encode())]),
        record(2, b"v", key=b"k", headers=[("traceparent", b"not a trace context")]),
        record(3, b"v", key=b"k", headers=[("traceparent", None)]),
        record(4, b"v", key=b"k"),
    ]
    with batch_span(provider.get_tracer("test"), records):
        pass
    [span] = exporter.get_finished_spans()
    assert [f"{link.context.trace_id:032x}" for link in span.links] == [TRACE.split("-")[1]]
    assert span.attributes is not None
    assert span.attributes["messaging.batch.message_count"] == 5
