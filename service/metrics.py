"""Prometheus metrics, built per process by the composition root (nothing at import time).

Names follow Prometheus' conventions: counters are scraped with `_total` (prometheus_client
adds it to the names below), durations are `_seconds` histograms. The README, "Metrics",
lists every name as scraped; a test scrapes a live server for each of them.
"""

from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_RECORD_BUCKETS = (1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 50_000)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        Info("podium_build", "The running Podium: its version and Python's", registry=r).info(
            {"version": podium_version(), "python": platform.python_version()}
        )
        self.events_folded = Counter(
            "podium_events_folded", "Events folded into state", ["topic"], registry=r
        )
        self.events_dead_lettered = Counter(
            "podium_events_dead_lettered",
            "Records kept in the dead-letter store, by why (undecodable, invalid, conflict,"
            " unfoldable)",
            ["topic", "reason"],
            registry=r,
        )
        self.events_ignored = Counter(
            "podium_events_ignored",
            "Valid events that changed nothing by rule",
            ["kind"],
            registry=r,
        )
        self.unknown_fields = Counter(
            "podium_unknown_fields",
            "Fields of JSON records that Podium does not know, ignored",
            ["topic"],
            registry=r,
        )
        self.batch_records = Histogram(
            "podium_batch_records",
            "Records in one applied batch",
            registry=r,
            buckets=BATCH_RECORD_BUCKETS,
        )
        self.batch_seconds = Histogram(
            "podium_batch_apply_seconds",
            "Time to apply one consumed batch (one transaction)",
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.consumer_lag = Gauge(
            "podium_consumer_lag",
            "Records behind the high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.caught_up = Gauge(
            "podium_ingest_caught_up",
            "1 once the consumers have caught up with the topics as they were at start",
            registry=r,
        )
        self.partition_stalled = Gauge(
            "podium_partition_stalled",
            "1 while a partition is stopped for an operator (offset outside the log, unreadable"
            " or unfoldable records)",
            ["topic", "partition"],
            registry=r,
        )
        self.topic_config_risk = Gauge(
            "podium_topic_config_risk",
            "1 while a topic's setting lets the broker delete events a rebuild needs (finite"
            " retention, compaction), 0 when it keeps them; absent when the broker does not say",
            ["topic", "setting"],
            registry=r,
        )
        self.requests = Counter(
            "podium_grpc_requests",
            "gRPC calls by method and status code (refusals of keys and limits included)",
            ["method", "code"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "podium_grpc_request_seconds",
            "gRPC call latency",
            ["method"],
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.answer_cache_hits = Counter(
            "podium_answer_cache_hits",
            "Answers served from the answer cache, by kind of answer",
            ["answer"],
            registry=r,
        )
        self.answer_builds = Counter(
            "podium_answer_builds",
            "Answers built from the database, by kind of answer",
            ["answer"],
            registry=r,
        )
        self.table_analyzes = Counter(
            "podium_table_analyzes",
            "ANALYZE of a table by Podium (after the first catch-up, or once the table grew),"
            " by outcome (done, failed)",
            ["table", "outcome"],
            registry=r,
        )
        self.results_recorded = Counter(
            "podium_results_recorded",
            "Results of frozen windows written to the outbox",
            registry=r,
        )
        self.results_sent = Counter(
            "podium_results_sent",
            "Results the broker acknowledged in the results topic",
            registry=r,
        )


def podium_version() -> str:
    try:
        return metadata.version("podium")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"
