"""Decoding trip records, in one process and one run: the JSON fast path beside protobuf's
json_format, and the binary envelope beside both.

    python -m bench.decoding [--records N] [--rounds R]

Each route decodes the same N trips (the bench producer's shape, `bench.harness`), as
`consumers.decode.decode` does for the consumer; the best of R rounds is kept, the routes
taking turns so that the machine's load falls on all of them alike. Every route must give
the same events, or the figures are not printed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf import json_format
from podium.events.v1 import trips_pb2

from bench.harness import trip_message
from consumers.decode import JSON, decode
from service.app.records import Rejected
from service.domain import events as ev

ENDED = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
ARRIVED_MS = int((ENDED + timedelta(days=1)).timestamp() * 1000)
JSON_HEADERS = [("content-type", JSON)]

Route = Callable[[bytes], ev.Event | Rejected]


def routes() -> dict[str, tuple[Route, bool]]:
    """Each route: how it decodes a record, and whether it reads the JSON form."""
    return {
        "JSON, fast path": (lambda v: decode("trips", v, JSON_HEADERS, ARRIVED_MS), True),
        "JSON, json_format": (
            lambda v: decode("trips", v, JSON_HEADERS, ARRIVED_MS, json_fast_path=False),
            True,
        ),
        "binary": (lambda v: decode("trips", v, [], ARRIVED_MS), False),
    }


def trips(count: int) -> tuple[list[bytes], list[bytes]]:
    """`count` trip records, binary and in their JSON form (as `podium produce` sends it)."""
    binary = [
        trip_message(n, 1_000, ENDED + timedelta(seconds=n, microseconds=n % 1000 * 1000))[1]
        for n in range(count)
    ]
    as_json = [
        json_format.MessageToJson(trips_pb2.TripEvent.FromString(value)).encode()
        for value in binary
    ]
    return binary, as_json


def timed(route: Route, values: Sequence[bytes]) -> float:
    started = time.perf_counter()
    for value in values:
        route(value)
    return time.perf_counter() - started


def measure(count: int, rounds: int) -> dict[str, float]:
    """Records a second of each route (the best round), once every route is seen to give
    the same events."""
    binary, as_json = trips(count)
    chosen = routes()
    outcomes = {
        name: [route(value) for value in (as_json if reads_json else binary)]
        for name, (route, reads_json) in chosen.items()
    }
    reference = outcomes["JSON, json_format"]
    assert all(isinstance(o, ev.Event) for o in reference), "a trip was rejected"
    assert all(decoded == reference for decoded in outcomes.values()), "routes disagree"
    del outcomes, reference
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, (route, reads_json) in chosen.items():
            seconds = timed(route, as_json if reads_json else binary)
            best[name] = min(best.get(name, seconds), seconds)
    return {name: count / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    rates = measure(arguments.records, arguments.rounds)
    print(f"decode() of {arguments.records:,} trip records, best of {arguments.rounds} rounds:")
    for name, rate in rates.items():
        print(f"  {name:<18} {rate:>10,.0f} records/s")
    fast, slow, binary = rates["JSON, fast path"], rates["JSON, json_format"], rates["binary"]
    print(
        f"JSON fast path / json_format: {fast / slow:.1f}x; binary / JSON fast path: "
        f"{binary / fast:.2f}x"
    )


if __name__ == "__main__":
    main()
