"""Prometheus metrics, built per process by the composition root (nothing at import time)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_folded = Counter(
            "podium_events_folded", "Events folded into state", ["topic"], registry=r
        )
        self.events_dead_lettered = Counter(
            "podium_events_dead_lettered",
            "Records kept in the dead-letter store",
            ["topic"],
            registry=r,
        )
        self.events_ignored = Counter(
            "podium_events_ignored",
            "Valid events that changed nothing by rule",
            ["kind"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "podium_batch_seconds", "Time to apply one consumed batch", registry=r
        )
        self.consumer_lag = Gauge(
            "podium_consumer_lag",
            "Records behind the high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.partition_stalled = Gauge(
            "podium_partition_stalled",
            "1 while a partition is stopped for an operator (offset outside the log, unreadable"
            " or unfoldable records)",
            ["topic", "partition"],
            registry=r,
        )
        self.requests = Counter(
            "podium_grpc_requests",
            "gRPC calls by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "podium_grpc_request_seconds",
            "gRPC call latency",
            ["method"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
