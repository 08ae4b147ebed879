"""The peer a user would pick instead of Podium, Quix Streams (librdkafka, RocksDB state),
folding the same JSON trip events, in its own process and its own virtualenv (`.venv-peer`,
which `make bench` fills from the `bench` extra: Quix Streams pins a librdkafka binding older
than the one Podium's tests need):

    python -m bench.peer SERVERS TOPIC GROUP EXPECTED GUARANTEE FOLD STATE_DIR

GUARANTEE is `exactly-once` or `at-least-once`; FOLD is `dedupe` (state keyed by driver: a
seen-key per trip id, so each trip counts once, then the driver's trips and distance) or
`aggregate` (the driver's trips and distance, each record counted as it comes). Prints one
JSON line: the records processed after the first, the seconds from the first to the last, the
process's CPU seconds meanwhile and Quix's version, or the error that stopped it. Imports
nothing of Podium, only the standard library and Quix."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

TOTALS = "totals"


def fold_once(value: dict[str, Any], state: Any) -> None:
    """Count the trip for its driver unless this driver's state has seen its id."""
    trip = value["tripCompleted"]
    seen = f"trip:{trip['tripId']}"
    if state.get(seen) is None:
        state.set(seen, 1)
        add_trip(trip, state)


def add_trip(trip: dict[str, Any], state: Any) -> None:
    trips, distance = state.get(TOTALS, (0, 0.0))
    state.set(TOTALS, (trips + 1, distance + float(trip.get("distanceKm", 0.0))))


def aggregate(value: dict[str, Any], state: Any) -> None:
    add_trip(value["tripCompleted"], state)


class Clock:
    """Counts processed records and stops the application after the last one; timed from the
    first record to the last, so the group join and the state's set-up are left out, and the
    CPU time the process (all its threads: librdkafka's, RocksDB's) used meanwhile."""

    def __init__(self, expected: int, app: Any) -> None:
        self._expected, self._app = expected, app
        self._seen = 0
        self._first = self._last = 0.0
        self._first_cpu = self._last_cpu = 0.0

    def tick(self, _value: object) -> None:
        self._seen += 1
        self._last = time.perf_counter()
        if self._seen == 1:
            self._first, self._first_cpu = self._last, time.process_time()
        if self._seen >= self._expected:
            self._last_cpu = time.process_time()
            self._app.stop()

    def result(self) -> dict[str, object]:
        return {
            "records": self._seen - 1,
            "seconds": self._last - self._first,
            "cpu_seconds": self._last_cpu - self._first_cpu,
        }


def tolerate_unreported_retention(manager: Any) -> None:
    """Quix derives its changelog topics' retention from the input topic's `retention.ms`,
    which the local broker (Tansu) does not report: take it as unlimited (-1), Kafka's value
    for a topic kept forever, as Podium's are."""
    derive = manager.derive_topic_config.__func__

    def derive_with_default(cls: Any, topics: Any) -> Any:
        for topic in topics:
            topic.broker_config.extra_config.setdefault("retention.ms", "-1")
        return derive(cls, topics)

    manager.derive_topic_config = classmethod(derive_with_default)


def run(
    servers: str, topic: str, group: str, expected: int, guarantee: str, fold: str, state_dir: str
) -> dict[str, object]:
    import quixstreams
    from quixstreams import Application
    from quixstreams.models.topics import TopicManager

    tolerate_unreported_retention(TopicManager)

    app = Application(
        broker_address=servers,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee=guarantee,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    clock = Clock(expected, app)
    frame = app.dataframe(app.topic(topic, value_deserializer="json"))
    frame = frame.update(fold_once if fold == "dedupe" else aggregate, stateful=True)
    frame.update(clock.tick)  # frames are tracked by the application
    app.run()
    return {**clock.result(), "version": quixstreams.__version__}


def main() -> None:
    servers, topic, group, expected, guarantee, fold, state_dir = sys.argv[1:8]
    try:
        result = run(servers, topic, group, int(expected), guarantee, fold, state_dir)
    except Exception as error:  # the bench reports what the peer could not do
        result = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
