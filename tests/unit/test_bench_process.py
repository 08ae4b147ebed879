"""The bench's reading of a server's metrics: the folded counter and the consumer lag of the
trips topic alone, the lag summed over its partitions (the growth verdict's window starts
when it first shows)."""

from __future__ import annotations

from bench.process import progress_of

METRICS = """\
# HELP podium_events_folded_total Events folded
# TYPE podium_events_folded_total counter
podium_events_folded_total{topic="r1.trips"} 40000.0
podium_events_folded_total{topic="r1.enrollments"} 7.0
# TYPE podium_consumer_lag gauge
podium_consumer_lag{topic="r1.trips",partition="0"} 1250.0
podium_consumer_lag{topic="r1.trips",partition="3"} 750.0
podium_consumer_lag{topic="r1.enrollments",partition="0"} 99.0
"""


def test_the_trips_topics_folded_count_and_lag_over_its_partitions() -> None:
    assert progress_of(METRICS, "r1.trips") == (40_000, 2_000)


def test_nothing_before_the_server_reports_the_topic() -> None:
    assert progress_of(METRICS, "r2.trips") == (0, 0)
